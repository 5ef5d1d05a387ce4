"""The production path, end to end: webhook -> queue -> bridge -> worker -> Redis -> poll."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.localstack import LocalStack
from tests.helpers import api, poll_until_final, wait_for

WEBHOOK = "/api/v1/message/webhook/user"


def send(stack: LocalStack, **body: object) -> httpx.Response:
    payload = {"user_number": "5521999999999", "message": "Olá, tudo bem?", **body}
    return api.post(stack.base_url + WEBHOOK, json=payload)


def assert_completed(stack: LocalStack) -> None:
    accepted = send(stack)
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["status"] == "processing"
    assert body["polling_endpoint"] == f"/api/v1/message/response?message_id={body['message_id']}"
    assert isinstance(body["estimated_wait_time"], int)

    result = poll_until_final(stack.base_url, body["message_id"])

    assert result["status"] == "completed"
    assert result["content"] == "Você disse: Olá, tudo bem?"
    assert result["thread_id"] == "5521999999999"
    assert result["message_type"] == "text"
    assert result["processing_time_ms"] >= 0
    data = result["data"]
    assert data["agent_id"] == "user_5521999999999"
    assert data["processed_at"] == body["message_id"]
    assert data["status"] == "done"
    kinds = [m["message_type"] for m in data["messages"]]
    assert kinds == ["user_message", "assistant_message", "usage_statistics"]


@pytest.mark.integration
def test_message_travels_the_real_brokers(real_stack: LocalStack) -> None:
    assert_completed(real_stack)
    store = real_stack.runtime.store
    thread = json.loads(str(store.client.get(store.key("thread", "5521999999999"))))
    assert thread["thread_id"] == "5521999999999"
    assert thread["message_count"] == 1
    assert store.client.get(store.key("user:last_activity", "5521999999999"))


def test_message_travels_the_embedded_backends(embedded_stack: LocalStack) -> None:
    assert_completed(embedded_stack)


def test_poll_answers_202_while_processing(embedded_stack: LocalStack) -> None:
    embedded_stack.consumer.stop()  # nothing drains the queue: the task stays processing
    wait_for(lambda: not any(t.is_alive() for t in embedded_stack._threads if t.name == "bridge"))
    accepted = send(embedded_stack).json()
    pending = api.get(
        embedded_stack.base_url + "/api/v1/message/response", params={"message_id": accepted["message_id"]}
    )
    assert pending.status_code == 202
    assert pending.json() == {"status": "processing", "message_id": accepted["message_id"]}


def test_agent_failure_ends_failed_with_error_code(embedded_stack: LocalStack) -> None:
    accepted = send(embedded_stack, message="FAIL_PERMANENT please").json()
    result = poll_until_final(embedded_stack.base_url, accepted["message_id"])
    assert result["status"] == "failed"
    assert result["error_code"] == "AGENT_ERROR"
    assert "simulated permanent failure" in result["error"]
    assert "data" not in result


def test_health_names_each_dependency(embedded_stack: LocalStack) -> None:
    response = api.get(embedded_stack.base_url + "/health")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert set(checks) == {"redis", "rabbitmq", "agent", "speech"}
    assert [name for name, check in checks.items() if check["required"]] == ["redis", "rabbitmq"]
    assert api.get(embedded_stack.base_url + "/live").json()["status"] == "alive"
    assert api.get(embedded_stack.base_url + "/ready").json()["status"] == "ready"
    one = api.get(embedded_stack.base_url + "/health/redis").json()
    assert list(one["checks"]) == ["redis"]
