"""TaskStore on fakeredis: what the worker writes at the end of a task, in one round trip."""

from __future__ import annotations

import fakeredis

from shared.store import TaskStore


def store() -> TaskStore:
    return TaskStore(fakeredis.FakeRedis(decode_responses=True), prefix="t:")


def accept(tasks: TaskStore, message_id: str) -> float | None:
    return tasks.accept(
        message_id, user_number="5521999990000", provider="mock", callback_url=None, summary={"a": 1}
    )


def test_save_result_returns_what_a_poll_would_read() -> None:
    tasks = store()
    accept(tasks, "m1")
    data = {"messages": [{"message_type": "assistant_message", "content": "Olá <b>&</b>"}]}
    written = tasks.save_result("m1", user_number="5521999990000", data=data, summary={"content": "Olá"})
    assert written == tasks.read_task("m1")
    assert written.status == "completed" and written.data == data
    assert written.summary["a"] == 1 and written.summary["content"] == "Olá"


def test_processing_time_is_a_moving_average_used_for_the_wait_estimate() -> None:
    tasks = store()
    assert accept(tasks, "m1") is None  # nothing measured yet
    tasks.save_result("m1", user_number="5521999990000", data={}, summary={"processing_time_ms": 1000})
    assert accept(tasks, "m2") == 1000.0
    tasks.save_result("m2", user_number="5521999990000", data={}, summary={"processing_time_ms": 2000})
    assert accept(tasks, "m3") == 1200.0  # 0.8 x 1000 + 0.2 x 2000
    assert 0 < tasks.client.ttl("t:stats:processing_ms") <= tasks.ttl.thread


def test_begin_marks_processing_unless_the_task_is_already_final() -> None:
    tasks = store()
    accept(tasks, "m1")
    assert tasks.begin("m1") is None and tasks.task_status("m1") == "processing"
    assert tasks.begin("unknown") is None and tasks.task_status("unknown") == "processing"  # Go's messages
    tasks.save_result("m1", user_number="5521999990000", data={}, summary={})
    assert tasks.begin("m1") == "completed" and tasks.task_status("m1") == "completed"
    accept(tasks, "m2")
    tasks.mark_failed("m2", error="agent refused", error_code="AGENT_ERROR")
    assert tasks.begin("m2") == "failed" and tasks.task_status("m2") == "failed"
