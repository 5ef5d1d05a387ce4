"""Retries, circuit breaking, fallback and a shared outbound rate limit around providers.

* :class:`ResilientProvider` retries :class:`AgentUnavailable` only (exponential back-off with
  jitter, at least the server's ``retry_after``) behind a circuit breaker; an open breaker fails
  fast with ``AgentUnavailable(error_code="CIRCUIT_OPEN")``. :class:`AgentRejected` is never retried and
  does not count against the breaker (the agent answered).
* :class:`FallbackChain` asks providers in order and moves on only after ``AgentUnavailable``.
* :class:`RedisRateLimiter` is a sliding-window limit shared by every instance through Redis.

Both wrappers stream when asked (``stream``): chunks pass straight through, and a retry or a fallback
that follows partial output first emits a ``reset`` chunk, so consumers drop the abandoned text
instead of showing it twice. Retrying after the first chunk is kept on purpose: the final answer
matters more than an uninterrupted stream.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import pybreaker
from tenacity import RetryCallState, Retrying, retry_if_exception

from shared import metrics
from shared.errors import AgentUnavailable, ConfigError
from shared.providers.base import (
    AgentProvider,
    AgentReply,
    AgentRequest,
    ChunkSink,
    HistoryMessage,
    RewindableSink,
    stream_reply,
)

T = TypeVar("T")

CIRCUIT_OPEN = "CIRCUIT_OPEN"
RATE_LIMITED = "RATE_LIMITED"


class RateLimiter(Protocol):
    """Something that blocks until one more outbound call is allowed."""

    def acquire(self) -> None:
        """Wait for a slot; raise :class:`AgentUnavailable` when none frees up in time."""
        ...


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, AgentUnavailable) and exc.error_code not in (CIRCUIT_OPEN,)


class ResilientProvider:
    """Wraps a provider with retries, a circuit breaker and an optional shared rate limit."""

    def __init__(
        self,
        inner: AgentProvider,
        *,
        max_attempts: int = 3,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 8,
        breaker_fail_max: int = 5,
        breaker_reset_s: float = 30,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        self.inner = inner
        self.name = inner.name
        self.max_attempts = max_attempts
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.rate_limiter = rate_limiter
        self._sleep = sleep
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=breaker_fail_max,
            reset_timeout=breaker_reset_s,
            exclude=[lambda exc: not isinstance(exc, AgentUnavailable)],
            throw_new_error_on_trip=False,
            name=f"agent:{inner.name}",
        )

    def _wait(self, state: RetryCallState) -> float:
        exponential = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (state.attempt_number - 1))
        delay = random.uniform(exponential / 2, exponential)  # "equal jitter"
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > delay:
            delay = float(retry_after)
        return delay

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.max_attempts:
            return True
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        # A server asking for a longer pause than we are willing to wait: let the queue retry.
        return isinstance(retry_after, int | float) and retry_after > self.max_backoff_s

    def _guarded(self, func: Callable[[], T]) -> T:
        if self.rate_limiter is not None:  # our own limit: not a failure of the agent
            self.rate_limiter.acquire()
        try:
            # Not breaker.call(): it holds the breaker's lock for the whole call, which would let a
            # process make one agent call at a time. calling() checks the state under the lock and
            # records the outcome, while the call itself runs unlocked.
            with self.breaker.calling():
                result: T = self._timed(func)
            return result
        except pybreaker.CircuitBreakerError as exc:
            raise AgentUnavailable(
                f"{self.name}: circuit breaker open, not calling the agent",
                error_code=CIRCUIT_OPEN,
            ) from exc

    def _timed(self, func: Callable[[], T]) -> T:
        """One call of the agent, counted in ``external_api_calls_total{service="agent:<name>"}``."""
        with metrics.external_call(f"agent:{self.name}"):
            result: T = func()
        return result

    def _run(self, func: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=self._stop,
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        result: T = retrying(self._guarded, func)
        return result

    def send(self, request: AgentRequest) -> AgentReply:
        return self._run(lambda: self.inner.send(request))

    def stream(self, request: AgentRequest, on_chunk: ChunkSink) -> AgentReply:
        sink = RewindableSink(on_chunk)

        def attempt() -> AgentReply:
            sink.rewind()  # a previous attempt's partial text is abandoned
            return stream_reply(self.inner, request, sink)

        return self._run(attempt)

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        return self._run(lambda: self.inner.add_history(thread_id, messages, reasoning_engine_id))


class FallbackChain:
    """Providers tried in order; the reply's ``provider`` names the one that answered."""

    def __init__(self, providers: Sequence[AgentProvider]) -> None:
        if not providers:
            raise ConfigError("FallbackChain needs at least one provider; found none")
        self.providers = list(providers)
        self.name = "+".join(p.name for p in self.providers)

    def _run(self, call: Callable[[AgentProvider], T]) -> tuple[T, AgentProvider, list[str]]:
        last: AgentUnavailable | None = None
        failed: list[str] = []
        for provider in self.providers:
            try:
                return call(provider), provider, failed
            except AgentUnavailable as exc:  # AgentRejected propagates: the chain stops
                last = exc
                failed.append(provider.name)
        assert last is not None
        raise last

    def send(self, request: AgentRequest) -> AgentReply:
        return self._answer(*self._run(lambda p: p.send(request)))

    def stream(self, request: AgentRequest, on_chunk: ChunkSink) -> AgentReply:
        sink = RewindableSink(on_chunk)

        def attempt(provider: AgentProvider) -> AgentReply:
            sink.rewind()  # the previous provider's partial text is abandoned
            return stream_reply(provider, request, sink)

        return self._answer(*self._run(attempt))

    @staticmethod
    def _answer(reply: AgentReply, provider: AgentProvider, failed: list[str]) -> AgentReply:
        extra = dict(reply.extra)
        if failed:
            extra["fallback_from"] = failed
        return replace(reply, provider=provider.name, extra=extra)

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        result, _, _ = self._run(lambda p: p.add_history(thread_id, messages, reasoning_engine_id))
        return result


