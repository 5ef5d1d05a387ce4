"""Task state in Redis, with the Go gateway's key names, value formats and TTLs.

| key | value |
|---|---|
| ``task:status:<id>`` | ``processing`` / ``completed`` / ``failed`` |
| ``task:result:<id>`` | the result data as a JSON *string literal* (double encoded, as Go stores it) |
| ``task:error:<id>`` | error text |
| ``task:metadata:<id>`` | ``{"user_number":…,"provider":…}`` |
| ``callback:url:<id>`` | callback URL |
| ``thread:<user_number>`` | thread record JSON |
| ``user:last_activity:<user_number>`` | RFC 3339 timestamp |
| ``task:summary:<id>`` | new: final text, error code, timings (fields the Go keys cannot carry) |
| ``stats:processing_ms`` | new: moving average of processing time, for ``estimated_wait_time`` |
| ``idempotency:<client>:<key>`` | new: ``{"message_id":…,"accepted_at":…}`` of the first request |

Every Redis failure surfaces as :class:`~shared.errors.StoreUnavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import redis

from shared.batch import Batch, Staged, eval_script, redis_errors, run_alone
from shared.errors import StoreUnavailable
from shared.models import TaskStatus, go_json

T = TypeVar("T")

_AVERAGE_WEIGHT = 0.2  # weight of the newest sample in the processing-time moving average

# KEYS: task status. ARGV: completed, failed, processing, ttl.  -> the final status, or false
_BEGIN = """
local status = redis.call('GET', KEYS[1])
if status == ARGV[1] or status == ARGV[2] then return status end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
return false
"""

# KEYS: the average. ARGV: sample ms, weight of the sample, ttl.  One round trip, no lost update.
_MOVING_AVERAGE = """
local current = redis.call('GET', KEYS[1])
local average = tonumber(ARGV[1])
if current then average = (1 - tonumber(ARGV[2])) * tonumber(current) + tonumber(ARGV[2]) * average end
redis.call('SET', KEYS[1], string.format('%.1f', average), 'EX', ARGV[3])
return tostring(average)
"""


@dataclass(frozen=True)
class TaskTTL:
    """Retention of task keys, in seconds."""

    status: int = 600
    result: int = 120
    thread: int = 86_400
    user_activity: int = 86_400


@dataclass(frozen=True)
class TaskView:
    """Everything a poll needs to answer for one message id."""

    status: str
    data: dict[str, Any] | None
    data_unreadable: bool
    error: str | None
    summary: dict[str, Any]


class TaskStore:
    """Reads and writes task state; one instance per process, safe to share between threads."""

    def __init__(self, client: redis.Redis, *, ttl: TaskTTL | None = None, prefix: str = "") -> None:
        self.client = client
        self.ttl = ttl or TaskTTL()
        self.prefix = prefix

    # --- key names ----------------------------------------------------------------------------
    def key(self, kind: str, ident: str) -> str:
        return f"{self.prefix}{kind}:{ident}"

    def run(self, operation: Callable[[], T]) -> T:
        """Run a Redis operation, turning connection failures into StoreUnavailable."""
        with redis_errors():
            return operation()

    # --- intake -------------------------------------------------------------------------------
    def accept(
        self,
        message_id: str,
        *,
        user_number: str,
        provider: str,
        callback_url: str | None,
        summary: dict[str, Any],
    ) -> float | None:
        """Record a new task as ``processing``; return the average processing time in ms, if known."""
        return run_alone(
            self.client,
            lambda batch: self.stage_accept(
                batch,
                message_id,
                user_number=user_number,
                provider=provider,
                callback_url=callback_url,
                summary=summary,
            ),
        )

    def stage_accept(
        self,
        batch: Batch,
        message_id: str,
        *,
        user_number: str,
        provider: str,
        callback_url: str | None,
        summary: dict[str, Any],
    ) -> Staged[float | None]:
        """:meth:`accept` as part of a larger :class:`Batch`."""
        ttl = self.ttl.status
        metadata = go_json({"user_number": user_number, "provider": provider})

        def add(pipe: Any) -> None:
            pipe.set(self.key("task:status", message_id), TaskStatus.PROCESSING, ex=ttl)
            pipe.set(self.key("task:metadata", message_id), metadata, ex=ttl)
            pipe.set(self.key("task:summary", message_id), go_json(summary), ex=ttl)
            if callback_url:
                pipe.set(self.key("callback:url", message_id), callback_url, ex=ttl)
            pipe.get(self.prefix + "stats:processing_ms")

        return batch.stage(add, lambda replies: float(replies[-1]) if replies[-1] else None)

    def forget(self, message_id: str) -> None:
        """Delete what :meth:`accept` wrote, for a message refused before it was queued."""
        kinds = ("task:status", "task:metadata", "task:summary", "callback:url", "task:stream")
        self.run(lambda: self.client.delete(*(self.key(kind, message_id) for kind in kinds)))

    def claim_idempotency(self, client: str, key: str, message_id: str, *, ttl: int) -> dict[str, Any] | None:
        """Claim ``key`` for ``message_id`` (SET NX); return the earlier claim when one exists."""
        name = self.key("idempotency", f"{client}:{key}")
        record = go_json({"message_id": message_id, "accepted_at": _now()})
        for _ in range(3):
            if self.run(lambda: self.client.set(name, record, nx=True, ex=ttl)):
                return None
            existing = _json_object(self.run(lambda: self.client.get(name)))
            if existing.get("message_id"):
                return existing
            # Expired or released between SET and GET: try to claim it again.
        raise StoreUnavailable("idempotency key is contended; retry")

    def release_idempotency(self, client: str, key: str, message_id: str) -> None:
        """Forget a claim made by ``message_id`` (its publish failed), so a retry can succeed."""
        name = self.key("idempotency", f"{client}:{key}")
        existing = _json_object(self.run(lambda: self.client.get(name)))
        if existing.get("message_id") == message_id:
            self.run(lambda: self.client.delete(name))

    def task_status(self, message_id: str) -> str | None:
        value = self.run(lambda: self.client.get(self.key("task:status", message_id)))
        return str(value) if value is not None else None

    # --- worker -------------------------------------------------------------------------------
    def begin(self, message_id: str) -> str | None:
        """Mark the task ``processing`` unless it is already final; return the final status if so.

        One atomic step instead of a read and a write: nothing can finish the task in between.
        """
        key = self.key("task:status", message_id)
        args: list[str | int] = [
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.PROCESSING,
            self.ttl.status,
        ]
        final = self.run(lambda: self.client.eval(_BEGIN, 1, key, *args))
        return str(final) if final else None

    def mark_processing(self, message_id: str, *, error: str | None = None) -> None:
        """(Re)start a task; a transient error of a previous attempt is kept for debugging."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key("task:status", message_id), TaskStatus.PROCESSING, ex=self.ttl.status)
        if error:
            pipe.set(self.key("task:error", message_id), error, ex=self.ttl.status)
        self.run(pipe.execute)

    def mark_failed(
        self,
        message_id: str,
        *,
        error: str,
        error_code: str,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """End a task ``failed`` with a reason a client can act on."""
        summary = self.read_summary(message_id)
        summary.update(extra or {})
        summary.update({"error_code": error_code, "finished_at": _now()})
        if retry_after is not None:
            summary["retry_after"] = int(retry_after)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key("task:error", message_id), error, ex=self.ttl.status)
        pipe.set(self.key("task:summary", message_id), go_json(summary), ex=self.ttl.status)
        pipe.set(self.key("task:status", message_id), TaskStatus.FAILED, ex=self.ttl.status)
        self.run(pipe.execute)

    def save_result(
        self,
        message_id: str,
        *,
        user_number: str,
        data: dict[str, Any],
        summary: dict[str, Any],
    ) -> TaskView:
        """Store the result, then flip the status to ``completed`` (the Go order); return the task
        as :meth:`read_task` would now read it (the final event and the callback need no re-read)."""
        merged = self.read_summary(message_id)
        merged.update(summary)
        merged["finished_at"] = _now()
        double_encoded = json.dumps(go_json(data).decode(), ensure_ascii=False)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key("task:result", message_id), double_encoded, ex=self.ttl.result)
        pipe.set(self.key("task:summary", message_id), go_json(merged), ex=self.ttl.status)
        pipe.set(self.key("task:status", message_id), TaskStatus.COMPLETED, ex=self.ttl.status)
        pipe.set(
            self.key("user:last_activity", user_number),
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            ex=self.ttl.user_activity,
        )
        if isinstance(merged.get("processing_time_ms"), int | float):
            sample = float(merged["processing_time_ms"])
            keys = [self.prefix + "stats:processing_ms"]
            eval_script(pipe, _MOVING_AVERAGE, keys, [sample, _AVERAGE_WEIGHT, self.ttl.thread])
        self.run(pipe.execute)
        written, unreadable = _decode_result(double_encoded)
        return TaskView(
            status=TaskStatus.COMPLETED, data=written, data_unreadable=unreadable, error=None, summary=merged
        )

    def touch_thread(self, user_number: str, *, new_messages: int) -> dict[str, Any]:
        """Get or create the user's thread record and count the messages sent to it."""
        key = self.key("thread", user_number)
        raw = self.run(lambda: self.client.get(key))
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        record: dict[str, Any]
        try:
            record = json.loads(raw) if raw else {}
        except ValueError:
            record = {}
        if not isinstance(record, dict) or not record.get("thread_id"):
            record = {"thread_id": user_number, "user_id": user_number, "created_at": now, "message_count": 0}
        record["last_used_at"] = now
        record["message_count"] = int(record.get("message_count") or 0) + new_messages
        ordered = {
            k: record[k] for k in ("thread_id", "user_id", "created_at", "last_used_at", "message_count")
        }
        self.run(lambda: self.client.set(key, go_json(ordered), ex=self.ttl.thread))
        return ordered

    # --- polling ------------------------------------------------------------------------------
    def read_summary(self, message_id: str) -> dict[str, Any]:
        raw = self.run(lambda: self.client.get(self.key("task:summary", message_id)))
        return _json_object(raw)

    def read_task(self, message_id: str) -> TaskView | None:
        """The task's state, or ``None`` when the id is unknown or expired."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.key("task:status", message_id))
        pipe.get(self.key("task:result", message_id))
        pipe.get(self.key("task:error", message_id))
        pipe.get(self.key("task:summary", message_id))
        status, result, error, summary = self.run(pipe.execute)
        if status is None:
            return None
        data, unreadable = _decode_result(result)
        return TaskView(
            status=status, data=data, data_unreadable=unreadable, error=error, summary=_json_object(summary)
        )

    def callback_url(self, message_id: str) -> str | None:
        value = self.run(lambda: self.client.get(self.key("callback:url", message_id)))
        return str(value) if value else None

    def callback_state(self, message_id: str) -> dict[str, Any]:
        raw = self.run(lambda: self.client.get(self.key("callback:status", message_id)))
        return _json_object(raw)

    def record_callback(self, message_id: str, state: dict[str, Any], *, go_error: str | None = None) -> None:
        """Remember how a callback went; on success drop the URL, on failure write Go's error key."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key("callback:status", message_id), go_json(state), ex=self.ttl.status)
        if state.get("state") == "delivered":
            pipe.delete(self.key("callback:url", message_id))
        if go_error:
            pipe.set(self.key("callback:error", message_id), go_error, ex=self.ttl.status)
        self.run(pipe.execute)

    def last_activity(self, user_number: str) -> tuple[str, int] | None:
        key = self.key("user:last_activity", user_number)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(key)
        pipe.ttl(key)
        value, ttl = self.run(pipe.execute)
        if value is None:
            return None
        return str(value), int(ttl) if ttl is not None and int(ttl) >= 0 else self.ttl.user_activity

    def ping(self) -> None:
        self.run(self.client.ping)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_object(raw: str | bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _decode_result(raw: str | None) -> tuple[dict[str, Any] | None, bool]:
    """Undo Go's double encoding; tolerate a single-encoded object written by other tools."""
    if raw is None:
        return None, False
    try:
        value = json.loads(raw)
        if isinstance(value, str):
            value = json.loads(value)
    except ValueError:
        return None, True
    return (value, False) if isinstance(value, dict) else (None, True)


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_url(url: str, *, cluster: bool = False) -> str | None:
    """The plain ``redis://`` URL of a cluster, or ``None`` when ``url`` names a single server.

    ``redis+cluster://host:port`` (``rediss+cluster://`` with TLS) names any node of a Redis
    Cluster; ``cluster=True`` (``REDIS_CLUSTER=true``) says the same of a plain ``redis://`` URL.
    """
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    if plain is not None and sep:
        return f"{plain}://{rest}"
    return url if cluster else None


def build_redis(
    url: str | None,
    *,
    connect_timeout: float,
    operation_timeout: float,
    pool_size: int,
    cluster: bool = False,
) -> redis.Redis:
    """A Redis client for ``url``, or an embedded in-process fakeredis when ``url`` is None.

    For a Redis Cluster the client is a :class:`redis.cluster.RedisCluster`. It serves every
    command the gateway sends: single-key commands, non-transactional pipelines (split per node)
    and Lua scripts whose keys share one hash slot (``ratelimit:{<scope>}:...``). The gateway only
    calls that common subset, so it is typed as :class:`redis.Redis` for its users.
    """
    if url is None:
        import fakeredis

        return fakeredis.FakeRedis(server=_embedded_server(), decode_responses=True)
    nodes_url = cluster_url(url, cluster=cluster)
    if nodes_url is not None:
        from redis.cluster import RedisCluster

        client = RedisCluster.from_url(
            nodes_url,
            decode_responses=True,
            socket_connect_timeout=connect_timeout,
            socket_timeout=operation_timeout,
            max_connections=pool_size,
            health_check_interval=30,
        )
        return cast(redis.Redis, client)
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=connect_timeout,
        socket_timeout=operation_timeout,
        max_connections=pool_size,
        health_check_interval=30,
        retry_on_timeout=False,
    )


_EMBEDDED: list[Any] = []


def _embedded_server() -> Any:
    """One fakeredis server per process, so every function of the local stack sees the same data."""
    if not _EMBEDDED:
        import fakeredis

        _EMBEDDED.append(fakeredis.FakeServer())
    return _EMBEDDED[0]
