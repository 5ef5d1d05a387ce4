"""With the worker saturated, a high-priority message overtakes a backlog of normal ones."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.localstack import LocalStack
from tests.conftest import start_stack
from tests.helpers import api, poll_until_final

pytestmark = pytest.mark.integration

WEBHOOK = "/api/v1/message/webhook/user"


@pytest.mark.parametrize("backend", ["rabbitmq", "embedded"])
def test_high_priority_finishes_before_the_waiting_backlog(real: Settings, backend: str) -> None:
    overrides: dict[str, object] = {"max_parallel": 1, "mock_agent_latency_ms": 300}
    if backend == "embedded":
        overrides.update({"redis_url": None, "rabbitmq_url": None})
    stack: LocalStack = start_stack(real.model_copy(update=overrides))
    try:
        # Different users: priority never reorders one user's own messages.
        normal = [_send(stack, f"55219000000{n:02d}", "normal") for n in range(6)]
        high = _send(stack, "5521911111111", "high")
        results = {
            message_id: poll_until_final(stack.base_url, message_id, timeout=30)
            for message_id in [*normal, high]
        }
    finally:
        stack.stop()
    assert all(result["status"] == "completed" for result in results.values())
    finish_order = sorted(results, key=lambda message_id: _finished_at(stack, message_id))
    # The first normal message was already running (and maybe the next one fetched); the high one
    # then goes before everything still waiting.
    assert finish_order.index(high) <= 2, finish_order


def _send(stack: LocalStack, user_number: str, priority: str) -> str:
    response = api.post(
        stack.base_url + WEBHOOK, json={"user_number": user_number, "message": "oi", "priority": priority}
    )
    assert response.status_code == 202, response.text
    message_id: str = response.json()["message_id"]
    return message_id


def _finished_at(stack: LocalStack, message_id: str) -> str:
    finished: str = stack.runtime.store.read_summary(message_id)["finished_at"]
    return finished
