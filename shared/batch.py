"""Redis commands of several components, and of several threads, sent in one round trip.

Accepting a message touches the rate limiter, the task record, the user's order sequence and the
task's event stream. Sent one by one that is four round trips, each paying redis-py's per-call
overhead; staged on one :class:`Batch` (a non-transactional pipeline) it is one. Each component
stages its own commands and gets back a :class:`Staged` that reads its own replies once the batch
has run, so the components keep their key names and reply formats to themselves.

Batches of concurrent threads are sent together (group commit): the first thread to run a batch
while no other is sending becomes the sender; batches run by other threads in the meantime wait and
go out together in the sender's next pipeline. Under load one round trip then carries the work of
several requests, which saves redis-py's per-call work and, more so, the system calls and GIL
hand-offs of every thread waiting on its own socket. Alone, a batch goes out at once as before.
A Redis Cluster pipeline routes its commands per node from a queue of its own: it always goes alone.

Scripts are sent with ``EVAL`` (their source), not ``EVALSHA``: Redis caches them by hash all the
same, and a pipeline cannot recover from ``NOSCRIPT`` after a Redis restart.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import redis
from redis.client import Pipeline

from shared.errors import StoreUnavailable

T = TypeVar("T")


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn redis-py's failures into :class:`StoreUnavailable`, naming the kind of failure."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis unavailable: {exc.__class__.__name__}") from exc
    except redis.RedisError as exc:
        raise StoreUnavailable(f"Redis error: {exc.__class__.__name__}") from exc


class Batch:
    """A non-transactional pipeline shared by several components; run it once, then read."""

    def __init__(self, client: redis.Redis) -> None:
        self.pipe = client.pipeline(transaction=False)
        # A cluster pipeline queues its commands elsewhere and routes them per node: it goes alone.
        self._sender = _sender_for(client) if isinstance(self.pipe, Pipeline) else None
        self._replies: list[Any] | None = None
        self._failure: BaseException | None = None

    def stage(self, add: Callable[[Any], object], parse: Callable[[list[Any]], T]) -> Staged[T]:
        """Queue the commands ``add`` puts on the pipeline; ``parse`` turns their replies into T."""
        start = len(self.pipe)
        add(self.pipe)
        return Staged(self, start, len(self.pipe), parse)

    def run(self) -> None:
        """Send every staged command; Redis failures become :class:`StoreUnavailable`.

        A command refused by Redis fails the whole batch, as a pipeline that raises on error would.
        """
        if not len(self.pipe):
            self._replies = []
            return
        if self._sender is not None:
            self._sender.send(self)
        else:
            _send_together([self])
        with redis_errors():
            if self._failure is not None:
                raise self._failure
            refused = next((r for r in self._replies or () if isinstance(r, Exception)), None)
            if refused is not None:
                raise refused

    def replies(self, start: int, stop: int) -> list[Any]:
        if self._replies is None:
            raise RuntimeError("the batch has not run yet")
        return self._replies[start:stop]

    @property
    def settled(self) -> bool:
        return self._replies is not None or self._failure is not None

    def settle(self, replies: list[Any] | None, failure: BaseException | None = None) -> None:
        self._replies, self._failure = replies, failure


class Staged(Generic[T]):
    """One component's share of a :class:`Batch`."""

    def __init__(self, batch: Batch, start: int, stop: int, parse: Callable[[list[Any]], T]) -> None:
        self._batch = batch
        self._start = start
        self._stop = stop
        self._parse = parse

    def result(self) -> T:
        return self._parse(self._batch.replies(self._start, self._stop))


class _GroupSender:
    """Sends the batches of one client's concurrent threads together (see the module docstring)."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._waiting: list[Batch] = []
        self._sending = False

    def send(self, batch: Batch) -> None:
        """Return once ``batch`` has been sent and settled, by this thread or another."""
        with self._turn:
            self._waiting.append(batch)
            while self._sending and not batch.settled:
                self._turn.wait()
            if batch.settled:
                return
            self._sending = True
            group, self._waiting = self._waiting, []
        try:
            _send_together(group)
        finally:
            for left in group:  # only when interrupted: no batch waits for a reply that never comes
                if not left.settled:
                    left.settle(None, redis.ConnectionError("the batch was interrupted before it was sent"))
            with self._turn:
                self._sending = False
                self._turn.notify_all()


# One sender per client, forgotten with the client (a sender holds no reference to it).
_senders: weakref.WeakKeyDictionary[redis.Redis, _GroupSender] = weakref.WeakKeyDictionary()
_senders_lock = threading.Lock()


def _sender_for(client: redis.Redis) -> _GroupSender:
    sender = _senders.get(client)
    if sender is None:
        with _senders_lock:
            sender = _senders.setdefault(client, _GroupSender())
    return sender


def _send_together(group: list[Batch]) -> None:
    """One round trip for every batch of ``group``; each is settled with its replies or the failure."""
    sizes = [len(batch.pipe) for batch in group]  # executing a pipeline empties it
    pipe = group[0].pipe  # carries the others' commands after its own
    for batch in group[1:]:
        pipe.command_stack.extend(batch.pipe.command_stack)
    try:
        replies = pipe.execute(raise_on_error=False)
    except Exception as exc:  # every batch of the group shares the failed round trip
        for batch in group:
            batch.settle(None, exc)
        return
    offset = 0
    for batch, size in zip(group, sizes, strict=True):
        batch.settle(replies[offset : offset + size])
        offset += size


def run_alone(client: redis.Redis, stage: Callable[[Batch], Staged[T]]) -> T:
    """Run one component's commands as a batch of their own and return their result."""
    batch = Batch(client)
    staged = stage(batch)
    batch.run()
    return staged.result()


def eval_script(pipe: Any, source: str, keys: list[str], args: list[Any]) -> None:
    """Queue a Lua script by its source (see the module docstring)."""
    pipe.execute_command("EVAL", source, len(keys), *keys, *args)
