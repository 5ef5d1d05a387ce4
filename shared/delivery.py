"""Delivery guarantees in Redis: one running attempt per user (a lease), and per-user order.

At-least-once delivery hands the worker the same message more than once (bridge retries, a worker
killed after the agent answered, duplicate Pub/Sub pushes) and hands it a user's messages in any
order. This module turns that into an exactly-once effect, in order:

- **Lease** ``user:lease:{<n>}`` = ``"<message_id> <token>"`` (``SET NX PX``, renewed while the agent
  runs, released at the end). It is keyed by user, not by message: the one lock keeps two deliveries
  of the same message *and* two messages of the same user from running at the same time. A delivery
  that finds it held answers 429 (:class:`BusyError`). The pipeline re-checks the task's final state
  *after* taking the lease, so a redelivery of a completed message never calls the agent.
- **Order** ``user:order:{<n>}`` (hash: ``epoch``, ``last`` assigned sequence, ``next`` expected one,
  ``head``/``since``: how long the user has waited for ``next``). The webhook assigns
  ``last + 1`` and carries ``order_epoch``/``order_seq`` in the queue message's ``metadata``; the
  worker runs a message only when its sequence is ``next`` (else 429). Completing, failing, dead-
  lettering a message, or refusing its publish *settles* its sequence: ``next`` moves on, jumping
  over later sequences already settled out of turn (``user:order:done:{<n>}``).
- **Skips**: a sequence nobody has worked on for ``skip_after`` seconds while later messages wait
  (e.g. lost, or consumed by a Go worker) is skipped: its task ends ``failed``/``ORDER_SKIPPED`` and the
  skip is recorded in ``user:order:skipped:{<n>}``. Its accepted text waits in
  ``user:order:pending:{<n>}`` (also what burst debounce combines).
- **Epoch**: a random id created with the order hash. When Redis loses it (restart without
  persistence, TTL) older messages carry another epoch and are processed without ordering, rather
  than blocked behind sequence numbers that restarted at 1.

Messages without ``order_seq`` (the Go gateway's) only take the lease. Every key of one user has the
hash tag ``{<n>}`` so the Lua scripts stay in one cluster slot.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from shared.batch import Batch, Staged, eval_script, redis_errors, run_alone
from shared.errors import BusyError, StoreUnavailable, TransientError
from shared.models import QueueMessage
from shared.store import TaskStore

log = logging.getLogger(__name__)

ORDER_EPOCH = "order_epoch"
ORDER_SEQ = "order_seq"

# Move ``next`` past ``nxt`` and past every later sequence already settled out of turn.
_ADVANCE = """
local function advance(nxt, now)
  nxt = nxt + 1
  while redis.call('SREM', KEYS[4], nxt) == 1 do
    redis.call('HDEL', KEYS[3], nxt)
    nxt = nxt + 1
  end
  redis.call('HSET', KEYS[1], 'next', nxt, 'head', nxt, 'since', now)
  return nxt
end
"""

# KEYS: order hash. ARGV: new epoch, ttl seconds.  -> {epoch, seq}
_ASSIGN = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 0, 'next', 1)
end
local seq = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {epoch, seq}
"""

# KEYS: order, lease, pending, done. ARGV: epoch, seq, owner, lease ms, now ms, skip-after ms, ttl.
# -> {'ok'|'busy'|'passed'|'wait'|'skipped', detail, pending entry of the head}
_ADMIT = (
    _ADVANCE
    + """
local function lease()
  local holder = redis.call('GET', KEYS[2])
  if holder then return {'busy', holder, ''} end
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  return {'ok', '', ''}
end
if ARGV[1] == '' or redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  local result = lease()
  if ARGV[1] ~= '' and result[1] == 'ok' then result[2] = 'unordered' end
  return result
end
local seq = tonumber(ARGV[2])
local nxt = tonumber(redis.call('HGET', KEYS[1], 'next'))
local now = tonumber(ARGV[5])
for _, key in ipairs({KEYS[1], KEYS[3], KEYS[4]}) do redis.call('EXPIRE', key, ARGV[7]) end
if seq < nxt then return {'passed', tostring(nxt), ''} end
if seq == nxt then
  local result = lease()
  if result[1] == 'ok' then redis.call('HSET', KEYS[1], 'head', nxt, 'since', now) end
  return result
end
local head = tonumber(redis.call('HGET', KEYS[1], 'head') or '0')
local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
if head ~= nxt or redis.call('EXISTS', KEYS[2]) == 1 then
  -- a new head, or one of the user's messages is running: the user is not stuck
  redis.call('HSET', KEYS[1], 'head', nxt, 'since', now)
  since = now
end
local entry = redis.call('HGET', KEYS[3], nxt) or ''
if now - since >= tonumber(ARGV[6]) then
  redis.call('HDEL', KEYS[3], nxt)
  advance(nxt, now)
  return {'skipped', tostring(nxt), entry}
end
return {'wait', tostring(nxt), entry}
"""
)

