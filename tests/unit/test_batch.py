"""Group commit of Redis batches: concurrent threads share one round trip, each reads its own replies."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
from redis.client import Pipeline

from shared.batch import Batch, run_alone
from shared.errors import StoreUnavailable

WAITERS = 6


class RoundTrips:
    """Counts pipeline round trips; the first one can be held open to let other batches queue up."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self.hold = threading.Event()
        self.holding = threading.Event()
        self.fail_with: Exception | None = None
        original = Pipeline.execute

        def execute(pipe: Pipeline, raise_on_error: bool = True) -> list[Any]:
            self.sizes.append(len(pipe))
            if len(self.sizes) == 1:
                self.holding.set()
                self.hold.wait(5)
            if self.fail_with is not None and len(self.sizes) > 1:
                pipe.reset()
                raise self.fail_with
            return original(pipe, raise_on_error)

        monkeypatch.setattr(Pipeline, "execute", execute)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    return RoundTrips(monkeypatch)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    yield fakeredis.FakeRedis(decode_responses=True)


def in_threads(jobs: list[Callable[[], Any]], trips: RoundTrips) -> list[Any]:
    """Run the first job until it holds its round trip open, queue the others behind it, then release."""
    outcomes: list[Any] = [None] * len(jobs)

    def run(index: int) -> None:
        try:
            outcomes[index] = jobs[index]()
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    threads[0].start()
    assert trips.holding.wait(5)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.2)  # the others reach the sender and wait behind the held round trip
    trips.hold.set()
    for thread in threads:
        thread.join(5)
    return outcomes


def incr_twice(client: redis.Redis, key: str) -> Callable[[], list[Any]]:
    def job() -> list[Any]:
        batch = Batch(client)
        first = batch.stage(lambda pipe: pipe.incr(key), lambda replies: replies[0])
        second = batch.stage(lambda pipe: pipe.incrby(key, 10).get(key), list)
        batch.run()
        return [first.result(), second.result()]

    return job


def test_batches_waiting_behind_a_round_trip_go_out_together_and_read_their_own_replies(
    client: redis.Redis, trips: RoundTrips
) -> None:
    jobs = [incr_twice(client, f"k{i}") for i in range(WAITERS + 1)]
    outcomes = in_threads(jobs, trips)
    assert outcomes == [[1, [11, "11"]]] * (WAITERS + 1)
    assert trips.sizes == [3, 3 * WAITERS]  # the first alone, then everyone who queued behind it


def test_a_command_redis_refuses_fails_only_its_own_batch(client: redis.Redis, trips: RoundTrips) -> None:
    client.set("text", "not a number")

    def refused() -> int:
        return run_alone(client, lambda batch: batch.stage(lambda pipe: pipe.incr("text"), lambda r: r[0]))

    outcomes = in_threads([incr_twice(client, "a"), refused, incr_twice(client, "b")], trips)
    assert outcomes[0] == [1, [11, "11"]] and outcomes[2] == [1, [11, "11"]]
    assert isinstance(outcomes[1], StoreUnavailable) and "ResponseError" in str(outcomes[1])
    assert trips.sizes == [3, 4]


def test_a_lost_connection_fails_every_batch_of_the_round_trip(
    client: redis.Redis, trips: RoundTrips
) -> None:
    trips.fail_with = redis.ConnectionError("connection reset")
    outcomes = in_threads([incr_twice(client, f"k{i}") for i in range(3)], trips)
    assert outcomes[0] == [1, [11, "11"]]
    for failed in outcomes[1:]:
        assert isinstance(failed, StoreUnavailable) and str(failed) == "Redis unavailable: ConnectionError"
    assert len(trips.sizes) == 2


def test_an_empty_batch_costs_no_round_trip(client: redis.Redis, trips: RoundTrips) -> None:
    batch = Batch(client)
    nothing = batch.stage(lambda pipe: None, lambda replies: replies)
    batch.run()
    assert nothing.result() == [] and trips.sizes == []


def test_a_batch_alone_goes_out_at_once(client: redis.Redis, trips: RoundTrips) -> None:
    trips.hold.set()
    assert incr_twice(client, "solo")() == [1, [11, "11"]]
    assert trips.sizes == [3]


def test_a_client_and_its_sender_are_freed_together() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    assert incr_twice(client, "k")() == [1, [11, "11"]]
    gone = weakref.ref(client)
    del client
    gc.collect()
    assert gone() is None
