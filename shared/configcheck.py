"""Configuration check: validate every setting, then reach each configured dependency.

``python -m shared.localstack --check`` (``make check-config``) prints one line per item::

    ✅ settings: 96 settings valid (7 set in the environment)
    ✅ Redis: PONG from 10.0.0.3:6379 (single server)
    ❌ RabbitMQ: cannot connect to 10.0.0.4:5672: AMQPConnectionError
    ⚠️ Speech-to-Text: speech.googleapis.com unreachable: ConnectError (voice notes only)

and exits 1 when a critical item failed (a setting, credentials, Redis, RabbitMQ, the default agent
provider), else 0. Warnings (⚠️) never fail the check: embedded backends, the mock agent, fallback
providers, Speech-to-Text. Reasons never contain secrets: URLs are shown as host:port only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from shared.config import _SECRET_NAME, Settings, env_name

Status = Literal["ok", "fail", "warn"]
MARKS: dict[Status, str] = {"ok": "✅", "fail": "❌", "warn": "⚠️"}


@dataclass(frozen=True)
class Line:
    status: Status
    name: str
    reason: str
    critical: bool = True

    def render(self) -> str:
        return f"{MARKS[self.status]} {self.name}: {self.reason}"

    @property
    def failed(self) -> bool:
        return self.status == "fail" and self.critical


def _where(url: str) -> str:
    """``host:port`` of a URL (never its credentials or path)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "an unparsable URL"


def _reason(exc: BaseException) -> str:
    from shared.observability import redact

    text = str(exc).strip()
    return redact(f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__)[:200]


def validate() -> tuple[Settings | None, list[Line]]:
    """Read the settings from the environment: one ❌ line per invalid setting."""
    from_environment: dict[str, Any] = {}
    try:
        settings = Settings(**from_environment)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            if field in Settings.model_fields:
                name = env_name(Settings, field)
            else:  # read from the environment: the location is the variable's name
                name = field.upper() or "settings"
            shown = "" if not error["loc"] or _SECRET_NAME.search(name) else f" (got {error.get('input')!r})"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(Line("fail", f"setting {name}", f"{message}{shown}"))
        return None, lines
    count = len(Settings.model_fields)
    return settings, [
        Line("ok", "settings", f"{count} settings valid ({len(settings.model_fields_set)} set)")
    ]


def check_credentials(settings: Settings) -> Line:
    from shared.auth import build_authenticator

    if settings.auth_disabled:
        return Line("warn", "credentials", "AUTH_DISABLED=true: every route is open", critical=False)
    if not build_authenticator(settings).configured:
        return Line(
            "fail", "credentials", "none configured: set API_TOKEN, API_TOKENS, API_KEYS or JWT_SECRET"
        )
    return Line("ok", "credentials", "configured")


