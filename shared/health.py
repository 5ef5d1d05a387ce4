"""Health, readiness and liveness probes.

``/health`` and ``/ready`` check Redis and RabbitMQ (each with its own timeout) and answer 503
naming the failing dependency; ``/health/<dependency>`` checks one; ``/live`` only says the process
answers. Intake readiness deliberately does not depend on the AI agents: the queue absorbs their
outages (the Go gateway went unready whenever Vertex blinked).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import flask
import pika

from shared.http import error_response, json_response
from shared.queue import connection_parameters
from shared.runtime import Runtime

Check = Callable[[Runtime], dict[str, Any]]
SERVICE = "eai-gateway"


def check_redis(runtime: Runtime) -> dict[str, Any]:
    runtime.store.ping()
    return {"mode": "embedded" if runtime.settings.redis_url is None else "redis"}


def check_rabbitmq(runtime: Runtime) -> dict[str, Any]:
    if runtime.broker is not None:
        return {"mode": "embedded", "queue_depth": runtime.broker.depth()}
    assert runtime.settings.rabbitmq_url is not None
    connection = pika.BlockingConnection(connection_parameters(runtime.settings.rabbitmq_url, timeout=3.0))
    try:
        declared = connection.channel().queue_declare(runtime.topology.queue, passive=True)
        return {
            "mode": "rabbitmq",
            "queue_depth": declared.method.message_count,
            "consumers": declared.method.consumer_count,
        }
    finally:
        connection.close()


CHECKS: dict[str, Check] = {"redis": check_redis, "rabbitmq": check_rabbitmq}


def _run(name: str, check: Check, runtime: Runtime) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = {"status": "healthy", **check(runtime)}
    except Exception as exc:
        result = {"status": "unhealthy", "error": f"{exc.__class__.__name__}: {exc}"[:300]}
    result["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def report(runtime: Runtime, names: list[str], words: tuple[str, str]) -> flask.Response:
    checks = {name: _run(name, CHECKS[name], runtime) for name in names}
    failing = [name for name, result in checks.items() if result["status"] != "healthy"]
    body: dict[str, Any] = {
        "status": words[1] if failing else words[0],
        "timestamp": _now(),
        "service": SERVICE,
        "checks": checks,
    }
    if failing:
        body["failing"] = failing
    return json_response(body, 503 if failing else 200)


def health(_request: flask.Request, runtime: Runtime) -> flask.Response:
    return report(runtime, list(CHECKS), ("healthy", "unhealthy"))


def ready(_request: flask.Request, runtime: Runtime) -> flask.Response:
    return report(runtime, list(CHECKS), ("ready", "not_ready"))


def dependency(request: flask.Request, runtime: Runtime) -> flask.Response:
    name = request.path.rstrip("/").rsplit("/", 1)[-1]
    if name not in CHECKS:
        known = ", ".join(sorted(CHECKS))
        return error_response(404, "Not Found", f"unknown dependency {name!r}; known: {known}", field="path")
    return report(runtime, [name], ("healthy", "unhealthy"))


def live(_request: flask.Request) -> flask.Response:
    return json_response({"status": "alive", "timestamp": _now(), "service": SERVICE})
