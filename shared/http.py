"""Small HTTP helpers shared by the three functions: JSON answers, errors, routing, request ids."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import flask

from shared import audit, ipfilter, metrics, tracing
from shared.auth import Authenticator, AuthError, Identity, Role
from shared.config import Settings
from shared.errors import StoreUnavailable
from shared.observability import bind
from shared.ratelimit import Decision, RateLimiter, Window

log = logging.getLogger(__name__)

Handler = Callable[[flask.Request], flask.Response]

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    response = flask.Response(body, status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(
    status: int,
    error: str,
    message: str,
    *,
    field: str | None = None,
    details: Iterable[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> flask.Response:
    """The gateway's error shape: ``error`` (a title), ``message`` (what to fix), ``field``."""
    payload: dict[str, Any] = {"error": error, "message": message}
    if field is not None:
        payload["field"] = field
    if details is not None:
        payload["details"] = list(details)
    payload.update(extra)
    return json_response(payload, status, headers)


def unavailable(message: str, *, retry_after: int = 5) -> flask.Response:
    return error_response(
        503,
        "Service unavailable",
        message,
        retry_after=retry_after,
        headers={"Retry-After": str(retry_after)},
    )


class GuardContext(Protocol):
    """What the router needs to enforce policies (the :class:`~shared.runtime.Runtime` has it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def auth(self) -> Authenticator: ...

    @property
    def limiter(self) -> RateLimiter: ...


@dataclass(frozen=True)
class Policy:
    """What a route requires: a role (``None``: open) and a rate-limit group (``None``: unlimited).

    ``public_setting`` names a boolean setting that opens the route (``HEALTH_PUBLIC``...);
    ``fail_open`` says whether the route is served without a rate-limit check when Redis is down
    (reads) or answers 503 (the webhook, which cannot store the task anyway). ``access`` is the
    route group of ``IP_ALLOWLIST`` (webhooks, polling, admin); ``audit`` the action written to the
    audit stream for every answer of the route (``None``: only refusals are audited).
    """

    role: Role | None = None
    group: str | None = None
    fail_open: bool = True
    public_setting: str | None = None
    access: str | None = None
    audit: str | None = None


OPEN = Policy()

UNAUTHORIZED = {"error": "Unauthorized", "message": "Invalid or missing authentication token"}
_CORS_ALLOW_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, X-API-Key, X-Request-ID, traceparent, tracestate"
)
_CORS_EXPOSE_HEADERS = (
    "X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, traceparent"
)
_HSTS = "max-age=31536000; includeSubDomains"


@dataclass
class Router:
    """Exact-path routing for a function that receives every path of its URL.

    With a ``context`` every route's :class:`Policy` is enforced here, in one place: authentication
    and role (401/403), then the per-client rate limit (429); CORS and HSTS are added to answers.
    """

    context: Callable[[], GuardContext] | None = None
    routes: dict[str, dict[str, tuple[Handler, Policy]]] = field(default_factory=dict)
    prefixes: list[tuple[str, str, Handler, Policy]] = field(default_factory=list)

    def add(self, method: str, path: str, handler: Handler, policy: Policy = OPEN) -> None:
        self.routes.setdefault(path.rstrip("/") or "/", {})[method] = (handler, policy)

    def add_prefix(self, method: str, prefix: str, handler: Handler, policy: Policy = OPEN) -> None:
        self.prefixes.append((method, prefix, handler, policy))

    def dispatch(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        request_id = (request.headers.get("X-Request-ID") or "").strip()[:128] or _correlation_id()
        if not request_id.isprintable():
            request_id = _correlation_id()
        flask.g.request_id = request_id
        flask.g.identity = None
        endpoint = self.endpoint(request.path)
        incoming = incoming_trace(request)
        with (
            bind(request_id=request_id, trace_id=tracing.trace_id_of(incoming)),
            tracing.span(
                f"{request.method} {endpoint}",
                {"http.request.method": request.method, "http.route": endpoint, "request.id": request_id},
                kind="server",
                parent=incoming or None,
            ),
        ):
            response = self._answer(request, request_id)
            tracing.set_attributes({"http.response.status_code": response.status_code})
            traceparent = tracing.inject({}).get(tracing.TRACEPARENT)
            if traceparent:
                response.headers["traceparent"] = traceparent
            elapsed = time.perf_counter() - started
            metrics.observe_http(request.method, endpoint, response.status_code, elapsed)
            log.debug(
                "HTTP request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "latency_ms": round(elapsed * 1000, 2),
                },
            )
        return response

    def endpoint(self, path: str) -> str:
        """The route a path belongs to, for metric labels and span names (bounded cardinality)."""
        path = path.rstrip("/") or "/"
        if path in self.routes:
            return path
        for _method, prefix, _handler, _policy in self.prefixes:
            if path.startswith(prefix):
                return prefix + "*"
        return "other"

    def _answer(self, request: flask.Request, request_id: str) -> flask.Response:
        context: GuardContext | None = None
        try:
            context = self.context() if self.context is not None else None
            response = self._serve(request, context)
        except StoreUnavailable as exc:
            log.warning("Redis unavailable while serving a request", extra={"error": str(exc)})
            response = unavailable("Task storage is temporarily unavailable; retry shortly")
        except Exception:
            log.exception("unhandled error", extra={"path": request.path})
            response = error_response(500, "Internal server error", "Unexpected error; it was logged")
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if _over_https(request):
            response.headers.setdefault("Strict-Transport-Security", _HSTS)
        if context is not None:
            _cors(request, response, context.settings)
        response.headers["X-Request-ID"] = request_id
        return response

    def _serve(self, request: flask.Request, context: GuardContext | None) -> flask.Response:
        found = self._resolve(request)
        if isinstance(found, flask.Response):
            return found
        handler, policy = found
        decision: Decision | None = None
        if context is not None:
            denied, decision = _guard(request, policy, context)
            if denied is not None:
                return denied
        response = handler(request)
        if decision is not None:
            for name, value in decision.headers().items():
                response.headers.setdefault(name, value)
        if context is not None:
            _audit_answer(request, policy, response, context.settings)
        return response

    def _resolve(self, request: flask.Request) -> tuple[Handler, Policy] | flask.Response:
        path = request.path.rstrip("/") or "/"
        methods = self.routes.get(path)
        if methods is None:
            prefixed = {m: (h, p) for m, prefix, h, p in self.prefixes if path.startswith(prefix)}
            if not prefixed:
                return error_response(
                    404, "Not Found", "The requested endpoint does not exist", path=request.path
                )
            methods = prefixed
        if request.method == "OPTIONS":
            allowed = ", ".join(sorted({*methods, "OPTIONS"}))
            response = flask.Response(status=204, headers={"Allow": allowed})
            response.headers["Access-Control-Allow-Methods"] = allowed
            return response
        found = methods.get(request.method) or (methods.get("GET") if request.method == "HEAD" else None)
        if found is None:
            allowed = ", ".join(sorted(methods))
            return error_response(
                405,
                "Method Not Allowed",
                f"{request.method} is not allowed here; use {allowed}",
                headers={"Allow": allowed},
            )
        return found


def _guard(
    request: flask.Request, policy: Policy, context: GuardContext
) -> tuple[flask.Response | None, Decision | None]:
    """Authenticate, authorize and rate-limit one request; an answer when it must stop here."""
    settings = context.settings
    if policy.access and settings.ip_allowlist:
        address = client_ip(request, settings)
        if not ipfilter.admitted(settings.ip_allowlist, policy.access, address):
            _audit(request, settings, "ip.denied", "denied", 403, group=policy.access)
            return (
                error_response(
                    403, "Forbidden", f"this address may not use the {policy.access} endpoints", field="ip"
                ),
                None,
            )
    required = policy.role
    if required is not None and policy.public_setting and getattr(settings, policy.public_setting):
        required = None
    identity: Identity | None = None
    if required is not None and context.auth.enabled:
        try:
            identity = context.auth.authenticate(request.headers)
        except AuthError as exc:
            log.info(
                "authentication failed",
                extra={"reason": str(exc), "path": request.path, "client_ip": client_ip(request, settings)},
            )
        if identity is None:
            _audit(request, settings, "auth.failed", "denied", 401)
            return json_response(UNAUTHORIZED, 401, {"WWW-Authenticate": "Bearer"}), None
        if not identity.allows(required):
            held = identity.role.label if identity.role is not None else "no role"
            _audit(request, settings, "auth.forbidden", "denied", 403, client=identity.client)
            return (
                error_response(
                    403,
                    "Forbidden",
                    f"this endpoint requires the role {required.label} or higher; the credential has {held}",
                ),
                None,
            )
    flask.g.identity = identity
    if policy.group is None:
        return None, None
    client = identity.client if identity is not None else f"ip:{client_ip(request, settings)}"
    per_minute, burst = settings.rate_limit_requests_per_minute, settings.rate_limit_burst
    if identity is not None and identity.role is not None:
        per_minute, burst = settings.rate_limit_by_role.get(identity.role.label, (per_minute, burst))
    windows = (Window(per_minute, 60), Window(burst, settings.rate_limit_burst_window))
    try:
        decision = context.limiter.hit(f"{policy.group}:{client}", windows)
    except StoreUnavailable as exc:
        if not policy.fail_open:
            raise
        log.warning("rate limiter unavailable; serving without a limit", extra={"error": str(exc)})
        return None, None
    if decision is not None and not decision.allowed:
        log.info("rate limit exceeded", extra={"group": policy.group, "client": client})
        _audit(request, settings, "ratelimit.refused", "denied", 429, client=client, group=policy.group)
        return json_response(decision.body(), 429, decision.headers()), decision
    return None, decision


def _audit(
    request: flask.Request,
    settings: Settings,
    action: str,
    result: str,
    status: int,
    *,
    client: str | None = None,
    resource: str | None = None,
    **details: str,
) -> None:
    audit.record(
        action,
        result=result,
        resource=resource or f"{request.method} {request.path}",
        client=client,
        ip=client_ip(request, settings),
        status=status,
        request_id=request_id(),
        **details,
    )


def _audit_answer(
    request: flask.Request, policy: Policy, response: flask.Response, settings: Settings
) -> None:
    """Audit a served request: every answer of an audited route, and 429s of the handlers."""
    identity = current_identity()
    client = identity.client if identity is not None else None
    status = response.status_code
    if status == 429:
        _audit(request, settings, "ratelimit.refused", "denied", status, client=client)
        return
    if policy.audit is None:
        return
    resource = flask.g.get("audit_resource") if status < 300 else None
    result = "accepted" if status == 202 else "ok" if status < 400 else "refused"
    _audit(request, settings, policy.audit, result, status, client=client, resource=resource)


def incoming_trace(request: flask.Request) -> dict[str, str]:
    """The caller's W3C trace context; else Cloud Run's ``X-Cloud-Trace-Context`` as a traceparent."""
    carrier = tracing.carrier_of(request.headers)
    if carrier:
        return carrier
    cloud = (request.headers.get("X-Cloud-Trace-Context") or "").strip()
    trace_id, _, rest = cloud.partition("/")
    span, _, options = rest.partition(";")
    if len(trace_id) == 32 and span.isdigit():
        try:
            int(trace_id, 16)
        except ValueError:
            return {}
        flags = "01" if options.strip() == "o=1" else "00"
        return {tracing.TRACEPARENT: f"00-{trace_id.lower()}-{int(span) % 2**64:016x}-{flags}"}
    return {}


def current_identity() -> Identity | None:
    """The authenticated caller of the current request (``None``: open route or auth disabled)."""
    identity = flask.g.get("identity")
    return identity if isinstance(identity, Identity) else None


def client_ip(request: flask.Request, settings: Settings) -> str:
    """The caller's address: X-Forwarded-For is believed from ``TRUSTED_PROXIES`` (CIDRs), or else
    from the ``TRUSTED_PROXY_HOPS`` proxies in front, which append to it."""
    if settings.trusted_proxies:
        return ipfilter.forwarded_client(
            request.remote_addr or "unknown",
            request.headers.get("X-Forwarded-For", ""),
            settings.trusted_proxies,
        )
    hops = settings.trusted_proxy_hops
    route = [request.remote_addr or "unknown"]
    if hops:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
        route = [part for part in forwarded if part] + route
    return route[-(hops + 1)] if len(route) > hops else route[0]


def _over_https(request: flask.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return forwarded == "https" or request.scheme == "https"


def _cors(request: flask.Request, response: flask.Response, settings: Settings) -> None:
    """Allow exactly the configured origins (``CORS_ORIGINS``); never a wildcard, no credentials."""
    origin = (request.headers.get("Origin") or "").strip()
    if not origin or origin not in settings.cors_origins:
        if request.method == "OPTIONS":
            response.headers.pop("Access-Control-Allow-Methods", None)
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers.add("Vary", "Origin")
    response.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE_HEADERS
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Headers"] = _CORS_ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"


def request_id() -> str:
    return str(flask.g.get("request_id", ""))


def audit_message(message_id: str) -> None:
    """Name the message the current request acted on in its audit record (``message:<id>``)."""
    flask.g.audit_resource = f"message:{message_id}"


def read_json_body(
    request: flask.Request, max_bytes: int, *, max_depth: int = 32
) -> tuple[Any, flask.Response | None]:
    """Parse a JSON request body within ``max_bytes`` and ``max_depth``; on failure the error answer.

    A ``Content-Type`` other than JSON (``application/json``, ``application/*+json``, parameters
    allowed) is refused with 415; a missing one is accepted, since the body is parsed as strict JSON
    either way (``NaN``/``Infinity`` and unpaired surrogates are refused too).
    """
    content_type = request.headers.get("Content-Type")
    if content_type is not None and not _is_json(request.mimetype):
        return None, error_response(
            415,
            "Unsupported Media Type",
            f"Content-Type must be application/json; got {content_type[:100]!r}",
            field="Content-Type",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        return None, _too_large(max_bytes)
    raw = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        return None, _too_large(max_bytes)
    if not raw.strip():
        return None, error_response(
            400, "Invalid request", "request body is empty; send a JSON object", field="body"
        )
    try:
        document = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        return None, _too_deep(max_depth)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, error_response(
            400, "Invalid request", f"request body is not valid JSON: {exc}", field="body"
        )
    problem = _check_structure(document, max_depth)
    if problem == "depth":
        return None, _too_deep(max_depth)
    if problem:
        return None, error_response(400, "Invalid request", problem, field="body")
    return document, None


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check_structure(document: Any, max_depth: int) -> str:
    """``"depth"`` when nested deeper than ``max_depth``, a message for unencodable text, else ``""``."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                return "depth"
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in items:
                if key is not None and not _encodable(key):
                    return "request body contains an unpaired UTF-16 surrogate"
                stack.append((item, depth + 1))
        elif isinstance(value, str) and not _encodable(value):
            return "request body contains an unpaired UTF-16 surrogate"
    return ""


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _too_deep(max_depth: int) -> flask.Response:
    return error_response(
        400, "Invalid request", f"request body is nested deeper than {max_depth} levels", field="body"
    )


def _too_large(max_bytes: int) -> flask.Response:
    return error_response(
        413,
        "Request body too large",
        f"the body must be at most {max_bytes} bytes",
        field="body",
        max_size=max_bytes,
    )


def validation_details(errors: list[Any]) -> list[dict[str, str]]:
    """pydantic errors -> ``[{"field": "user_number", "message": "Field required"}, ...]``."""
    details = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ())) or "body"
        message = str(error.get("msg", "invalid value"))
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        details.append({"field": location, "message": message})
    return details


def _correlation_id() -> str:
    """A UUIDv4-shaped request id from the process's PRNG: it correlates logs, it guards nothing,
    so it does not need a system entropy call per request."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))
