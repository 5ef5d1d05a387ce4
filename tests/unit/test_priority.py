"""High-priority messages overtake normal ones waiting for a worker slot (never the Go queue's shape)."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from shared.bridge import Action, Decision, PriorityExecutor
from shared.models import WebhookRequest
from shared.queue import MemoryBroker, Topology


def test_memory_broker_hands_out_due_high_priority_messages_first() -> None:
    broker = MemoryBroker()
    for n in range(3):
        broker.publish(f"normal-{n}".encode())
    broker.publish(b"high", priority=True)
    order = [broker.get(timeout=1).body for _ in range(4)]  # type: ignore[union-attr]
    assert order == [b"high", b"normal-0", b"normal-1", b"normal-2"]


def test_executor_starts_the_most_urgent_waiting_job_first() -> None:
    executor = PriorityExecutor(1)
    gate = threading.Event()
    started: list[str] = []

    def job(name: str) -> Decision:
        started.append(name)
        if name == "blocker":
            gate.wait(5)
        return Decision(Action.ACK)

    futures: list[Future[Decision]] = [executor.submit(lambda: job("blocker"))]
    while not started:  # the only thread is now busy: the next jobs wait in the queue
        threading.Event().wait(0.005)
    futures += [executor.submit(lambda n=n: job(f"normal-{n}")) for n in range(3)]  # type: ignore[misc]
    futures.append(executor.submit(lambda: job("high"), rank=PriorityExecutor.HIGH))
    gate.set()
    for future in futures:
        assert future.result(timeout=5).action is Action.ACK
    executor.shutdown()
    assert started == ["blocker", "high", "normal-0", "normal-1", "normal-2"]


def test_a_cancelled_waiting_job_never_runs() -> None:
    executor = PriorityExecutor(1)
    gate = threading.Event()
    ran: list[str] = []
    first = executor.submit(lambda: (gate.wait(5), Decision(Action.ACK))[1])

    def record() -> Decision:
        ran.append("second")
        return Decision(Action.ACK)

    second = executor.submit(record)
    assert second.cancel()
    gate.set()
    first.result(timeout=5)
    executor.shutdown()
    assert ran == []


def test_priority_has_its_own_queue_and_retry_queues() -> None:
    topology = Topology()
    assert topology.target(priority=False) == "user_messages"
    assert topology.target(priority=True) == "user_messages.priority"
    assert topology.retry_queue(500, "user_messages.priority") == "user_messages.priority.retry.500"
    arguments = topology.retry_queue_arguments(500, "user_messages.priority")
    assert arguments["x-dead-letter-routing-key"] == "user_messages.priority"
    assert topology.retry_queue_arguments(500)["x-dead-letter-routing-key"] == "user_messages"


def test_priority_field_is_validated() -> None:
    body = {"user_number": "5521999999999", "message": "oi", "priority": "urgent"}
    try:
        WebhookRequest.model_validate(body)
    except ValueError as exc:
        assert "priority" in str(exc)
    else:
        raise AssertionError("an unknown priority was accepted")
    assert WebhookRequest.model_validate({**body, "priority": "high"}).priority == "high"
