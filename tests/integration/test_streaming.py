"""``GET /api/v1/message/stream`` against the running local stack with the streaming mock agent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.config import Settings
from shared.localstack import LocalStack
from tests.conftest import start_stack
from tests.helpers import AUTH, api, embedded_settings, poll_until_final, real_settings, wait_for

WEBHOOK = "/api/v1/message/webhook/user"
STREAM = "/api/v1/message/stream"
READER = "reader-token-" + "r" * 30
TEXT = "um dois três quatro"
REPLY = "Você disse: um dois três quatro"
REPLY_WORDS = ["Você", " disse:", " um", " dois", " três", " quatro"]


@dataclass
class SSE:
    """One parsed Server-Sent Event, or a comment (``event == ":"``)."""

    event: str
    data: Any = None
    id: str | None = None


def parse_sse(lines: Iterator[str]) -> Iterator[SSE]:
    """A minimal independent SSE parser (fields ``id``, ``event``, ``data``; comments kept)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            yield SSE(":", line[1:].strip())
            continue
        if line == "":
            if "event" in fields or "data" in fields:
                data = json.loads(fields["data"]) if "data" in fields else None
                yield SSE(fields.get("event", "message"), data, fields.get("id"))
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value


def stream_events(
    stack: LocalStack,
    message_id: str,
    *,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> list[SSE]:
    """Read the stream to its end (or ``stop_after`` events, then hang up)."""
    got: list[SSE] = []
    with httpx.stream(
        "GET",
        stack.base_url + STREAM,
        params={"message_id": message_id},
        headers={**AUTH, **(headers or {})},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in parse_sse(response.iter_lines()):
            got.append(event)
            if stop_after is not None and len([e for e in got if e.id]) >= stop_after:
                break
    return got


def send(stack: LocalStack, text: str = TEXT) -> str:
    accepted = api.post(stack.base_url + WEBHOOK, json={"user_number": "5521988887777", "message": text})
    assert accepted.status_code == 202
    return str(accepted.json()["message_id"])


def stack_with(**overrides: Any) -> Iterator[LocalStack]:
    stack = start_stack(embedded_settings(**overrides))
    yield stack
    stack.stop()


@pytest.fixture
def streaming_stack() -> Iterator[LocalStack]:
    yield from stack_with(mock_agent_chunk_delay_ms=40, api_tokens=[f"{READER}:read_only"])


def texts(events: list[SSE]) -> list[str]:
    return [e.data["text"] for e in events if e.event == "chunk"]


def test_chunks_arrive_in_order_and_the_final_event_is_the_poll_body(streaming_stack: LocalStack) -> None:
    message_id = send(streaming_stack)
    events = stream_events(streaming_stack, message_id)

    assert events[-1].event == "completed"
    named = [e for e in events if e.event != ":"]
    statuses = [e.data["status"] for e in named if e.event == "status"]
    assert statuses == ["queued", "processing"]
    assert texts(named) == REPLY_WORDS
    assert all(e.data["type"] == "text" for e in named if e.event == "chunk")
    kinds = [e.event for e in named]
    assert kinds == ["status", "status", *["chunk"] * len(REPLY_WORDS), "completed"]
    ids = [e.id for e in named]
    assert all(ids) and len(set(ids)) == len(ids)
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in str(i).split("-")))

    polled = poll_until_final(streaming_stack.base_url, message_id)
    assert named[-1].data == polled
    assert polled["content"] == REPLY


def test_reconnecting_with_last_event_id_resumes_without_loss_or_repeat(streaming_stack: LocalStack) -> None:
    message_id = send(streaming_stack)
    first = [e for e in stream_events(streaming_stack, message_id, stop_after=4) if e.id]
    assert len(first) == 4
    rest = [
        e
        for e in stream_events(streaming_stack, message_id, headers={"Last-Event-ID": str(first[-1].id)})
        if e.id
    ]
    whole = [e for e in stream_events(streaming_stack, message_id) if e.id]

    assert [e.id for e in first + rest] == [e.id for e in whole]
    assert texts(first + rest) == REPLY_WORDS
    assert rest[-1].event == "completed"

    # The query parameter works too, for clients that cannot set headers.
    via_query = httpx.get(
        streaming_stack.base_url + STREAM,
        params={"message_id": message_id, "last_event_id": str(whole[-2].id)},
        headers=AUTH,
        timeout=30,
    )
    replayed = [e for e in parse_sse(iter(via_query.text.splitlines())) if e.id]
    assert [e.id for e in replayed] == [whole[-1].id]


