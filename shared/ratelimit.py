"""Sliding-window rate limits in Redis, shared by every instance of every function.

One Lua script checks all windows of a scope (e.g. 1000/min and 100/10 s for one client on one
endpoint group) and records the request only when every window has room: the check and the
increment are one atomic step, so two instances can never both take the last slot. Each window is a
sorted set of request timestamps (Redis ``TIME``, so instance clocks do not matter); denied requests
are not recorded, so a client that keeps hammering gets back in once its window slides.

Keys: ``<REDIS_KEY_PREFIX>ratelimit:{<scope>}:<seconds>s`` (hash tag: one cluster slot per scope).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from shared.batch import Batch, Staged, eval_script, run_alone

_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = tostring(now) .. ':' .. ARGV[1]
local allowed = 1
local out = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  local retry = 0
  if count >= limit then
    allowed = 0
    local blocking = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    retry = tonumber(blocking[2]) + window - now
  end
  local reset = window
  if count > 0 then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    reset = tonumber(oldest[2]) + window - now
  end
  out[3 * i - 1] = count
  out[3 * i] = reset
  out[3 * i + 1] = retry
end
if allowed == 1 then
  for i = 1, #KEYS do
    redis.call('ZADD', KEYS[i], now, member)
    redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i + 1]))
    out[3 * i - 1] = out[3 * i - 1] + 1
  end
end
out[1] = allowed
return out
"""


@dataclass(frozen=True)
class Window:
    """At most ``limit`` requests in any ``seconds`` interval."""

    limit: int
    seconds: float


@dataclass(frozen=True)
class Decision:
    """The outcome of one request against a scope, reported for its tightest window."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the oldest counted request leaves the reported window
    retry_after: int  # seconds until a denied request may succeed (0 when allowed)
    window: int  # length of the reported window, seconds

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers

    def body(self) -> dict[str, object]:
        return {
            "error": "Rate limit exceeded",
            "message": f"at most {self.limit} requests per {self.window} s; retry after {self.retry_after} s",
            "retry_after": self.retry_after,
            "limit": self.limit,
            "window": self.window,
        }


class RateLimiter:
    """Counts requests per scope in Redis; thread safe, one per process."""

    def __init__(self, client: redis.Redis, *, prefix: str = "", enabled: bool = True) -> None:
        self.client = client
        self.prefix = prefix
        self.enabled = enabled

    def key(self, scope: str, window: Window) -> str:
        return f"{self.prefix}ratelimit:{{{scope}}}:{_ms(window.seconds) // 1000 or 1}s"

    def hit(self, scope: str, windows: Sequence[Window]) -> Decision | None:
        """Record one request of ``scope`` if every window has room; ``None`` when not limited.

        Raises :class:`StoreUnavailable` when Redis cannot answer.
        """
        return run_alone(self.client, lambda batch: self.stage_hit(batch, scope, windows))

    def stage_hit(self, batch: Batch, scope: str, windows: Sequence[Window]) -> Staged[Decision | None]:
        """:meth:`hit` as part of a larger :class:`Batch` (its answer once the batch has run)."""
        active = [window for window in windows if window.limit > 0]
        if not self.enabled or not active:
            return batch.stage(lambda pipe: None, lambda replies: None)
        # Only needs to tell two requests of the same millisecond apart: no system entropy call.
        args: list[str | int] = [f"{random.getrandbits(64):016x}"]
        for window in active:
            args += [window.limit, _ms(window.seconds)]
        keys = [self.key(scope, window) for window in active]
        return batch.stage(
            lambda pipe: eval_script(pipe, _SCRIPT, keys, args),
            lambda replies: _decide(active, replies[0]),
        )


def _decide(active: Sequence[Window], reply: list[Any]) -> Decision:
    """The script's counts per window -> the decision reported for the tightest window."""
    allowed = int(reply[0]) == 1
    decisions = []
    for index, window in enumerate(active):
        count, reset_ms, retry_ms = (int(v) for v in reply[3 * index + 1 : 3 * index + 4])
        decisions.append(
            Decision(
                allowed=allowed,
                limit=window.limit,
                remaining=max(0, window.limit - count),
                reset=max(1, math.ceil(reset_ms / 1000)),
                retry_after=max(1, math.ceil(retry_ms / 1000)) if retry_ms > 0 else 0,
                window=max(1, round(window.seconds)),
            )
        )
    if allowed:
        return min(decisions, key=lambda d: (d.remaining, -d.window))
    blocking = max(decisions, key=lambda d: d.retry_after)
    return Decision(
        allowed=False,
        limit=blocking.limit,
        remaining=0,
        reset=max(blocking.reset, blocking.retry_after),
        retry_after=max(1, blocking.retry_after),
        window=blocking.window,
    )


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