# KEYS: order, (unused), pending, done. ARGV: epoch, seq, now ms, ttl.  -> next (or -1: other epoch)
_SETTLE = (
    _ADVANCE
    + """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return -1 end
local seq = tonumber(ARGV[2])
local nxt = tonumber(redis.call('HGET', KEYS[1], 'next'))
redis.call('HDEL', KEYS[3], ARGV[2])
if seq == nxt then
  nxt = advance(nxt, tonumber(ARGV[3]))
elseif seq > nxt then
  redis.call('SADD', KEYS[4], seq)
end
for _, key in ipairs({KEYS[1], KEYS[3], KEYS[4]}) do redis.call('EXPIRE', key, ARGV[4]) end
return nxt
"""
)

# KEYS: lease. ARGV: owner, lease ms.  -> 1 when still ours
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Position:
    """Where a message stands in its user's order (absent for Go messages)."""

    epoch: str
    seq: int

    @classmethod
    def of(cls, message: QueueMessage) -> Position | None:
        epoch, seq = message.metadata.get(ORDER_EPOCH), message.metadata.get(ORDER_SEQ)
        if isinstance(epoch, str) and epoch and isinstance(seq, int) and not isinstance(seq, bool):
            return cls(epoch, seq)
        return None


@dataclass(frozen=True)
class Pending:
    """An accepted message still waiting for its turn (kept for skips and debounce)."""

    seq: int
    message_id: str
    text: str
    message_type: str
    accepted_ms: int

    @classmethod
    def parse(cls, seq: int, raw: str | None) -> Pending | None:
        try:
            entry = json.loads(raw or "")
            return cls(seq, str(entry["id"]), str(entry["text"]), str(entry["type"]), int(entry["at"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class Admission:
    """A held lease: renewed in the background until :meth:`release`."""

    guard: DeliveryGuard
    user_number: str
    owner: str
    position: Position | None
    _lost: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)

    def start_renewing(self) -> None:
        interval = self.guard.lease_s / 3
        thread = threading.Thread(target=self._renew_loop, args=(interval,), daemon=True, name="lease")
        thread.start()

    def _renew_loop(self, interval: float) -> None:
        while not self._done.wait(interval):
            try:
                if not self.guard.renew(self.user_number, self.owner):
                    self._lost.set()
                    return
            except StoreUnavailable:
                continue  # Redis blinked; the lease may still be ours, try again next tick

    def ensure_held(self) -> None:
        """Raise :class:`TransientError` unless the lease is still ours (checked before writing)."""
        if self._lost.is_set() or not self.guard.renew(self.user_number, self.owner):
            self._lost.set()
            raise TransientError("the delivery lease was lost; another attempt will finish the message")

    def release(self) -> None:
        self._done.set()
        try:
            self.guard.release(self.user_number, self.owner)
        except StoreUnavailable:
            log.warning("could not release a delivery lease; it expires on its own")


class DeliveryGuard:
    """The lease and order rules over one :class:`TaskStore`'s Redis."""

    def __init__(self, store: TaskStore, *, lease_s: float = 60.0, skip_after_s: float = 600.0) -> None:
        self.store = store
        self.lease_s = lease_s
        self.skip_after_s = skip_after_s
        self.ttl = store.ttl.thread
        client = store.client
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    # --- keys -----------------------------------------------------------------------------------
    def _keys(self, user_number: str) -> list[str]:
        tag = "{" + user_number + "}"
        return [
            self.store.key("user:order", tag),
            self.store.key("user:lease", tag),
            self.store.key("user:order:pending", tag),
            self.store.key("user:order:done", tag),
        ]

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        with redis_errors():
            return script(keys=keys, args=args)

    # --- webhook --------------------------------------------------------------------------------
    def assign(self, user_number: str) -> Position:
        """The next sequence of ``user_number`` (before publishing its message)."""
        return run_alone(self.store.client, lambda batch: self.stage_assign(batch, user_number))

    def stage_assign(self, batch: Batch, user_number: str) -> Staged[Position]:
        """:meth:`assign` as part of a larger :class:`Batch`."""
        keys = self._keys(user_number)[:1]
        args = [f"{random.getrandbits(48):012x}", int(self.ttl)]  # a new epoch, if the hash is new
        return batch.stage(
            lambda pipe: eval_script(pipe, _ASSIGN, keys, args),
            lambda replies: Position(str(replies[0][0]), int(replies[0][1])),
        )

    def remember(self, message: QueueMessage, position: Position) -> None:
        """Keep the published message's text for skips and debounce (best effort)."""
        entry = json.dumps(
            {
                "id": message.id,
                "text": message.message,
                "type": message.message_type.value,
                "at": int(time.time() * 1000),
            }
        )
        key = self._keys(message.user_number)[2]
        try:  # a batch of its own, sent with other threads' batches when any are waiting
            run_alone(
                self.store.client,
                lambda batch: batch.stage(
                    lambda pipe: pipe.hset(key, str(position.seq), entry).expire(key, int(self.ttl)), list
                ),
            )
        except StoreUnavailable:
            log.warning("could not remember a pending message", extra={"message_id": message.id})

    def settle(self, user_number: str, position: Position | None) -> None:
        """This sequence needs no more work (done, failed, dead-lettered or never queued)."""
        if position is None:
            return
        self._call(
            self._settle,
            self._keys(user_number),
            [position.epoch, position.seq, int(time.time() * 1000), int(self.ttl)],
        )

    # --- worker ---------------------------------------------------------------------------------
    def admit(self, message: QueueMessage) -> tuple[str, Admission | None, Pending | None]:
        """Try to take the user's lease in turn.

        Returns ``("ok", admission, None)``; ``("passed", None, None)`` when the pointer already
        moved past this message; ``("skipped", None, head)`` when the overdue head was just skipped
        (the caller ends it and asks again); raises :class:`BusyError` when it must wait.
        """
        position = Position.of(message)
        owner = f"{message.id} {uuid.uuid4().hex}"
        args = [
            position.epoch if position else "",
            position.seq if position else 0,
            owner,
            int(self.lease_s * 1000),
            int(time.time() * 1000),
            int(self.skip_after_s * 1000),
            int(self.ttl),
        ]
        verdict, detail, entry = self._call(self._admit, self._keys(message.user_number), args)
        if verdict == "ok":
            ordered = position if detail != "unordered" else None
            if position is not None and ordered is None:
                log.warning("order state of the user was lost; unordered", extra={"message_id": message.id})
            admission = Admission(self, message.user_number, owner, ordered)
            admission.start_renewing()
            return "ok", admission, None
        if verdict == "passed":
            return "passed", None, None
        if verdict == "busy":
            raise BusyError("another delivery of this user's messages is running", retry_after=1)
        head = Pending.parse(int(detail), entry)
        if verdict == "skipped":
            return "skipped", None, head or Pending(int(detail), "", "", "", 0)
        # wait: the head may already be final (its worker died between finishing and settling)
        return "wait", None, head

    def renew(self, user_number: str, owner: str) -> bool:
        keys = self._keys(user_number)[1:2]
        return bool(self._call(self._renew, keys, [owner, int(self.lease_s * 1000)]))

    def release(self, user_number: str, owner: str) -> None:
        self._call(self._release, self._keys(user_number)[1:2], [owner])

    def burst(self, message: QueueMessage, position: Position, window_s: float) -> list[Pending]:
        """The user's later messages accepted within ``window_s`` of ``message`` (contiguous, text)."""
        accepted = message.accepted_at()
        start_ms = int(accepted.timestamp() * 1000) if accepted else int(time.time() * 1000)
        deadline_ms = start_ms + int(window_s * 1000)
        wait = deadline_ms / 1000 - time.time()
        if wait > 0:
            time.sleep(wait)
        key = self._keys(message.user_number)[2]
        members: list[Pending] = []
        seq = position.seq + 1
        while True:
            try:
                raw = self.store.client.hget(key, str(seq))
            except redis.RedisError as exc:
                raise StoreUnavailable(f"Redis unavailable: {exc.__class__.__name__}") from exc
            pending = Pending.parse(seq, raw if isinstance(raw, str) else None)
            if pending is None or pending.message_type != "text" or pending.accepted_ms > deadline_ms:
                return members
            members.append(pending)
            seq += 1


@contextmanager
def holding(admission: Admission) -> Iterator[Admission]:
    try:
        yield admission
    finally:
        admission.release()
