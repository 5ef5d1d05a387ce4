"""Small HTTP helpers shared by the three functions: JSON answers, errors, routing, request ids."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import flask

from shared.errors import StoreUnavailable
from shared.observability import HTTP_REQUESTS

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


@dataclass
class Router:
    """Exact-path routing for a function that receives every path of its URL."""

    routes: dict[str, dict[str, Handler]] = field(default_factory=dict)
    prefixes: list[tuple[str, str, Handler]] = field(default_factory=list)

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.routes.setdefault(path.rstrip("/") or "/", {})[method] = handler

    def add_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        self.prefixes.append((method, prefix, handler))

    def dispatch(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        request_id = (request.headers.get("X-Request-ID") or "").strip()[:128] or str(uuid.uuid4())
        flask.g.request_id = request_id
        try:
            response = self._route(request)
        except StoreUnavailable as exc:
            log.warning("Redis unavailable while serving a request", extra={"error": str(exc)})
            response = unavailable("Task storage is temporarily unavailable; retry shortly")
        except Exception:
            log.exception("unhandled error", extra={"path": request.path, "request_id": request_id})
            response = error_response(500, "Internal server error", "Unexpected error; it was logged")
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers["X-Request-ID"] = request_id
        route = request.path if request.path.rstrip("/") in self.routes else "other"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        log.debug(
            "HTTP request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "request_id": request_id,
            },
        )
        return response

    def _route(self, request: flask.Request) -> flask.Response:
        path = request.path.rstrip("/") or "/"
        methods = self.routes.get(path)
        if methods is None:
            for method, prefix, handler in self.prefixes:
                if path.startswith(prefix) and request.method == method:
                    return handler(request)
            return error_response(
                404, "Not Found", "The requested endpoint does not exist", path=request.path
            )
        chosen = methods.get(request.method) or (methods.get("GET") if request.method == "HEAD" else None)
        if chosen is None:
            return self._not_allowed(request, methods)
        return chosen(request)

    @staticmethod
    def _not_allowed(request: flask.Request, methods: dict[str, Handler]) -> flask.Response:
        allowed = ", ".join(sorted(methods))
        return error_response(
            405,
            "Method Not Allowed",
            f"{request.method} is not allowed here; use {allowed}",
            headers={"Allow": allowed},
        )


def request_id() -> str:
    return str(flask.g.get("request_id", ""))


def read_json_body(request: flask.Request, max_bytes: int) -> tuple[Any, flask.Response | None]:
    """Parse a JSON request body within ``max_bytes``; on failure return the error response."""
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
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, error_response(
            400, "Invalid request", f"request body is not valid JSON: {exc}", field="body"
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