# Sliding window over the last 60 s, kept in a sorted set scored by milliseconds. Returns 0 when a
# slot was taken, else the milliseconds until the oldest call leaves the window. Redis' own clock
# is used so that instances with skewed clocks share one window.
_SLIDING_WINDOW_LUA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local member = ARGV[3]
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms - window_ms)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now_ms, member)
  redis.call('PEXPIRE', key, window_ms)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window_ms - now_ms
if wait < 1 then wait = 1 end
return wait
"""


class RedisRateLimiter:
    """At most ``max_per_minute`` calls per rolling minute across all instances sharing ``key``.

    ``acquire`` waits for a slot up to ``max_wait_s`` and then raises
    ``AgentUnavailable(error_code="RATE_LIMITED", retry_after=...)``. Redis errors propagate.
    """

    window_ms = 60_000

    def __init__(
        self,
        redis_client: Any,
        key: str,
        max_per_minute: int,
        *,
        max_wait_s: float = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_per_minute < 1:
            raise ConfigError(f"max_per_minute must be >= 1, got {max_per_minute}")
        self.key = key
        self.max_per_minute = max_per_minute
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._script = redis_client.register_script(_SLIDING_WINDOW_LUA)

    def try_acquire(self) -> float:
        """Take a slot if one is free: 0.0 on success, else the seconds until one frees up."""
        wait_ms = self._script(keys=[self.key], args=[self.max_per_minute, self.window_ms, uuid.uuid4().hex])
        return int(wait_ms) / 1000

    def acquire(self) -> None:
        waited = 0.0
        while True:
            wait = self.try_acquire()
            if wait == 0:
                return
            if waited + wait > self.max_wait_s:
                raise AgentUnavailable(
                    f"rate limit of {self.max_per_minute}/min reached for {self.key}",
                    error_code=RATE_LIMITED,
                    retry_after=wait,
                )
            self._sleep(wait)
            waited += wait
