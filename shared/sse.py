"""``GET /api/v1/message/stream?message_id=``: a task's events as Server-Sent Events.

The answer replays the task's Redis Stream (:mod:`shared.streaming`) from the start, or from after
``Last-Event-ID`` (header, or the ``last_event_id`` query parameter for clients that cannot set
headers), then follows it with short blocking reads until the final ``completed``/``failed`` event,
which ends the response. Every event's SSE ``id`` is its stream entry id, so a reconnecting client
neither loses nor repeats events. While nothing happens a ``: keep-alive`` comment is sent every
``STREAM_HEARTBEAT`` seconds; after ``STREAM_MAX_DURATION`` a ``timeout`` event (without an id)
ends the response and the client reconnects or polls.

When the task is final in the store but its stream has no final event (the stream is disabled, or
the worker stopped between the two writes), the final event is built from the store after one more
read, so a client never waits for an event that will not come.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import flask

from shared.errors import StoreUnavailable
from shared.http import error_response, json_response
from shared.models import TaskStatus
from shared.polling import NOT_FOUND, parse_message_id
from shared.results import task_body
from shared.runtime import Runtime
from shared.store import TaskStore
from shared.streaming import Event, TaskEvents, valid_entry_id

log = logging.getLogger(__name__)

KEEP_ALIVE = ": keep-alive\n\n"
_MAX_BLOCK_S = 1.0  # below the Redis socket timeout; bounds how late a heartbeat or deadline can be
_FINAL_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED)


def format_event(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    """One SSE message (``data`` is compact JSON, so it is always a single line)."""
    lines = [f"id: {event_id}"] if event_id else []
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


@dataclass(frozen=True)
class StreamLimits:
    heartbeat_s: float
    max_duration_s: float
    block_s: float = _MAX_BLOCK_S


def follow(
    events: TaskEvents,
    store: TaskStore,
    message_id: str,
    after: str,
    limits: StreamLimits,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """The SSE text of a task's events after entry id ``after``, until the final event or the deadline."""
    started = clock()
    deadline = started + limits.max_duration_s
    last_write = started
    cursor = after
    store_final_seen = False
    yield "retry: 2000\n\n"
    while True:
        now = clock()
        if now >= deadline:
            yield format_event("timeout", {"message_id": message_id, "last_event_id": cursor})
            return
        wait = min(limits.block_s, deadline - now, max(0.0, last_write + limits.heartbeat_s - now))
        try:
            batch = events.read(message_id, cursor, block_ms=max(1, int(wait * 1000)))
        except StoreUnavailable as exc:
            log.warning("stream read failed", extra={"message_id": message_id, "error": str(exc)})
            yield format_event("error", {"message_id": message_id, "error": "storage unavailable; retry"})
            return
        for event in batch:
            cursor = event.id
            yield format_event(event.event, event.data, event.id)
            if event.final:
                return
        now = clock()
        if batch:
            last_write = now
            continue
        if now - last_write >= limits.heartbeat_s:
            yield KEEP_ALIVE
            last_write = now
        final = _final_from_store(store, message_id)
        if final is None:
            continue
        if store_final_seen:  # a whole read later, still no final event on the stream
            yield format_event(final.event, final.data)
            return
        store_final_seen = True


def _final_from_store(store: TaskStore, message_id: str) -> Event | None:
    try:
        task = store.read_task(message_id)
    except StoreUnavailable:
        return None
    if task is None:
        return Event("", "failed", {"status": "failed", "message_id": message_id, "error": "task expired"})
    if task.status not in _FINAL_STATUSES:
        return None
    return Event("", str(task.status), task_body(message_id, task))


def stream_task(request: flask.Request, runtime: Runtime) -> flask.Response:
    message_id, problem = parse_message_id(request)
    if problem is not None:
        return problem
    after = (request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or "0-0").strip()
    if not valid_entry_id(after):
        return error_response(
            400,
            "Invalid request",
            "Last-Event-ID: expected an event id of this stream (<milliseconds>-<sequence>)",
            field="Last-Event-ID",
        )
    if runtime.store.read_task(message_id) is None:
        return json_response(NOT_FOUND, 404)
    settings = runtime.settings
    limits = StreamLimits(settings.stream_heartbeat, settings.stream_max_duration)
    body = follow(runtime.events, runtime.store, message_id, after, limits)
    response = flask.Response(body, status=200, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx and some proxies: do not buffer the stream
    return response
