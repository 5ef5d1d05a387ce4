"""The whole API on one port: the three functions (built by functions-framework) plus the bridge.

``python -m shared.localstack`` (what ``make run`` starts); ``--check`` validates the settings and
reaches each dependency instead (:mod:`shared.configcheck`); ``--reload`` restarts the stack when a
source file changes (:mod:`shared.devserver`, ``make dev``). Without ``REDIS_URL``/``RABBITMQ_URL`` it
runs on embedded backends (fakeredis, an in-memory queue) and the ``mock`` agent; with them it uses
the real servers, exactly like the deployed functions.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from shared import audit
from shared.config import Settings, load_settings
from shared.errors import ConfigError
from shared.observability import configure_logging
from shared.runtime import Runtime, build_bridge_consumer, build_runtime, set_runtime

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORKER_PATH = "/internal/worker"
WEBHOOK_PREFIX = "/api/v1/message/webhook/"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def load_function(name: str) -> WSGIApp:
    """Build function ``name`` exactly as functions-framework does in production."""
    import functions_framework

    app: WSGIApp = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target=name, source=str(ROOT / "functions" / name / "main.py"), signature_type="http"
    )
    return app


class PathDispatcher:
    """Route each request to the function that owns its path in production."""

    def __init__(self, webhook: WSGIApp, worker: WSGIApp, poll: WSGIApp) -> None:
        self.webhook, self.worker, self.poll = webhook, worker, poll

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(WEBHOOK_PREFIX):
            return self.webhook(environ, start_response)
        if path == WORKER_PATH:
            return self.worker(environ, start_response)
        return self.poll(environ, start_response)


class LocalStack:
    """Server + bridge, started and stopped together."""

    def __init__(self, settings: Settings, *, port: int | None = None, host: str | None = None) -> None:
        self.runtime: Runtime = build_runtime(settings)
        set_runtime(self.runtime)
        app = PathDispatcher(load_function("webhook"), load_function("worker"), load_function("poll"))
        self.server: BaseWSGIServer = make_server(
            host or settings.host, settings.port if port is None else port, app, threaded=True
        )
        self.port = self.server.server_port
        if not settings.worker_url:
            # The bridge drives the worker mounted on this very server.
            worker_url = f"http://127.0.0.1:{self.port}{WORKER_PATH}"
            self.runtime.settings = settings.model_copy(update={"worker_url": worker_url})
        self.consumer = build_bridge_consumer(self.runtime)
        self._threads: list[threading.Thread] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalStack:
        for target, name in ((self.server.serve_forever, "http"), (self.consumer.run, "bridge")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.consumer.stop()
        self.server.shutdown()
        for thread in self._threads:
            thread.join(timeout=35)
        self.runtime.close()
        set_runtime(None)


CREDENTIAL_VARIABLES = ("API_TOKEN", "API_TOKENS", "API_KEYS", "JWT_SECRET", "JWT_PUBLIC_KEY_FILE")


def _prepare_environment() -> str | None:
    """A random admin token when no credential is configured (returned, to be printed)."""
    disabled = os.environ.get("AUTH_DISABLED", "").strip().lower() in ("1", "true", "yes", "on")
    if disabled or any(os.environ.get(name, "").strip() for name in CREDENTIAL_VARIABLES):
        return None
    token = secrets.token_urlsafe(32)
    os.environ["API_TOKEN"] = token
    return token


def _banner(stack: LocalStack, generated_token: str | None = None) -> str:
    settings = stack.runtime.settings
    backends = "embedded (fakeredis + in-memory queue)" if settings.embedded else "Redis + RabbitMQ"
    url = f"http://localhost:{stack.port}"
    if settings.auth_disabled:
        auth_line = "Authentication: DISABLED (AUTH_DISABLED=true)"
        auth = ""
    elif generated_token:
        auth_line = f"Local admin token (generated; set API_TOKEN to choose one): {generated_token}"
        auth = f' -H "Authorization: Bearer {generated_token}"'
    else:
        auth_line = "Authentication: configured credentials (API_TOKEN / API_TOKENS / API_KEYS / JWT)"
        auth = ' -H "Authorization: Bearer $API_TOKEN"'
    return "\n".join(
        [
            f"EAí Agent Gateway listening on {url}  (backends: {backends}; agent: {settings.agent_provider})",
            auth_line,
            "Try it:",
            f"  curl -s -X POST {url}/api/v1/message/webhook/user{auth} \\",
            "       -H 'Content-Type: application/json' \\",
            '       -d \'{"user_number":"5521999999999","message":"Olá!"}\'',
            f"  curl -s{auth} '{url}/api/v1/message/response?message_id=<message_id from above>'",
            f"OpenAPI: {url}/openapi.json   Health: {url}/health   Ctrl-C stops.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        from shared import configcheck

        raise SystemExit(configcheck.main())
    if "--reload" in args:
        from shared import devserver

        raise SystemExit(devserver.main([a for a in args if a != "--reload"]))
    generated_token = _prepare_environment()
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings)
    audit.configuration(settings, component="localstack")
    stack = LocalStack(settings).start()
    print(_banner(stack, generated_token), flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    print("stopping...", flush=True)
    stack.stop()


if __name__ == "__main__":
    main()
