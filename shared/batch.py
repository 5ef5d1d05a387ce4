"""Redis commands of several components sent in one round trip.

Accepting a message touches the rate limiter, the task record, the user's order sequence and the
task's event stream. Sent one by one that is four round trips, each paying redis-py's per-call
overhead; staged on one :class:`Batch` (a non-transactional pipeline) it is one. Each component
stages its own commands and gets back a :class:`Staged` that reads its own replies once the batch
has run, so the components keep their key names and reply formats to themselves.

Scripts are sent with ``EVAL`` (their source), not ``EVALSHA``: Redis caches them by hash all the
same, and a pipeline cannot recover from ``NOSCRIPT`` after a Redis restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import redis

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
        self._replies: list[Any] | None = None

    def stage(self, add: Callable[[Any], object], parse: Callable[[list[Any]], T]) -> Staged[T]:
        """Queue the commands ``add`` puts on the pipeline; ``parse`` turns their replies into T."""
        start = len(self.pipe)
        add(self.pipe)
        return Staged(self, start, len(self.pipe), parse)

    def run(self) -> None:
        """Send every staged command; Redis failures become :class:`StoreUnavailable`."""
        with redis_errors():
            self._replies = self.pipe.execute()

    def replies(self, start: int, stop: int) -> list[Any]:
        if self._replies is None:
            raise RuntimeError("the batch has not run yet")
        return self._replies[start:stop]


class Staged(Generic[T]):
    """One component's share of a :class:`Batch`."""

    def __init__(self, batch: Batch, start: int, stop: int, parse: Callable[[list[Any]], T]) -> None:
        self._batch = batch
        self._start = start
        self._stop = stop
        self._parse = parse

    def result(self) -> T:
        return self._parse(self._batch.replies(self._start, self._stop))


def run_alone(client: redis.Redis, stage: Callable[[Batch], Staged[T]]) -> T:
    """Run one component's commands as a batch of their own and return their result."""
    batch = Batch(client)
    staged = stage(batch)
    batch.run()
    return staged.result()


def eval_script(pipe: Any, source: str, keys: list[str], args: list[Any]) -> None:
    """Queue a Lua script by its source (see the module docstring)."""
    pipe.execute_command("EVAL", source, len(keys), *keys, *args)
