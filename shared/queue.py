"""RabbitMQ topology and publishing, plus the embedded in-process queue for local runs.

The topology is the Go gateway's, names and arguments identical (RabbitMQ refuses a redeclare with
other arguments, which would stop the Go processes sharing the broker). Retries use extra queues of
our own: ``<queue>.retry.<ms>`` holds a message for ``ms`` milliseconds and then dead-letters it back
to the work queue, so back-off needs no broker plugin.

pika connections are not thread-safe: :class:`RabbitPublisher` keeps one connection and channel per
thread, with publisher confirms and ``mandatory`` so that a refused or unroutable message is an
error, never a silent loss.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from shared.errors import QueueUnavailable

log = logging.getLogger(__name__)

RETRY_COUNT_HEADER = "x-retry-count"

# What a lost or hung broker raises. A broker that accepts TCP but never answers fails the AMQP
# handshake with a connector exception that is *not* an AMQPError (it used to escape as a 500).
CONNECTION_ERRORS: tuple[type[Exception], ...] = (pika.exceptions.AMQPError, OSError, AMQPConnectorException)


@dataclass(frozen=True)
class Topology:
    """Names and arguments of the exchanges and queues."""

    exchange: str = "eai_gateway"
    dlx_exchange: str = "eai_gateway_dlx"
    queue: str = "user_messages"
    dlq: str = "user_messages_dlq"
    message_ttl_ms: int = 300_000

    @property
    def routing_key(self) -> str:
        return self.queue

    @property
    def priority_queue(self) -> str:
        """Our own queue for high-priority messages; the Go-compatible queue stays as it is."""
        return f"{self.queue}.priority"

    def target(self, *, priority: bool) -> str:
        """Queue name (which is also the routing key) for a message of that priority."""
        return self.priority_queue if priority else self.queue

    def queue_arguments(self) -> dict[str, Any]:
        return {
            "x-dead-letter-exchange": self.dlx_exchange,
            "x-dead-letter-routing-key": self.dlq,
            "x-message-ttl": self.message_ttl_ms,
        }

    def retry_queue(self, delay_ms: int, target: str | None = None) -> str:
        return f"{target or self.queue}.retry.{delay_ms}"

    def retry_queue_arguments(self, delay_ms: int, target: str | None = None) -> dict[str, Any]:
        """Hold a message ``delay_ms``, then dead-letter it back into ``target`` (default: the work queue)."""
        return {
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": self.exchange,
            "x-dead-letter-routing-key": target or self.routing_key,
        }


def declare_topology(channel: Any, topology: Topology) -> None:
    """Declare exchanges, the work queue, the dead-letter queue and their bindings (idempotent)."""
    channel.exchange_declare(topology.exchange, exchange_type="direct", durable=True)
    channel.exchange_declare(topology.dlx_exchange, exchange_type="direct", durable=True)
    channel.queue_declare(topology.queue, durable=True, arguments=topology.queue_arguments())
    channel.queue_bind(topology.queue, topology.exchange, routing_key=topology.routing_key)
    channel.queue_declare(topology.priority_queue, durable=True, arguments=topology.queue_arguments())
    channel.queue_bind(topology.priority_queue, topology.exchange, routing_key=topology.priority_queue)
    channel.queue_declare(topology.dlq, durable=True)
    channel.queue_bind(topology.dlq, topology.dlx_exchange, routing_key=topology.dlq)


def declare_retry_queue(channel: Any, topology: Topology, delay_ms: int, target: str | None = None) -> str:
    name = topology.retry_queue(delay_ms, target)
    channel.queue_declare(name, durable=True, arguments=topology.retry_queue_arguments(delay_ms, target))
    return name


def connection_parameters(url: str, *, timeout: float) -> pika.URLParameters:
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = timeout
    parameters.stack_timeout = timeout
    parameters.blocked_connection_timeout = timeout
    return parameters


class Publisher(Protocol):
    """Where the webhook hands accepted messages."""

    def publish(self, body: bytes, *, headers: dict[str, Any] | None = None, priority: bool = False) -> None:
        """Return only once the queue holds the message; raise :class:`QueueUnavailable` otherwise.

        ``priority`` routes it to the high-priority queue, which the bridge drains first.
        """
        ...

    def close(self) -> None: ...


@dataclass
class _Link:
    """One pika connection and its confirm-mode channel, used by one thread at a time."""

    connection: Any
    channel: Any

    @property
    def usable(self) -> bool:
        return bool(self.connection.is_open and self.channel.is_open)


class RabbitPublisher:
    """Confirmed, persistent publishing over a small pool of pika connections.

    pika connections are not thread-safe, so each publish checks a connection out of the pool and
    returns it afterwards: a connection is never used by two threads at once, and the number of
    connections stays bounded however many threads the server starts (a thread-per-request server
    with thread-local connections once exhausted the broker's file descriptors).
    """

    def __init__(self, url: str, topology: Topology, *, timeout: float = 5.0, pool_size: int = 16) -> None:
        self._parameters = connection_parameters(url, timeout=timeout)
        self._topology = topology
        self._timeout = timeout
        self._idle: queue.LifoQueue[_Link] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._lock = threading.Lock()
        self._links: list[_Link] = []

    def publish(self, body: bytes, *, headers: dict[str, Any] | None = None, priority: bool = False) -> None:
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            timestamp=int(time.time()),
            message_id=str(time.time_ns()),
            headers=headers or None,
        )
        if not self._slots.acquire(timeout=self._timeout):
            raise QueueUnavailable("every RabbitMQ publishing connection is busy")
        try:
            self._publish(body, properties, routing_key=self._topology.target(priority=priority))
        finally:
            self._slots.release()

    def _publish(self, body: bytes, properties: Any, *, routing_key: str) -> None:
        for attempt in (1, 2):
            link: _Link | None = None
            try:
                link = self._checkout()
                link.channel.basic_publish(
                    self._topology.exchange, routing_key, body, properties=properties, mandatory=True
                )
                self._idle.put(link)
                return
            except pika.exceptions.NackError:
                self._give_back(link)
                raise QueueUnavailable("RabbitMQ refused the message (nack)") from None
            except pika.exceptions.UnroutableError:
                self._give_back(link)
                raise QueueUnavailable("RabbitMQ could not route the message to a queue") from None
            except CONNECTION_ERRORS as exc:
                self._discard(link)
                if attempt == 2:
                    raise QueueUnavailable(f"RabbitMQ unavailable: {exc.__class__.__name__}") from exc
                log.info("publish failed on a stale connection, reconnecting", extra={"error": repr(exc)})

    def _checkout(self) -> _Link:
        """An idle open connection, or a new one (the semaphore bounds how many exist)."""
        while True:
            try:
                link = self._idle.get_nowait()
            except queue.Empty:
                return self._connect()
            if link.usable:
                return link
            self._discard(link)

    def _connect(self) -> _Link:
        connection = pika.BlockingConnection(self._parameters)
        channel = connection.channel()
        channel.confirm_delivery()
        declare_topology(channel, self._topology)
        link = _Link(connection, channel)
        with self._lock:
            self._links.append(link)
        return link

    def _give_back(self, link: _Link | None) -> None:
        if link is not None and link.usable:
            self._idle.put(link)
        else:
            self._discard(link)

    def _discard(self, link: _Link | None) -> None:
        if link is None:
            return
        with self._lock:
            if link in self._links:
                self._links.remove(link)
        _close_quietly(link.connection)

    def close(self) -> None:
        """Close every pooled connection (at process shutdown)."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            _close_quietly(link.connection)


def _close_quietly(connection: Any) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:
        log.debug("ignoring error while closing a RabbitMQ connection", exc_info=True)


# --- embedded queue ---------------------------------------------------------------------------


@dataclass(order=True)
class _Scheduled:
    due: float
    sequence: int
    message: MemoryMessage = field(compare=False)


@dataclass
class MemoryMessage:
    body: bytes
    headers: dict[str, Any]
    message_id: str
    priority: bool = False


class MemoryBroker:
    """An in-process stand-in for the work queue, its retry queues and its dead-letter queue.

    Used by ``make run`` when no ``RABBITMQ_URL`` is set. Messages live in memory only: a restart
    loses them, which is why production always uses RabbitMQ.
    """

    def __init__(self) -> None:
        self._ready: list[_Scheduled] = []
        self._condition = threading.Condition()
        self._sequence = itertools.count()
        self.dead_letters: list[MemoryMessage] = []

    def publish(self, body: bytes, *, headers: dict[str, Any] | None = None, priority: bool = False) -> None:
        message = MemoryMessage(body, dict(headers or {}), str(time.time_ns()), priority=priority)
        self.schedule(message, delay=0.0)

    def schedule(self, message: MemoryMessage, *, delay: float) -> None:
        with self._condition:
            heapq.heappush(self._ready, _Scheduled(time.monotonic() + delay, next(self._sequence), message))
            self._condition.notify()

    def dead_letter(self, message: MemoryMessage) -> None:
        with self._condition:
            self.dead_letters.append(message)

    def get(self, timeout: float) -> MemoryMessage | None:
        """The next due message, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                now = time.monotonic()
                if self._ready and self._ready[0].due <= now:
                    return self._take_due(now)
                wait = deadline - now
                if self._ready:
                    wait = min(wait, self._ready[0].due - now)
                if wait <= 0 and now >= deadline:
                    return None
                self._condition.wait(max(wait, 0.001))

    def _take_due(self, now: float) -> MemoryMessage:
        """The first due high-priority message, else the first due one (FIFO within a priority)."""
        due = [item for item in self._ready if item.due <= now]
        chosen = min(due, key=lambda item: (not item.message.priority, item.due, item.sequence))
        self._ready.remove(chosen)
        heapq.heapify(self._ready)
        return chosen.message

    def depth(self) -> int:
        with self._condition:
            return len(self._ready)

    def close(self) -> None:
        """Nothing to release; present so the broker can stand in for a publisher."""
