"""Delivery guarantees on the real Redis (and RabbitMQ): lease, per-user order, skips, debounce,
dead letters, bounded timeouts and graceful bridge shutdown."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from shared.bridge import Action, Bridge, HttpSink, RabbitConsumer, RetryPolicy
from shared.config import Settings
from shared.delivery import ORDER_EPOCH, ORDER_SEQ, Position
from shared.errors import AgentUnavailable, BusyError, QueueUnavailable, StoreUnavailable
from shared.models import QueueMessage, TaskStatus, go_timestamp, new_message_id
from shared.pipeline import Pipeline
from shared.providers.base import AgentReply, AgentRequest, HistoryMessage
from shared.queue import RabbitPublisher, Topology
from shared.runtime import Runtime, build_runtime
from shared.store import TaskStore, build_redis
from tests.conftest import start_stack
from tests.helpers import RABBITMQ_URL, RecordingServer, api, wait_for

pytestmark = pytest.mark.integration

USER = "5521911112222"


class CountingAgent:
    """Counts calls per message id; optionally slow, optionally failing transiently once."""

    name = "mock"

    def __init__(self, delay_s: float = 0.0, fail_first: bool = False) -> None:
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.calls: list[AgentRequest] = []
        self._lock = threading.Lock()

    def send(self, request: AgentRequest) -> AgentReply:
        with self._lock:
            self.calls.append(request)
            first = len(self.calls) == 1
        time.sleep(self.delay_s)
        if self.fail_first and first:
            raise AgentUnavailable("first call fails")
        reply = f"answer to {request.text}"
        return AgentReply(messages=[{"type": "ai", "id": "x", "content": reply}], provider=self.name)

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], engine: str | None
    ) -> dict[str, Any]:
        return {}


@pytest.fixture
def runtime(real: Settings) -> Iterator[Runtime]:
    built = build_runtime(real.model_copy(update={"delivery_lease": 2.0, "order_skip_after": 0.5}))
    yield built
    built.close()


def pipeline(runtime: Runtime, agent: CountingAgent, **options: Any) -> Pipeline:
    return Pipeline(runtime.store, lambda _name: agent, guard=runtime.guard, **options)


def accept(runtime: Runtime, text: str, *, user: str = USER, ordered: bool = True) -> QueueMessage:
    """What the webhook does: record the task, take a sequence, remember the published message."""
    message_id = new_message_id()
    runtime.store.accept(message_id, user_number=user, provider="mock", callback_url=None, summary={})
    metadata: dict[str, Any] = {"message_type": "text"}
    position = None
    if ordered:
        position = runtime.guard.assign(user)
        metadata.update({ORDER_EPOCH: position.epoch, ORDER_SEQ: position.seq})
    message = QueueMessage(
        id=message_id, user_number=user, message=text, metadata=metadata, timestamp=go_timestamp_now()
    )
    if position is not None:
        runtime.guard.remember(message, position)
    return message


def go_timestamp_now() -> str:
    from datetime import UTC, datetime

    return go_timestamp(datetime.now(UTC))


def test_concurrent_deliveries_of_one_message_call_the_agent_once(runtime: Runtime) -> None:
    agent = CountingAgent(delay_s=0.5)
    work = pipeline(runtime, agent)
    message = accept(runtime, "oi")
    outcomes: list[str] = []

    def deliver() -> None:
        try:
            outcomes.append(work.run(message).status)
        except BusyError:
            outcomes.append("busy")

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["busy", "busy", "busy", "completed"]
    assert len(agent.calls) == 1
    first = runtime.store.read_task(message.id)
    # A redelivery after completion: no agent call, the same stored answer.
    assert work.run(message).status == TaskStatus.COMPLETED
    assert len(agent.calls) == 1
    assert runtime.store.read_task(message.id) == first


def test_unordered_go_messages_still_take_the_lease(runtime: Runtime) -> None:
    agent = CountingAgent(delay_s=0.4)
    work = pipeline(runtime, agent)
    first, second = accept(runtime, "um", ordered=False), accept(runtime, "dois", ordered=False)
    running = threading.Thread(target=work.run, args=(first,))
    running.start()
    time.sleep(0.1)
    with pytest.raises(BusyError):
        work.run(second)  # same user: never at the same time
    running.join()
    assert work.run(second).status == TaskStatus.COMPLETED


def test_a_users_messages_run_in_acceptance_order_also_across_a_retry(runtime: Runtime) -> None:
    agent = CountingAgent(fail_first=True)
    work = pipeline(runtime, agent)
    first, second = accept(runtime, "um"), accept(runtime, "dois")
    with pytest.raises(BusyError):
        work.run(second)
    with pytest.raises(AgentUnavailable):
        work.run(first)  # transient failure: the second must still wait for it
    with pytest.raises(BusyError):
        work.run(second)
    assert work.run(first).status == TaskStatus.COMPLETED
    assert work.run(second).status == TaskStatus.COMPLETED
    assert [call.text for call in agent.calls] == ["um", "um", "dois"]
    # Another user is not held up by this one.
    assert work.run(accept(runtime, "outro", user="5521933334444")).status == TaskStatus.COMPLETED


def test_a_refused_publish_does_not_block_later_messages(runtime: Runtime) -> None:
    agent = CountingAgent()
    work = pipeline(runtime, agent)
    refused = accept(runtime, "never queued")
    later = accept(runtime, "later")
    runtime.guard.settle(USER, Position.of(refused))  # what the webhook does on a 503
    assert work.run(later).status == TaskStatus.COMPLETED


def test_a_missing_message_is_skipped_after_the_bounded_wait_and_fails_when_it_arrives(
    runtime: Runtime,
) -> None:
    agent = CountingAgent()
    work = pipeline(runtime, agent)
    lost, later = accept(runtime, "lost"), accept(runtime, "later")
    with pytest.raises(BusyError):
        work.run(later)
    time.sleep(0.6)  # ORDER_SKIP_AFTER is 0.5 s here
    assert work.run(later).status == TaskStatus.COMPLETED
    task = runtime.store.read_task(lost.id)
    assert task is not None
    assert task.status == TaskStatus.FAILED
    assert task.summary["error_code"] == "ORDER_SKIPPED"
    # It arrives after all: no agent call, it stays failed with its reason.
    assert work.run(lost).error_code == "ORDER_SKIPPED"
    assert [call.text for call in agent.calls] == ["later"]


def test_a_running_head_is_never_skipped(runtime: Runtime) -> None:
    agent = CountingAgent(delay_s=1.2)
    work = pipeline(runtime, agent)
    slow, later = accept(runtime, "slow"), accept(runtime, "later")
    running = threading.Thread(target=work.run, args=(slow,))
    running.start()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # well past ORDER_SKIP_AFTER while the head runs
        with pytest.raises(BusyError):
            work.run(later)
        time.sleep(0.1)
    running.join()
    assert work.run(later).status == TaskStatus.COMPLETED
    assert runtime.store.task_status(slow.id) == TaskStatus.COMPLETED


def test_order_state_lost_with_redis_data_processes_old_messages_unordered(runtime: Runtime) -> None:
    agent = CountingAgent()
    work = pipeline(runtime, agent)
    old = accept(runtime, "before the wipe")
    order_keys = runtime.store.client.keys(runtime.store.key("user:order*", "*"))
    runtime.store.client.delete(*order_keys)
    assert work.run(old).status == TaskStatus.COMPLETED


def test_burst_debounce_answers_one_turn_for_every_message(runtime: Runtime) -> None:
    agent = CountingAgent()
    work = pipeline(runtime, agent, debounce_s=0.4)
    burst = [accept(runtime, text) for text in ("oi", "tudo bem?", "preciso de ajuda")]
    assert work.run(burst[0]).status == TaskStatus.COMPLETED
    assert [call.text for call in agent.calls] == ["oi\ntudo bem?\npreciso de ajuda"]
    answers = [runtime.store.read_task(m.id) for m in burst]
    assert all(task is not None and task.status == TaskStatus.COMPLETED for task in answers)
    contents = {task.summary["content"] for task in answers if task is not None}
    assert len(contents) == 1
    assert answers[0] is not None and answers[0].summary["combined_with"] == [burst[1].id, burst[2].id]
    assert answers[2] is not None and answers[2].summary["combined_with"] == [burst[0].id, burst[1].id]
    # Their own deliveries arrive later: final already, no agent call, and the user is not blocked.
    for member in burst[1:]:
        assert work.run(member).status == TaskStatus.COMPLETED
    assert work.run(accept(runtime, "much later")).status == TaskStatus.COMPLETED
    assert len(agent.calls) == 2


def test_expired_messages_end_failed_and_free_the_user(real: Settings) -> None:
    settings = real.model_copy(update={"rabbitmq_message_ttl_ms": 300, "bridge_busy_delay": 0.05})
    runtime = build_runtime(settings)
    expired = accept(runtime, "expires in the queue")
    runtime.publisher.publish(expired.to_body())
    later = accept(runtime, "later")
    time.sleep(0.6)  # nobody consumes: the first message dead-letters with reason "expired"
    runtime.publisher.publish(later.to_body())
    with RecordingServer(status=200).running() as worker:
        consumer = _consumer(settings, runtime, worker.url)
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        wait_for(lambda: runtime.store.task_status(expired.id) == TaskStatus.FAILED)
        consumer.stop()
        thread.join(timeout=10)
    assert runtime.store.read_summary(expired.id)["error_code"] == "EXPIRED_IN_QUEUE"
    # The pointer moved past the expired message: the later one runs at once.
    assert pipeline(runtime, CountingAgent()).run(later).status == TaskStatus.COMPLETED
    runtime.close()


def test_dead_letter_keeps_the_bridges_reason(runtime: Runtime) -> None:
    bridge = Bridge(
        HttpSink("http://127.0.0.1:9/", timeout=1), runtime.store, RetryPolicy(), subscription="t"
    )
    bridge.guard = runtime.guard
    message = accept(runtime, "x")
    runtime.store.mark_failed(message.id, error="gave up", error_code="DELIVERY_FAILED")
    decision = bridge.handle_dead_letter(message.to_body(), {"x-death": [{"reason": b"rejected"}]})
    assert decision.action is Action.ACK
    assert runtime.store.read_summary(message.id)["error_code"] == "DELIVERY_FAILED"
    poison = bridge.handle_dead_letter(b"\xff not json", {"x-death": [{"reason": "rejected"}]})
    assert poison.action is Action.ACK


def test_bridge_does_not_count_attempts_while_redis_is_down(runtime: Runtime) -> None:
    down = build_redis("redis://127.0.0.1:1/0", connect_timeout=0.2, operation_timeout=0.2, pool_size=2)
    store = TaskStore(down, prefix="x:")
    bridge = Bridge(
        HttpSink("http://127.0.0.1:9/", timeout=1),
        store,
        RetryPolicy(max_attempts=1),
        subscription="t",
        dependency_wait_s=0.3,
    )
    decision = bridge.handle(b"{}", retry_count=0, broker_message_id="m")
    assert decision.action is Action.RETRY
    assert decision.retry_count == 0  # the attempt was not counted (and nothing dead-lettered)


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung broker or Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_hung_broker_or_redis_fails_fast(blackhole: int) -> None:
    publisher = RabbitPublisher(f"amqp://guest:guest@127.0.0.1:{blackhole}/%2F", Topology(), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(QueueUnavailable):
        publisher.publish(b"{}")
    assert time.monotonic() - started < 5
    client = build_redis(
        f"redis://127.0.0.1:{blackhole}/0", connect_timeout=0.5, operation_timeout=0.5, pool_size=2
    )
    store = TaskStore(client)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.ping()
    assert time.monotonic() - started < 5


def test_poll_answers_503_when_redis_is_down(real: Settings) -> None:
    stack = start_stack(real.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        response = api.get(
            stack.base_url + "/api/v1/message/response", params={"message_id": new_message_id()}
        )
        assert response.status_code == 503
        accepted = api.post(
            stack.base_url + "/api/v1/message/webhook/user", json={"user_number": USER, "message": "oi"}
        )
        assert accepted.status_code == 503
    finally:
        stack.stop()


def test_bridge_shutdown_finishes_in_flight_and_hands_back_the_rest(real: Settings) -> None:
    settings = real.model_copy(update={"max_parallel": 1})
    runtime = build_runtime(settings)
    release = threading.Event()

    def slow(_body: dict[str, Any]) -> int:
        release.wait(5)
        return 200

    with RecordingServer(status=slow).running() as worker:
        consumer = _consumer(settings, runtime, worker.url, max_parallel=1, grace=5)
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        for text in ("um", "dois", "três"):
            runtime.publisher.publish(accept(runtime, text, ordered=False).to_body())
        wait_for(lambda: len(worker.bodies) == 1)
        consumer.stop()  # what SIGTERM does
        time.sleep(0.3)
        release.set()  # the in-flight delivery finishes within the grace period
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert len(worker.bodies) == 1  # nothing else was started
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    depth = connection.channel().queue_declare(settings.rabbitmq_queue, passive=True).method.message_count
    connection.close()
    assert depth == 2  # the finished one was acked, the others handed back
    runtime.close()


def _consumer(
    settings: Settings, runtime: Runtime, url: str, *, max_parallel: int = 4, grace: float = 5
) -> RabbitConsumer:
    policy = RetryPolicy(max_attempts=3, initial_delay_s=0.05, busy_delay_s=settings.bridge_busy_delay)
    bridge = Bridge(HttpSink(url, timeout=10), runtime.store, policy, subscription="t", guard=runtime.guard)
    assert settings.rabbitmq_url
    return RabbitConsumer(
        bridge,
        settings.rabbitmq_url,
        runtime.topology,
        max_parallel=max_parallel,
        reconnect_max_delay_s=0.5,
        shutdown_grace_s=grace,
    )
