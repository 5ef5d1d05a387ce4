"""Health, readiness and liveness probes, and the queue depths behind ``message_queue_depth``.

* ``/health``: every dependency with its status and latency. Redis and RabbitMQ (with the depth of
  the work queue and the dead-letter queue) are *required*: one failing makes the answer 503. The
  external APIs (agent providers with their circuit breakers, speech) are *informational*: shown,
  never failing health.
* ``/health/<dependency>``: one of them (an informational one always answers 200).
* ``/ready``: only what intake needs, Redis and RabbitMQ. Never the agents: the queue absorbs their
  outages (the Go gateway went unready whenever Vertex blinked, and took intake down with it).
* ``/live``: the process answers.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import flask
import pika
import pika.exceptions

from shared.http import error_response, json_response
from shared.metrics import QueueDepthCollector
from shared.queue import connection_parameters
from shared.runtime import Runtime

Check = Callable[[Runtime], dict[str, Any]]
SERVICE = "eai-gateway"
PROBE_TIMEOUT_S = 3.0


def check_redis(runtime: Runtime) -> dict[str, Any]:
    runtime.store.ping()
    return {"mode": "embedded" if runtime.settings.redis_url is None else "redis"}


def rabbit_queues(runtime: Runtime, *, timeout: float = PROBE_TIMEOUT_S) -> dict[str, dict[str, int]]:
    """``{queue: {"depth": n, "consumers": n}}`` for the work queue and the dead-letter queue."""
    names = (runtime.topology.queue, runtime.topology.dlq)
    if runtime.broker is not None:
        depths = (runtime.broker.depth(), len(runtime.broker.dead_letters))
        return {name: {"depth": depth, "consumers": 0} for name, depth in zip(names, depths, strict=True)}
    assert runtime.settings.rabbitmq_url is not None
    connection = pika.BlockingConnection(
        connection_parameters(runtime.settings.rabbitmq_url, timeout=timeout)
    )
    try:
        found: dict[str, dict[str, int]] = {}
        for name in names:
            channel = connection.channel()  # a passive declare of a missing queue closes its channel
            try:
                declared = channel.queue_declare(name, passive=True)
            except pika.exceptions.ChannelClosedByBroker:
                continue
            found[name] = {
                "depth": int(declared.method.message_count),
                "consumers": int(declared.method.consumer_count),
            }
            channel.close()
        return found
    finally:
        connection.close()


def check_rabbitmq(runtime: Runtime) -> dict[str, Any]:
    queues = rabbit_queues(runtime)
    work = queues.get(runtime.topology.queue)
    if work is None:
        raise RuntimeError(f"queue {runtime.topology.queue!r} does not exist")
    result: dict[str, Any] = {
        "mode": "embedded" if runtime.broker is not None else "rabbitmq",
        "queue_depth": work["depth"],
        "queues": queues,
    }
    if runtime.broker is None:
        result["consumers"] = work["consumers"]
    return result


def check_agent(runtime: Runtime) -> dict[str, Any]:
    """The configured provider and its fallbacks: configured or not, and each circuit breaker."""
    settings = runtime.settings
    chain = [settings.agent_provider, *settings.agent_fallback_providers]
    providers: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(chain):
        try:
            backend = runtime.backend(name)
        except Exception as exc:
            providers[name] = {"configured": False, "error": f"{exc.__class__.__name__}: {exc}"[:300]}
            continue
        breaker = getattr(backend, "breaker", None)
        providers[name] = {
            "configured": True,
            "breaker": str(breaker.current_state) if breaker is not None else "none",
        }
    usable = [p for p in providers.values() if p["configured"] and p.get("breaker") != "open"]
    return {
        "status": "healthy" if usable else "degraded",
        "provider": settings.agent_provider,
        "providers": providers,
    }


def check_speech(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings
    return {"provider": settings.transcribe_provider, "language": settings.transcribe_language_code}


REQUIRED: dict[str, Check] = {"redis": check_redis, "rabbitmq": check_rabbitmq}
INFORMATIONAL: dict[str, Check] = {"agent": check_agent, "speech": check_speech}
CHECKS: dict[str, Check] = {**REQUIRED, **INFORMATIONAL}


def _run(name: str, check: Check, runtime: Runtime) -> dict[str, Any]:
    started = time.perf_counter()
    required = name in REQUIRED
    try:
        result = {"status": "healthy", **check(runtime)}
    except Exception as exc:
        result = {
            "status": "unhealthy" if required else "degraded",
            "error": f"{exc.__class__.__name__}: {exc}"[:300],
        }
    result["required"] = required
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def report(runtime: Runtime, names: list[str], words: tuple[str, str]) -> flask.Response:
    checks = {name: _run(name, CHECKS[name], runtime) for name in names}
    failing = [
        name for name, result in checks.items() if result["required"] and result["status"] != "healthy"
    ]
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
    """Only what intake needs: Redis and RabbitMQ, never the agents."""
    return report(runtime, list(REQUIRED), ("ready", "not_ready"))


def dependency(request: flask.Request, runtime: Runtime) -> flask.Response:
    name = request.path.rstrip("/").rsplit("/", 1)[-1]
    if name not in CHECKS:
        known = ", ".join(sorted(CHECKS))
        return error_response(404, "Not Found", f"unknown dependency {name!r}; known: {known}", field="path")
    return report(runtime, [name], ("healthy", "unhealthy"))


def live(_request: flask.Request) -> flask.Response:
    return json_response({"status": "alive", "timestamp": _now(), "service": SERVICE})


# --- message_queue_depth, read at scrape time (cached a few seconds) ------------------------------

DEPTH_CACHE_S = 5.0
_depth_collectors: dict[int, tuple[weakref.ref[Runtime], QueueDepthCollector]] = {}


def queue_depth_collector(runtime: Runtime) -> QueueDepthCollector:
    """The runtime's ``message_queue_depth`` collector (one per runtime, so its cache is shared)."""
    entry = _depth_collectors.get(id(runtime))
    if entry is not None and entry[0]() is runtime:
        return entry[1]
    for key in [k for k, (ref, _) in _depth_collectors.items() if ref() is None]:
        _depth_collectors.pop(key, None)
    ref = weakref.ref(runtime)

    def depths() -> dict[str, int]:
        current = ref()
        if current is None:
            return {}
        return {name: q["depth"] for name, q in rabbit_queues(current, timeout=1.0).items()}

    collector = QueueDepthCollector(depths, ttl_s=DEPTH_CACHE_S)
    _depth_collectors[id(runtime)] = (ref, collector)
    return collector