def check_redis(settings: Settings, timeout: float) -> Line:
    from shared.store import build_redis, cluster_url

    if settings.redis_url is None:
        return Line("warn", "Redis", "REDIS_URL not set: embedded in-process store (local use only)", False)
    cluster = cluster_url(settings.redis_url, cluster=settings.redis_cluster) is not None
    where = _where(settings.redis_url)
    try:
        client = build_redis(
            settings.redis_url,
            connect_timeout=timeout,
            operation_timeout=timeout,
            pool_size=2,
            cluster=cluster,
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return Line("fail", "Redis", f"cannot reach {where}: {_reason(exc)}")
    return Line("ok", "Redis", f"PONG from {where} ({'cluster' if cluster else 'single server'})")


def check_rabbitmq(settings: Settings, timeout: float) -> Line:
    import pika

    from shared.queue import connection_parameters

    if not settings.rabbitmq_url:
        return Line("warn", "RabbitMQ", "RABBITMQ_URL not set: in-memory queue (local use only)", False)
    where = _where(settings.rabbitmq_url)
    try:
        connection = pika.BlockingConnection(connection_parameters(settings.rabbitmq_url, timeout=timeout))
        connection.close()
    except Exception as exc:
        return Line("fail", "RabbitMQ", f"cannot connect to {where}: {_reason(exc)}")
    return Line("ok", "RabbitMQ", f"connected to {where}")


def _http(
    name: str,
    url: str,
    timeout: float,
    *,
    critical: bool,
    headers: dict[str, str] | None = None,
    note: str = "",
) -> Line:
    """Reachable = any HTTP answer below 500 (401/403 with credentials sent: refused)."""
    where = _where(url)
    bad: Status = "fail" if critical else "warn"
    try:
        response = httpx.get(url, timeout=timeout, headers=headers or {}, follow_redirects=False)
    except httpx.HTTPError as exc:
        return Line(bad, name, f"{where} unreachable: {_reason(exc)}{note}", critical)
    if response.status_code >= 500:
        return Line(bad, name, f"{where} answered HTTP {response.status_code}{note}", critical)
    if headers and response.status_code in (401, 403):
        return Line(bad, name, f"{where} refused the credentials (HTTP {response.status_code})", critical)
    return Line("ok", name, f"{where} reachable (HTTP {response.status_code})", critical)


def check_provider(settings: Settings, name: str, timeout: float, *, default: bool) -> Line:
    label = f"agent provider {name}" + ("" if default else " (fallback)")
    if name == "mock":
        return Line("warn", label, "mock agent: canned replies, no AI behind it", critical=False)
    if name == "openai":
        headers = {"Authorization": f"Bearer {settings.openai_api_key}"} if settings.openai_api_key else None
        return _http(
            label,
            settings.openai_base_url.rstrip("/") + "/models",
            timeout,
            critical=default,
            headers=headers,
        )
    if name == "eai":
        if not settings.eai_agent_service_url:
            return Line("fail" if default else "warn", label, "EAI_AGENT_SERVICE_URL is not set", default)
        return _http(label, settings.eai_agent_service_url, timeout, critical=default)
    if name == "google_agent_engine":
        missing = [
            env_name(Settings, field)
            for field in ("google_project_id", "reasoning_engine_id")
            if not getattr(settings, field)
        ]
        if missing:
            return Line("fail" if default else "warn", label, f"{', '.join(missing)} not set", default)
        endpoint = (
            settings.agent_engine_api_endpoint
            or f"https://{settings.google_region}-aiplatform.googleapis.com"
        )
        return _http(label, endpoint, timeout, critical=default)
    return Line("warn", label, "no connectivity check for this provider", critical=False)


def check_eai_service(settings: Settings, timeout: float) -> Line | None:
    """The EAI service, when configured and not already checked as the default provider."""
    if not settings.eai_agent_service_url or settings.agent_provider == "eai":
        return None
    return _http("EAI service", settings.eai_agent_service_url, timeout, critical=False)


def check_speech(settings: Settings, timeout: float) -> Line | None:
    if settings.transcribe_provider != "google":
        return None
    location = settings.transcribe_location
    host = "speech.googleapis.com" if location == "global" else f"{location}-speech.googleapis.com"
    if not settings.google_project_id:
        return Line("warn", "Speech-to-Text", "GOOGLE_PROJECT_ID not set (voice notes only)", critical=False)
    return _http("Speech-to-Text", f"https://{host}/", timeout, critical=False, note=" (voice notes only)")


def run_checks(timeout: float = 3.0) -> list[Line]:
    settings, lines = validate()
    if settings is None:
        return lines
    lines.append(check_credentials(settings))
    checks: list[Callable[[], Line | None]] = [
        lambda: check_redis(settings, timeout),
        lambda: check_rabbitmq(settings, timeout),
        lambda: check_provider(settings, settings.agent_provider, timeout, default=True),
        *(
            (lambda n=name: check_provider(settings, n, timeout, default=False))
            for name in settings.agent_fallback_providers
        ),
        lambda: check_eai_service(settings, timeout),
        lambda: check_speech(settings, timeout),
    ]
    for check in checks:
        line = check()
        if line is not None:
            lines.append(line)
    return lines


def main(out: Any = None, timeout: float = 3.0) -> int:
    """Print the report; 1 when a critical item failed."""
    stream = out or sys.stdout
    lines = run_checks(timeout)
    for line in lines:
        print(line.render(), file=stream, flush=True)
    failed = [line for line in lines if line.failed]
    summary = f"{len(failed)} critical problem(s)" if failed else "configuration OK"
    print(f"{'❌' if failed else '✅'} {summary}", file=stream, flush=True)
    return 1 if failed else 0
