"""/metrics, /health and correlated logs, through the in-process gateway."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from shared import metrics
from shared.errors import StoreUnavailable
from shared.observability import bind, configure_logging
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WEBHOOK = "/api/v1/message/webhook/user"
ROOT = Path(__file__).resolve().parents[2]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def push(client: Any, body: bytes) -> Any:
    envelope = {"message": {"data": base64.b64encode(body).decode(), "messageId": "1"}, "subscription": "s"}
    return client.post("/internal/worker", json=envelope)


def test_metrics_count_requests_messages_external_calls_and_queue_depth(make_gateway):
    client, runtime = make_gateway()
    before = {
        "http": value("http_requests_total", method="POST", endpoint=WEBHOOK, status_code="202"),
        "accepted": value("message_processing_total", message_type="text", status="accepted"),
        "completed": value("message_processing_total", message_type="text", status="completed"),
        "failed_code": value("message_processing_errors_total", error_code="AGENT_ERROR"),
        "agent": value("external_api_calls_total", service="agent:mock", outcome="success"),
        "agent_error": value("external_api_calls_total", service="agent:mock", outcome="error"),
        "duration": value("message_processing_duration_seconds_count", message_type="text"),
    }
    for text in ("olá", "FAIL_PERMANENT now"):
        assert (
            client.post(
                WEBHOOK, json={"user_number": "5521999990000", "message": text}, headers=ADMIN
            ).status_code
            == 202
        )
    scraped = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    assert f'message_queue_depth{{queue="{runtime.topology.queue}"}} 2.0' in scraped
    assert f'message_queue_depth{{queue="{runtime.topology.dlq}"}} 0.0' in scraped
    assert runtime.broker is not None
    while (queued := runtime.broker.get(timeout=0.1)) is not None:
        assert push(client, queued.body).status_code == 200

    assert (
        value("http_requests_total", method="POST", endpoint=WEBHOOK, status_code="202") == before["http"] + 2
    )
    assert value("message_processing_total", message_type="text", status="accepted") == before["accepted"] + 2
    assert (
        value("message_processing_total", message_type="text", status="completed") == before["completed"] + 1
    )
    assert value("message_processing_errors_total", error_code="AGENT_ERROR") == before["failed_code"] + 1
    assert value("external_api_calls_total", service="agent:mock", outcome="success") == before["agent"] + 1
    assert (
        value("external_api_calls_total", service="agent:mock", outcome="error") == before["agent_error"] + 1
    )
    assert value("message_processing_duration_seconds_count", message_type="text") == before["duration"] + 2
    assert value("worker_tasks_in_flight") == 0
    scraped = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    for name in ("http_request_duration_seconds_bucket", "external_api_response_time_seconds_bucket"):
        assert name in scraped
    client.get("/health/not-a-dependency-123", headers=ADMIN)  # prefix routes get one bounded label
    assert value("http_requests_total", method="GET", endpoint="/health/*", status_code="404") >= 1
    client.get("/no/such/path/4711", headers=ADMIN)
    assert 'endpoint="/no/such/path/4711"' not in client.get("/metrics", headers=ADMIN).get_data(as_text=True)


def test_queue_depth_is_cached_and_skipped_when_the_broker_is_down():
    calls: list[int] = []

    def source() -> dict[str, int]:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("down")
        return {"q": 3}

    collector = metrics.QueueDepthCollector(source, ttl_s=60)
    assert collector.depths() == {"q": 3}
    assert collector.depths() == {"q": 3}
    assert len(calls) == 1  # cached
    collector = metrics.QueueDepthCollector(source, ttl_s=0)
    assert collector.depths() == {}  # the broker failed: no sample, not a stale one


def test_external_call_outcomes():
    with metrics.external_call("unit-test") as call:
        call.outcome = "http_4xx"
    with pytest.raises(TimeoutError), metrics.external_call("unit-test"):
        raise TimeoutError
    assert value("external_api_calls_total", service="unit-test", outcome="http_4xx") >= 1
    assert value("external_api_calls_total", service="unit-test", outcome="timeout") >= 1
    assert value("external_api_response_time_seconds_count", service="unit-test") >= 2


def test_multiprocess_mode_aggregates_every_process(tmp_path: Path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = "from shared import metrics; metrics.observe_http('GET', '/live', 200, 0.01)"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], cwd=ROOT, env=env, check=True)
    render = "from shared import metrics; print(metrics.render()[0].decode())"
    output = subprocess.run(
        [sys.executable, "-c", render], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'http_requests_total{endpoint="/live",method="GET",status_code="200"} 2.0' in output


def test_health_reports_every_dependency_with_latency(make_gateway):
    client, runtime = make_gateway()
    body = client.get("/health", headers=ADMIN).get_json()
    assert body["status"] == "healthy"
    checks = body["checks"]
    assert set(checks) == {"redis", "rabbitmq", "agent", "speech"}
    for check in checks.values():
        assert isinstance(check["latency_ms"], float)
    assert checks["rabbitmq"]["queues"] == {
        runtime.topology.queue: {"depth": 0, "consumers": 0},
        runtime.topology.dlq: {"depth": 0, "consumers": 0},
    }
    assert checks["agent"]["required"] is False
    assert checks["agent"]["providers"]["mock"] == {"configured": True, "breaker": "closed"}
    agent = client.get("/health/agent", headers=ADMIN).get_json()
    assert list(agent["checks"]) == ["agent"]


def test_agent_outage_never_fails_health_or_readiness(make_gateway):
    client, _ = make_gateway(agent_provider="google_agent_engine")  # no project: unusable
    health = client.get("/health", headers=ADMIN)
    assert health.status_code == 200
    agent = health.get_json()["checks"]["agent"]
    assert agent["status"] == "degraded"
    assert agent["providers"]["google_agent_engine"]["configured"] is False
    assert client.get("/health/agent", headers=ADMIN).status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert set(ready.get_json()["checks"]) == {"redis", "rabbitmq"}


def test_open_breaker_is_shown_but_not_failing(make_gateway):
    client, runtime = make_gateway()
    backend = runtime.backend("mock")
    backend.breaker.open()
    body = client.get("/health", headers=ADMIN).get_json()
    assert body["status"] == "healthy"
    assert body["checks"]["agent"]["providers"]["mock"]["breaker"] == "open"
    assert body["checks"]["agent"]["status"] == "degraded"


def test_redis_down_fails_readiness_and_health(make_gateway, monkeypatch):
    client, runtime = make_gateway()

    def down() -> None:
        raise StoreUnavailable("Redis unavailable: ConnectionError")

    monkeypatch.setattr(runtime.store, "ping", down)
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.get_json()["failing"] == ["redis"]
    health = client.get("/health", headers=ADMIN)
    assert health.status_code == 503 and health.get_json()["failing"] == ["redis"]
    assert client.get("/health/redis", headers=ADMIN).status_code == 503


@pytest.fixture
def json_logs(make_gateway) -> Iterator[tuple[Any, io.StringIO]]:
    stream = io.StringIO()
    client, runtime = make_gateway(google_project_id="demo-project")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(runtime.settings, stream)
    yield client, stream
    root.handlers, root.level = saved


def test_log_lines_carry_correlation_ids_without_tracing(json_logs):
    client, stream = json_logs
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    client.post(
        WEBHOOK,
        json={"user_number": "5521999990001", "message": "oi"},
        headers={**ADMIN, "X-Request-ID": "req-42", "X-Cloud-Trace-Context": f"{trace}/123;o=1"},
    )
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    accepted = next(e for e in entries if e["message"] == "message accepted")
    assert accepted["severity"] == "INFO"
    assert accepted["request_id"] == "req-42"
    assert accepted["message_id"]
    assert accepted["trace_id"] == trace
    assert accepted["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{trace}"
    assert "logging.googleapis.com/spanId" not in accepted  # no span without tracing


def test_text_format_shows_the_ids(make_gateway):
    stream = io.StringIO()
    _, runtime = make_gateway(log_format="text")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(runtime.settings, stream)
    try:
        with bind(request_id="r-1", message_id="m-1"):
            logging.getLogger("shared.test").info("hello token=%s", "s3cr3t-value")
    finally:
        root.handlers, root.level = saved
    line = stream.getvalue().strip()
    assert not line.startswith("{")
    assert line.endswith("[request_id=r-1 message_id=m-1]")
    assert "s3cr3t-value" not in line
