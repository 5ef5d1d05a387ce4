"""Retries, circuit breaker, fallback chain and the Redis rate limiter."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from shared.errors import AgentRejected, AgentUnavailable, ConfigError
from shared.providers.base import AgentReply, AgentRequest, HistoryMessage
from shared.providers.mock import MockProvider
from shared.providers.resilience import FallbackChain, RedisRateLimiter, ResilientProvider

REQUEST = AgentRequest("5521", "Oi", "m1")


class Scripted:
    """A provider that raises the scripted errors, then answers."""

    def __init__(self, name: str, *outcomes: Exception | None) -> None:
        self.name = name
        self.outcomes = list(outcomes)
        self.calls = 0

    def _next(self) -> None:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome

    def send(self, request: AgentRequest) -> AgentReply:
        self._next()
        return AgentReply([{"type": "ai", "id": self.name, "content": self.name}], self.name)

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        self._next()
        return {"status": "history updated", "by": self.name}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_retries_transient_errors_then_succeeds():
    inner = Scripted("a", AgentUnavailable("x"), AgentUnavailable("y"))
    sleeps = Sleeps()
    provider = ResilientProvider(inner, max_attempts=3, initial_backoff_s=1, max_backoff_s=8, sleep=sleeps)
    assert provider.send(REQUEST).text == "a"
    assert inner.calls == 3
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1 and 1 <= sleeps[1] <= 2  # exponential with equal jitter


def test_gives_up_after_max_attempts_with_the_last_error():
    inner = Scripted("a", *[AgentUnavailable(f"e{i}") for i in range(5)])
    provider = ResilientProvider(inner, max_attempts=3, sleep=Sleeps())
    with pytest.raises(AgentUnavailable, match="e2"):
        provider.send(REQUEST)
    assert inner.calls == 3


def test_rejected_is_not_retried():
    inner = Scripted("a", AgentRejected("no"))
    with pytest.raises(AgentRejected):
        ResilientProvider(inner, sleep=Sleeps()).send(REQUEST)
    assert inner.calls == 1


def test_retry_after_is_honoured_and_long_ones_are_left_to_the_queue():
    sleeps = Sleeps()
    inner = Scripted("a", AgentUnavailable("429", retry_after=5))
    ResilientProvider(inner, initial_backoff_s=0.1, max_backoff_s=8, sleep=sleeps).send(REQUEST)
    assert sleeps == [5]
    inner = Scripted("a", AgentUnavailable("429", retry_after=60))
    with pytest.raises(AgentUnavailable):
        ResilientProvider(inner, max_backoff_s=8, sleep=sleeps).send(REQUEST)
    assert inner.calls == 1


def test_breaker_opens_after_n_failures_and_short_circuits():
    inner = Scripted("a", *[AgentUnavailable("down")] * 10)
    provider = ResilientProvider(
        inner, max_attempts=1, breaker_fail_max=3, breaker_reset_s=60, sleep=Sleeps()
    )
    for _ in range(3):
        with pytest.raises(AgentUnavailable) as info:
            provider.send(REQUEST)
        assert info.value.error_code == "AGENT_UNAVAILABLE"
    with pytest.raises(AgentUnavailable) as info:
        provider.send(REQUEST)
    assert info.value.error_code == "CIRCUIT_OPEN"
    assert inner.calls == 3  # the open breaker did not call the agent


def test_open_breaker_is_not_retried_and_rejections_do_not_trip_it():
    inner = Scripted("a", *[AgentRejected("bad")] * 5)
    provider = ResilientProvider(inner, max_attempts=3, breaker_fail_max=2, sleep=Sleeps())
    for _ in range(5):
        with pytest.raises(AgentRejected):
            provider.send(REQUEST)
    assert provider.breaker.current_state == "closed"

    inner = Scripted("b", *[AgentUnavailable("down")] * 10)
    sleeps = Sleeps()
    provider = ResilientProvider(inner, max_attempts=5, breaker_fail_max=2, sleep=sleeps)
    with pytest.raises(AgentUnavailable) as info:
        provider.send(REQUEST)
    assert info.value.error_code == "CIRCUIT_OPEN"
    assert inner.calls == 2


def test_breaker_closes_again_after_reset(monkeypatch):
    inner = Scripted("a", AgentUnavailable("down"), AgentUnavailable("down"))
    provider = ResilientProvider(
        inner, max_attempts=1, breaker_fail_max=2, breaker_reset_s=0.05, sleep=Sleeps()
    )
    for _ in range(2):
        with pytest.raises(AgentUnavailable):
            provider.send(REQUEST)
    import time

    time.sleep(0.1)
    assert provider.send(REQUEST).text == "a"
    assert provider.breaker.current_state == "closed"


def test_add_history_goes_through_the_same_policy():
    inner = Scripted("a", AgentUnavailable("x"))
    provider = ResilientProvider(inner, sleep=Sleeps())
    assert provider.add_history("t", [HistoryMessage("ai", "x")], None)["by"] == "a"
    with pytest.raises(ConfigError):
        ResilientProvider(inner, max_attempts=0)


def test_fallback_chain_moves_on_and_records_who_answered():
    first = Scripted("google_agent_engine", AgentUnavailable("down"))
    second = MockProvider()
    chain = FallbackChain([first, second])
    reply = chain.send(REQUEST)
    assert reply.provider == "mock"
    assert reply.extra == {"fallback_from": ["google_agent_engine"]}
    assert reply.text == "Você disse: Oi"
    assert chain.send(REQUEST).provider == "google_agent_engine"


def test_fallback_chain_moves_on_when_the_breaker_is_open():
    broken = ResilientProvider(
        Scripted("a", *[AgentUnavailable("d")] * 9), max_attempts=1, breaker_fail_max=1, sleep=Sleeps()
    )
    with pytest.raises(AgentUnavailable):
        broken.send(REQUEST)
    assert FallbackChain([broken, Scripted("b")]).send(REQUEST).provider == "b"


def test_rejection_stops_the_chain():
    second = Scripted("b")
    with pytest.raises(AgentRejected):
        FallbackChain([Scripted("a", AgentRejected("bad request")), second]).send(REQUEST)
    assert second.calls == 0


def test_all_unavailable_raises_the_last_error():
    chain = FallbackChain(
        [Scripted("a", AgentUnavailable("first")), Scripted("b", AgentUnavailable("second"))]
    )
    with pytest.raises(AgentUnavailable, match="second"):
        chain.send(REQUEST)
    assert (
        FallbackChain([Scripted("a", AgentUnavailable("x")), Scripted("b")]).add_history("t", [], None)["by"]
        == "b"
    )
    with pytest.raises(ConfigError):
        FallbackChain([])


def test_redis_rate_limiter_sliding_window():
    redis = fakeredis.FakeRedis()
    sleeps = Sleeps()
    limiter = RedisRateLimiter(redis, "ratelimit:agent", 3, max_wait_s=0, sleep=sleeps)
    other_instance = RedisRateLimiter(redis, "ratelimit:agent", 3, max_wait_s=0)
    limiter.acquire()
    other_instance.acquire()
    limiter.acquire()
    assert 0 < limiter.try_acquire() <= 60
    with pytest.raises(AgentUnavailable) as info:
        other_instance.acquire()
    assert info.value.error_code == "RATE_LIMITED"
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 60
    assert redis.zcard("ratelimit:agent") == 3
    assert 0 < redis.pttl("ratelimit:agent") <= 60_000


def test_rate_limited_calls_do_not_trip_the_breaker():
    redis = fakeredis.FakeRedis()
    limiter = RedisRateLimiter(redis, "rl", 1, max_wait_s=0)
    inner = Scripted("a")
    provider = ResilientProvider(inner, max_attempts=1, breaker_fail_max=1, rate_limiter=limiter)
    provider.send(REQUEST)
    with pytest.raises(AgentUnavailable) as info:
        provider.send(REQUEST)
    assert info.value.error_code == "RATE_LIMITED"
    assert provider.breaker.current_state == "closed"
    assert inner.calls == 1


def test_concurrent_calls_are_not_serialised_by_the_breaker():
    """Two calls must be inside the agent at the same time (pybreaker's call() would lock them)."""
    import threading

    from shared.providers.base import AgentReply, AgentRequest

    both_inside = threading.Barrier(2, timeout=5)

    class Meeting:
        name = "meeting"

        def send(self, request: AgentRequest) -> AgentReply:
            both_inside.wait()  # BrokenBarrierError if the other call cannot get in meanwhile
            return AgentReply(messages=[{"type": "ai", "content": "ok"}], provider=self.name)

        def add_history(self, *args: object) -> dict[str, object]:
            return {}

    provider = ResilientProvider(Meeting(), max_attempts=1)
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(
                provider.send(AgentRequest(thread_id=str(i), text="oi", message_id=str(i))).text
            )
        )
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == ["ok", "ok"]