def test_failed_task_ends_with_the_failed_poll_body(streaming_stack: LocalStack) -> None:
    message_id = send(streaming_stack, "FAIL_PERMANENT now")
    events = stream_events(streaming_stack, message_id)
    assert events[-1].event == "failed"
    assert texts(events) == []
    assert events[-1].data == poll_until_final(streaming_stack.base_url, message_id)
    assert events[-1].data["error_code"] == "AGENT_ERROR"


def test_read_only_role_may_stream_and_anonymous_callers_may_not(streaming_stack: LocalStack) -> None:
    message_id = send(streaming_stack)
    url = streaming_stack.base_url + STREAM
    anonymous = httpx.get(url, params={"message_id": message_id}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "Unauthorized"
    wrong = httpx.get(
        url, params={"message_id": message_id}, headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert wrong.status_code == 401
    reader = httpx.get(
        url, params={"message_id": message_id}, headers={"Authorization": f"Bearer {READER}"}, timeout=30
    )
    assert reader.status_code == 200
    assert "event: completed" in reader.text


def test_unknown_or_malformed_requests_are_answered_in_json_before_streaming(
    streaming_stack: LocalStack,
) -> None:
    url = streaming_stack.base_url + STREAM
    unknown = api.get(url, params={"message_id": "00000000-0000-4000-8000-000000000000"})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "Task not found"
    assert api.get(url).status_code == 400
    message_id = send(streaming_stack)
    bad = api.get(url, params={"message_id": message_id}, headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "Last-Event-ID"


@pytest.fixture
def idle_stack() -> Iterator[LocalStack]:
    """Nothing drains the queue, so a task stays ``queued``; short heartbeat and maximum duration."""
    stack = start_stack(embedded_settings(stream_heartbeat=0.2, stream_max_duration=1.2))
    stack.consumer.stop()
    wait_for(lambda: not any(t.is_alive() for t in stack._threads if t.name == "bridge"))
    yield stack
    stack.stop()


def test_idle_stream_sends_heartbeats(idle_stack: LocalStack) -> None:
    message_id = send(idle_stack)
    events = stream_events(idle_stack, message_id)
    beats = [e for e in events if e.event == ":" and e.data == "keep-alive"]
    assert len(beats) >= 3  # 1.2 s at one per 0.2 s of silence
    assert [e.data["status"] for e in events if e.event == "status"] == ["queued"]


def test_stream_ends_with_a_timeout_event_after_the_maximum_duration(idle_stack: LocalStack) -> None:
    message_id = send(idle_stack)
    started = time.monotonic()
    events = stream_events(idle_stack, message_id)
    elapsed = time.monotonic() - started
    assert 1.1 <= elapsed < 4
    assert events[-1].event == "timeout"
    assert events[-1].id is None  # a reconnect resumes after the last real event
    queued = next(e for e in events if e.event == "status")
    assert events[-1].data == {"message_id": message_id, "last_event_id": queued.id}


def test_final_event_comes_from_the_store_when_the_worker_wrote_no_stream() -> None:
    for stack in stack_with(stream_enabled=False, stream_heartbeat=0.3):
        message_id = send(stack)
        polled = poll_until_final(stack.base_url, message_id)
        events = [e for e in stream_events(stack, message_id) if e.event != ":"]
        assert [e.event for e in events] == ["completed"]
        assert events[0].data == polled


@pytest.mark.integration
def test_streaming_on_real_redis(run_id: str) -> None:
    settings: Settings = real_settings(run_id, mock_agent_chunk_delay_ms=20)
    stack = start_stack(settings)
    try:
        message_id = send(stack)
        events = stream_events(stack, message_id)
        assert texts(events) == REPLY_WORDS
        assert events[-1].event == "completed"
        assert events[-1].data == poll_until_final(stack.base_url, message_id)
        key = f"{run_id}:task:stream:{message_id}"
        assert 0 < stack.runtime.store.client.ttl(key) <= settings.task_status_ttl
    finally:
        stack.stop()
