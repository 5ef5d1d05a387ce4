"""The bridge's decisions for each worker answer (no broker needed)."""

from __future__ import annotations

import base64
import json

import fakeredis
import httpx
import pytest

from shared.bridge import Action, Bridge, RetryPolicy
from shared.models import PushEnvelope, QueueMessage
from shared.store import TaskStore

MESSAGE = QueueMessage(id="5b3c2f1e-1111-4222-8333-444455556666", user_number="5521", message="oi")


class ScriptedSink:
    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.envelopes: list[PushEnvelope] = []

    def deliver(self, envelope: PushEnvelope) -> int:
        self.envelopes.append(envelope)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        pass


def make_bridge(*answers: int | Exception, max_attempts: int = 3) -> tuple[Bridge, ScriptedSink, TaskStore]:
    store = TaskStore(fakeredis.FakeRedis(decode_responses=True))
    store.accept(MESSAGE.id, user_number="5521", provider="mock", callback_url=None, summary={})
    sink = ScriptedSink(*answers)
    policy = RetryPolicy(max_attempts=max_attempts, initial_delay_s=2, max_delay_s=10, busy_delay_s=1)
    return Bridge(sink, store, policy, subscription="sub"), sink, store


def test_2xx_acks() -> None:
    bridge, sink, _ = make_bridge(204)
    assert bridge.handle(MESSAGE.to_body(), retry_count=0, broker_message_id="1").action is Action.ACK
    envelope = sink.envelopes[0]
    assert envelope.delivery_attempt == 1
    assert base64.b64decode(envelope.message.data) == MESSAGE.to_body()
    assert envelope.message.message_id == "1"


def test_429_retries_soon_without_counting_an_attempt() -> None:
    bridge, _, _ = make_bridge(429)
    decision = bridge.handle(MESSAGE.to_body(), retry_count=1, broker_message_id="1")
    assert (decision.action, decision.retry_count, decision.delay_s) == (Action.RETRY, 1, 1)


@pytest.mark.parametrize("failure", [500, 503, httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("died")])
def test_transient_failures_back_off_exponentially(failure: int | Exception) -> None:
    delays = []
    for retry_count in (0, 1):
        bridge, sink, _ = make_bridge(failure, max_attempts=5)
        decision = bridge.handle(MESSAGE.to_body(), retry_count=retry_count, broker_message_id="1")
        assert decision.action is Action.RETRY
        assert decision.retry_count == retry_count + 1
        assert sink.envelopes[0].delivery_attempt == retry_count + 1
        delays.append(decision.delay_s)
    assert delays == [2, 4]


def test_an_unreachable_worker_is_not_an_attempt() -> None:
    # The worker never got the message (restarting, scaling up): retry soon, attempt not counted.
    bridge, _, _ = make_bridge(httpx.ConnectError("down"), max_attempts=1)
    decision = bridge.handle(MESSAGE.to_body(), retry_count=0, broker_message_id="1")
    assert (decision.action, decision.retry_count, decision.delay_s) == (Action.RETRY, 0, 1)


def test_backoff_is_capped() -> None:
    assert RetryPolicy(initial_delay_s=2, max_delay_s=10).backoff(10) == 10


def test_last_attempt_dead_letters_and_fails_the_task() -> None:
    bridge, _, store = make_bridge(500, max_attempts=3)
    decision = bridge.handle(MESSAGE.to_body(), retry_count=2, broker_message_id="1")
    assert decision.action is Action.DEAD_LETTER
    task = store.read_task(MESSAGE.id)
    assert task is not None
    assert task.status == "failed"
    assert task.summary["error_code"] == "DELIVERY_FAILED"
    assert "gave up after 3 attempts" in (task.error or "")


def test_a_4xx_is_final_at_once() -> None:
    bridge, _, store = make_bridge(400, max_attempts=5)
    decision = bridge.handle(MESSAGE.to_body(), retry_count=0, broker_message_id="1")
    assert decision.action is Action.DEAD_LETTER
    assert store.read_task(MESSAGE.id).status == "failed"  # type: ignore[union-attr]


def test_undecodable_messages_are_dead_lettered() -> None:
    bridge, _, _ = make_bridge(400)
    assert bridge.handle(b"garbage", retry_count=0, broker_message_id="").action is Action.DEAD_LETTER


def test_envelope_attributes_carry_the_retry_count() -> None:
    bridge, sink, _ = make_bridge(200)
    bridge.handle(MESSAGE.to_body(), retry_count=2, broker_message_id="9")
    wire = json.loads(sink.envelopes[0].to_json())
    assert wire["deliveryAttempt"] == 3
    assert wire["message"]["attributes"] == {"retry_count": "2"}
