"""A task's progress as a Redis Stream, for clients that want the reply as it is written.

``task:stream:<id>`` holds one entry per event, fields ``event`` and ``data`` (JSON):

==========  ====================================================================================
event       data
==========  ====================================================================================
status      ``{"status": "queued" | "processing" | "transcribed", ...}``
chunk       ``{"type": "text" | "reasoning", "text": "..."}``: raw model output, in order
reset       ``{"reason": ...}``: drop the chunks received so far (the agent call is being retried)
completed   the poll endpoint's body for the task (:func:`shared.results.task_body`)
failed      the poll endpoint's body for the task
==========  ====================================================================================

Writers are the webhook (``queued``) and the worker (everything else). Each ``XADD`` is bounded
(``MAXLEN ~``) and refreshes the key's TTL, which is the task status' TTL: the stream lives exactly
as long as the task can be polled. Writing is best effort: a Redis failure is logged, never raised,
because the stored result (not the stream) is the authoritative answer.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from shared.batch import Batch, Staged, run_alone
from shared.errors import StoreUnavailable
from shared.providers.base import Chunk
from shared.store import TaskStore

log = logging.getLogger(__name__)

STATUS = "status"
CHUNK = "chunk"
RESET = "reset"
COMPLETED = "completed"
FAILED = "failed"
FINAL_EVENTS = frozenset({COMPLETED, FAILED})

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def valid_entry_id(value: str) -> bool:
    """Whether ``value`` is a Redis Stream entry id (``<ms>-<seq>``)."""
    return bool(_ENTRY_ID.match(value))


@dataclass(frozen=True)
class Event:
    """One entry of a task's stream."""

    id: str
    event: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        return self.event in FINAL_EVENTS


class TaskEvents:
    """Appends to and reads task streams (shares the :class:`TaskStore`'s client, prefix and TTL)."""

    def __init__(self, store: TaskStore, *, maxlen: int = 2000, enabled: bool = True) -> None:
        self.store = store
        self.maxlen = maxlen
        self.enabled = enabled

    def key(self, message_id: str) -> str:
        return self.store.key("task:stream", message_id)

    # --- writing --------------------------------------------------------------------------------
    def append(self, message_id: str, event: str, data: dict[str, Any]) -> str | None:
        """Add one event; its entry id, or ``None`` when disabled or Redis failed (logged)."""
        ids = self.append_many(message_id, [(event, data)])
        return ids[0] if ids else None

    def append_many(self, message_id: str, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """Add events in order, in one round trip; their entry ids (none when disabled or Redis
        failed: stream events are best effort, the failure is logged)."""
        try:
            return run_alone(self.store.client, lambda batch: self.stage_append(batch, message_id, events))
        except StoreUnavailable as exc:
            log.warning("could not write stream events", extra={"message_id": message_id, "error": str(exc)})
            return []

    def stage_append(
        self, batch: Batch, message_id: str, events: list[tuple[str, dict[str, Any]]]
    ) -> Staged[list[str]]:
        """:meth:`append_many` as part of a larger :class:`Batch` (whose failure is the caller's)."""
        if not self.enabled or not events:
            return batch.stage(lambda pipe: None, lambda replies: [])
        key = self.key(message_id)
        ttl = self.store.ttl.status

        def add(pipe: Any) -> None:
            for event, data in events:
                pipe.xadd(key, _fields(event, data), maxlen=self.maxlen, approximate=True)
            pipe.expire(key, ttl)

        return batch.stage(add, lambda replies: [str(entry_id) for entry_id in replies[:-1]])

    def status(self, message_id: str, status: str, **extra: Any) -> None:
        self.append(message_id, STATUS, {"status": status, **extra})

    def stage_status(self, batch: Batch, message_id: str, status: str) -> None:
        """:meth:`status` as part of a larger :class:`Batch`."""
        self.stage_append(batch, message_id, [(STATUS, {"status": status})])

    def finish(self, message_id: str, status: str, body: dict[str, Any]) -> None:
        """The final ``completed``/``failed`` event, carrying the poll body."""
        self.append(message_id, COMPLETED if status == COMPLETED else FAILED, body)

    def turn(self, message_id: str) -> TurnWriter:
        """Start (or restart, on redelivery) the agent turn of a task: ``status: processing``.

        When a previous delivery left chunks behind (it failed transiently mid-stream), a ``reset``
        is written first so that clients drop them. Both happen in one script (one round trip).
        """
        writer = TurnWriter(self, message_id)
        if not self.enabled:
            return writer
        args: list[str | int] = [
            CHUNK,
            RESET,
            *sorted(FINAL_EVENTS),
            _fields(RESET, {"reason": "redelivered"})["data"],
            _fields(STATUS, {"status": "processing"})["data"],
            STATUS,
            self.maxlen,
            self.store.ttl.status,
        ]
        try:
            self.store.run(lambda: self.store.client.eval(_TURN, 1, self.key(message_id), *args))
        except StoreUnavailable as exc:
            log.warning("could not write a stream event", extra={"message_id": message_id, "error": str(exc)})
        return writer

    # --- reading --------------------------------------------------------------------------------
    def read(
        self, message_id: str, after: str, *, block_ms: int | None = None, count: int = 200
    ) -> list[Event]:
        """Events after entry id ``after`` (``"0-0"``: from the start), waiting up to ``block_ms``."""
        key = self.key(message_id)
        reply: Any = self.store.run(
            lambda: self.store.client.xread({key: after}, count=count, block=block_ms or None)
        )
        events: list[Event] = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                events.append(_event(str(entry_id), fields))
        return events

    def all(self, message_id: str) -> list[Event]:
        entries: Any = self.store.run(lambda: self.store.client.xrange(self.key(message_id)))
        return [_event(str(entry_id), fields) for entry_id, fields in entries or []]


# KEYS: the stream. ARGV: chunk, reset, completed, failed (event names), reset data, status data,
# status event name, maxlen, ttl. A reset when the newest chunk/reset/final event is a chunk (a
# delivery failed mid-stream), then the ``processing`` status.
_TURN = """
local dangling = false
for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 50)) do
  local fields, kind = entry[2], nil
  for i = 1, #fields, 2 do if fields[i] == 'event' then kind = fields[i + 1] end end
  if kind == ARGV[1] then dangling = true break end
  if kind == ARGV[2] or kind == ARGV[3] or kind == ARGV[4] then break end
end
if dangling then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[8], '*', 'event', ARGV[2], 'data', ARGV[5])
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[8], '*', 'event', ARGV[7], 'data', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[9])
return dangling and 1 or 0
"""


def _fields(event: str, data: dict[str, Any]) -> dict[str, str]:
    return {"event": event, "data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}


def _event(entry_id: str, fields: Any) -> Event:
    try:
        data = json.loads(fields.get("data") or "{}")
    except ValueError:
        data = {}
    return Event(entry_id, str(fields.get("event") or ""), data if isinstance(data, dict) else {})


class TurnWriter:
    """The chunk sink the worker hands to the provider for one turn.

    The first chunk is written at once (time to first token); chunks arriving within
    ``coalesce_s`` of the last write wait and go together, each still its own stream event, in one
    Redis round trip. A timer writes what waits if the provider pauses; :meth:`flush` (end of the
    turn) and any status or reset write it first, so events keep their order.
    """

    def __init__(self, events: TaskEvents, message_id: str, *, coalesce_s: float = 0.05) -> None:
        self.events = events
        self.message_id = message_id
        self.coalesce_s = coalesce_s
        self._waiting: list[tuple[str, dict[str, Any]]] = []
        self._last_write = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def __call__(self, chunk: Chunk) -> None:
        if chunk.kind == "reset":
            self._write_after_waiting(RESET, {"reason": "retry"})
        elif chunk.text:
            self._add(CHUNK, {"type": chunk.kind, "text": chunk.text})

    def status(self, status: str, **extra: Any) -> None:
        self._write_after_waiting(STATUS, {"status": status, **extra})

    def flush(self) -> None:
        """Write the chunks that wait (the turn ended, or the timer fired)."""
        with self._lock:
            self._write_waiting()

    def _add(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._waiting.append((event, data))
            if time.monotonic() - self._last_write >= self.coalesce_s:
                self._write_waiting()
            elif self._timer is None:
                self._timer = threading.Timer(self.coalesce_s, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def _write_after_waiting(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._waiting.append((event, data))
            self._write_waiting()

    def _write_waiting(self) -> None:
        """Holding the lock: one round trip for everything that waits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, []
        if waiting:
            self.events.append_many(self.message_id, waiting)
            self._last_write = time.monotonic()
