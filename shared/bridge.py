"""The queue bridge: drain ``user_messages`` and drive the worker function with push envelopes.

Nothing in GCP triggers a function from RabbitMQ, so this long-running process consumes the queue and
hands each message to the worker as a Pub/Sub push envelope. The worker's status code decides:

==========  =========================================================================
2xx         done (success, or a permanent failure the worker already recorded): ack
429         not now (e.g. the user's previous message still runs): retry soon, attempt not counted
other 4xx   the worker cannot ever take it (malformed): dead-letter, task ``failed``
5xx, error  transient: retry with exponential back-off through a delay queue; after the last
            attempt dead-letter to ``user_messages_dlq`` and end the task ``failed``. Attempts are
            not counted while the worker cannot be connected to or Redis is down (a pause).
==========  =========================================================================

Run it with ``python -m shared.bridge``.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import httpx
import pika
import pika.exceptions

from shared import tracing
from shared.delivery import DeliveryGuard, Position
from shared.errors import GatewayError, InvalidMessage
from shared.metrics import DEAD_LETTERS
from shared.models import PushEnvelope, QueueMessage, TaskStatus
from shared.queue import (
    CONNECTION_ERRORS,
    RETRY_COUNT_HEADER,
    MemoryBroker,
    MemoryMessage,
    Topology,
    connection_parameters,
    declare_retry_queue,
    declare_topology,
)
from shared.store import TaskStore

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where the bridge sends each envelope; answers with an HTTP-like status code."""

    def deliver(self, envelope: PushEnvelope) -> int: ...

    def close(self) -> None: ...


class HttpSink:
    """POST the envelope to the worker function (with an OIDC identity token in GCP)."""

    def __init__(self, url: str, *, timeout: float, audience: str = "", connections: int = 20) -> None:
        self._url = url
        # One kept-alive connection per delivery in flight: httpx keeps only 20 by default, so with
        # MAX_PARALLEL above that most deliveries opened (and the worker accepted) a new connection.
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._tokens = _IdentityTokens(audience) if audience else None

    def deliver(self, envelope: PushEnvelope) -> int:
        headers = {"Content-Type": "application/json", **tracing.inject({})}
        if self._tokens is not None:
            headers["Authorization"] = f"Bearer {self._tokens.get()}"
        response = self._client.post(self._url, content=envelope.to_json(), headers=headers)
        return response.status_code

    def close(self) -> None:
        self._client.close()


class _IdentityTokens:
    """Google-signed ID tokens for calling a private Cloud Run / Cloud Functions URL."""

    _REFRESH_MARGIN_S = 300

    def __init__(self, audience: str) -> None:
        self._audience = audience
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def get(self) -> str:
        with self._lock:
            if time.time() > self._expires_at - self._REFRESH_MARGIN_S:
                import google.auth.transport.requests
                import google.oauth2.id_token

                request = google.auth.transport.requests.Request()
                self._token = str(
                    google.oauth2.id_token.fetch_id_token(request, self._audience)  # type: ignore[no-untyped-call]
                )
                self._expires_at = time.time() + 3600
            return self._token


class Action(Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    REQUEUE = "requeue"  # hand back to the same queue (dead letters that could not be recorded yet)


@dataclass(frozen=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    retry_count: int = 0
    reason: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_delay_s: float = 2.0
    max_delay_s: float = 300.0
    busy_delay_s: float = 1.0

    def backoff(self, failures: int) -> float:
        """Delay before the next attempt after ``failures`` failed ones (1, 2, 4... x initial)."""
        return min(self.initial_delay_s * 2.0 ** max(failures - 1, 0), self.max_delay_s)


class Bridge:
    """Broker-independent core: one message in, one decision out."""

    def __init__(
        self,
        sink: Sink,
        store: TaskStore,
        policy: RetryPolicy,
        *,
        subscription: str,
        guard: DeliveryGuard | None = None,
        dependency_wait_s: float = 30.0,
    ) -> None:
        self.sink = sink
        self.store = store
        self.policy = policy
        self.subscription = subscription
        self.guard = guard
        self.dependency_wait_s = dependency_wait_s

    def handle(
        self, body: bytes, *, retry_count: int, broker_message_id: str, headers: dict[str, Any] | None = None
    ) -> Decision:
        """Deliver one message, continuing the trace in its AMQP ``headers`` (``traceparent``)."""
        with tracing.span(
            "bridge deliver",
            {"messaging.operation": "deliver", "delivery.attempt": retry_count + 1},
            kind="consumer",
            parent=tracing.carrier_of(headers) or None,
        ):
            return self._deliver(body, retry_count=retry_count, broker_message_id=broker_message_id)

    def _deliver(self, body: bytes, *, retry_count: int, broker_message_id: str) -> Decision:
        attempt = retry_count + 1
        envelope = PushEnvelope.wrap(
            body,
            message_id=broker_message_id or uuid.uuid4().hex,
            attributes={"retry_count": str(retry_count), **tracing.inject({})},
            delivery_attempt=attempt,
            subscription=self.subscription,
        )
        try:
            status = self.sink.deliver(envelope)
        except httpx.ConnectError as exc:
            # The worker never got the message (restarting, scaling up): not an attempt of it.
            log.warning("worker unreachable; retrying soon", extra={"error": exc.__class__.__name__})
            return Decision(Action.RETRY, delay_s=self.policy.busy_delay_s, retry_count=retry_count)
        except httpx.HTTPError as exc:
            return self._failed(body, retry_count, f"worker unreachable: {exc.__class__.__name__}")
        if 200 <= status < 300:
            return Decision(Action.ACK)
        if status == 429:
            return Decision(Action.RETRY, delay_s=self.policy.busy_delay_s, retry_count=retry_count)
        if 400 <= status < 500:
            return self._give_up(body, retry_count, f"worker rejected the message with HTTP {status}")
        return self._failed(body, retry_count, f"worker answered HTTP {status}")

    def _failed(self, body: bytes, retry_count: int, reason: str) -> Decision:
        if not self._store_available():
            # Redis is down, not the message: hold it (pausing this slot) and retry without counting.
            return self._paused(retry_count, reason)
        failures = retry_count + 1
        if failures >= self.policy.max_attempts:
            return self._give_up(body, retry_count, f"gave up after {failures} attempts; last: {reason}")
        delay = self.policy.backoff(failures)
        log.warning("worker attempt failed, will retry", extra={"reason": reason, "delay_s": delay})
        return Decision(Action.RETRY, delay_s=delay, retry_count=failures, reason=reason)

    def _give_up(self, body: bytes, retry_count: int, reason: str) -> Decision:
        try:
            message = QueueMessage.from_body(body)
        except InvalidMessage:
            log.error("dead-lettering an undecodable message", extra={"reason": reason})
            return Decision(Action.DEAD_LETTER, reason=reason)
        try:
            self.store.mark_failed(message.id, error=reason, error_code="DELIVERY_FAILED")
            self._settle(message)
        except GatewayError:
            # The task could not be closed: keep the message rather than lose track of it.
            self._store_available()
            return self._paused(retry_count, reason)
        log.error("dead-lettering message", extra={"message_id": message.id, "reason": reason})
        return Decision(Action.DEAD_LETTER, reason=reason)

    def _paused(self, retry_count: int, reason: str) -> Decision:
        log.warning("Redis unavailable; delivery put back, attempt not counted", extra={"reason": reason})
        delay = self.policy.busy_delay_s
        return Decision(Action.RETRY, delay_s=delay, retry_count=retry_count, reason=reason)

    def _store_available(self) -> bool:
        """Ping Redis until it answers, for at most ``dependency_wait_s``; False if it never did."""
        deadline = time.monotonic() + self.dependency_wait_s
        while True:
            try:
                self.store.ping()
                return True
            except GatewayError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(min(1.0, self.dependency_wait_s))

    def _settle(self, message: QueueMessage) -> None:
        if self.guard is not None:
            self.guard.settle(message.user_number, Position.of(message))

    def handle_dead_letter(self, body: bytes, headers: dict[str, Any] | None) -> Decision:
        """Record a dead letter (ack it), or hand it back once Redis has had time to come back."""
        try:
            self.dead_letter(body, headers)
        except GatewayError as exc:
            log.warning("could not record a dead letter; handing it back", extra={"error": str(exc)})
            self._store_available()
            return Decision(Action.REQUEUE, reason=str(exc))
        return Decision(Action.ACK)

    def dead_letter(self, body: bytes, headers: dict[str, Any] | None) -> None:
        """End a dead-lettered message's task ``failed`` and free its user's order; then it may be acked.

        Raises :class:`StoreUnavailable` when Redis cannot record it (the caller hands it back).
        A task the bridge already closed (``DELIVERY_FAILED``) or completed keeps its state.
        """
        reason = _death_reason(headers)
        code = "EXPIRED_IN_QUEUE" if reason == "expired" else "DEAD_LETTERED"
        try:
            message = QueueMessage.from_body(body)
        except InvalidMessage:
            DEAD_LETTERS.labels("undecodable").inc()
            log.error("acknowledging an undecodable dead letter", extra={"death_reason": reason})
            return
        task = self.store.read_task(message.id)
        if task is None or task.status == TaskStatus.PROCESSING:
            text = (
                "the message waited in the queue longer than its time to live"
                if reason == "expired"
                else f"the message was dead-lettered ({reason or 'unknown reason'})"
            )
            self.store.mark_failed(message.id, error=text, error_code=code)
        self._settle(message)
        DEAD_LETTERS.labels(reason or "unknown").inc()
        log.warning("dead letter recorded", extra={"message_id": message.id, "death_reason": reason})


def _death_reason(headers: dict[str, Any] | None) -> str:
    """The ``reason`` of the newest ``x-death`` entry (``expired``, ``rejected``, ``maxlen``...)."""
    deaths = (headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = deaths[0].get("reason", "")
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    return ""


def retry_count_of(headers: dict[str, Any] | None) -> int:
    value = (headers or {}).get(RETRY_COUNT_HEADER, 0)
    return value if isinstance(value, int) and value >= 0 else 0


class PriorityExecutor:
    """A fixed pool of threads that always starts the most urgent waiting job first.

    The bridge holds up to a prefetch of deliveries per queue; when every thread is busy, a
    high-priority delivery waiting here overtakes the normal ones that arrived before it.
    """

    HIGH, NORMAL = 0, 1

    def __init__(self, workers: int, *, name: str = "bridge") -> None:
        self._jobs: queue.PriorityQueue[
            tuple[int, int, Callable[[], Decision] | None, Future[Decision] | None]
        ]
        self._jobs = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], Decision], *, rank: int = NORMAL) -> Future[Decision]:
        future: Future[Decision] = Future()
        self._jobs.put((rank, next(self._sequence), job, future))
        return future

    def _work(self) -> None:
        while True:
            _, _, job, future = self._jobs.get()
            if job is None or future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while waiting (shutdown)
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Stop the threads once the jobs already queued have run (or been cancelled)."""
        for _ in self._threads:
            self._jobs.put((2, next(self._sequence), None, None))


class RabbitConsumer:
    """Consume with pika; run deliveries on a thread pool; settle them on the connection thread.

    Survives broker restarts: every (re)connect re-declares the topology and re-registers the
    consumers, with capped exponential back-off between attempts (the Go worker once reconnected
    without re-subscribing and stopped draining the queue). Also consumes the dead-letter queue, so
    that every dead-lettered message ends its task ``failed`` (:meth:`Bridge.dead_letter`).

    :meth:`stop` (SIGTERM) is graceful: cancel the consumers (no new work), hand back deliveries not
    started yet, let running ones finish for at most ``shutdown_grace_s``; whatever is unfinished then
    stays unacked and the broker redelivers it when the connection closes.
    """

    def __init__(
        self,
        bridge: Bridge,
        url: str,
        topology: Topology,
        *,
        max_parallel: int,
        reconnect_max_delay_s: float = 30.0,
        shutdown_grace_s: float = 30.0,
    ) -> None:
        self.bridge = bridge
        self.topology = topology
        self.max_parallel = max_parallel
        self.reconnect_max_delay_s = reconnect_max_delay_s
        self.shutdown_grace_s = shutdown_grace_s
        self._parameters = connection_parameters(url, timeout=10.0)
        self.connection_name = f"eai-bridge-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._parameters.client_properties = {"connection_name": self.connection_name}
        self._pool = PriorityExecutor(max_parallel)
        self._stop = threading.Event()
        self._in_flight = 0
        self._futures: set[Future[Decision]] = set()
        self._retry_queues: set[str] = set()
        self.connections_opened = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._consume_until_stopped()
                failures = 0
            except CONNECTION_ERRORS as exc:
                failures += 1
                delay = min(2 ** (failures - 1), self.reconnect_max_delay_s)
                log.warning(
                    "RabbitMQ connection lost, reconnecting",
                    extra={"error": exc.__class__.__name__, "delay_s": delay, "attempt": failures},
                )
                self._stop.wait(delay)
        for future in list(self._futures):
            future.cancel()
        self._pool.shutdown()

    def _consume_until_stopped(self) -> None:
        connection = pika.BlockingConnection(self._parameters)
        self.connections_opened += 1
        self._retry_queues = set()
        # Deliveries of a lost connection can no longer be settled; the broker redelivers them.
        self._in_flight = 0
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.max_parallel)
            declare_topology(channel, self.topology)
            bridge = self.bridge

            def consumer(source: str, rank: int) -> Callable[[Any, Any, Any, bytes], None]:
                def work(ch: Any, method: Any, props: Any, body: bytes) -> None:
                    retry_count = retry_count_of(props.headers)
                    job = lambda: bridge.handle(  # noqa: E731
                        body,
                        retry_count=retry_count,
                        broker_message_id=props.message_id or "",
                        headers=props.headers,
                    )
                    self._dispatch(connection, ch, method, props, body, job, rank=rank, source=source)

                return work

            def dead(ch: Any, method: Any, props: Any, body: bytes) -> None:
                job = lambda: bridge.handle_dead_letter(body, props.headers)  # noqa: E731
                self._dispatch(connection, ch, method, props, body, job)

            high, normal = self.topology.priority_queue, self.topology.queue
            tags = [
                channel.basic_consume(high, on_message_callback=consumer(high, PriorityExecutor.HIGH)),
                channel.basic_consume(normal, on_message_callback=consumer(normal, PriorityExecutor.NORMAL)),
                channel.basic_consume(self.topology.dlq, on_message_callback=dead),
            ]
            log.info("bridge consuming", extra={"queue": self.topology.queue, "prefetch": self.max_parallel})
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.5)
            for tag in tags:
                channel.basic_cancel(tag)
            self._drain(connection)
        finally:
            if connection.is_open:
                connection.close()

    def _drain(self, connection: pika.BlockingConnection) -> None:
        """Hand back what has not started; let running deliveries finish, for a bounded time."""
        for future in list(self._futures):
            future.cancel()  # only succeeds for deliveries still waiting for a thread
        deadline = time.monotonic() + self.shutdown_grace_s
        while self._in_flight and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.2)
        if self._in_flight:
            log.warning(
                "shutdown grace over; unfinished deliveries stay unacked",
                extra={"in_flight": self._in_flight},
            )

    def _dispatch(
        self,
        connection: Any,
        channel: Any,
        method: Any,
        properties: Any,
        body: bytes,
        job: Callable[[], Decision],
        *,
        rank: int = PriorityExecutor.NORMAL,
        source: str | None = None,
    ) -> None:
        self._in_flight += 1
        future = self._pool.submit(job, rank=rank)
        self._futures.add(future)

        def settle_later(done: Future[Decision]) -> None:
            self._futures.discard(done)
            settle = self._settler(channel, method.delivery_tag, properties, body, done, source)
            try:
                connection.add_callback_threadsafe(settle)
            except pika.exceptions.ConnectionWrongStateError:
                log.info("connection closed before settling; the broker will redeliver")

        future.add_done_callback(settle_later)

    def _settler(
        self,
        channel: Any,
        tag: int,
        properties: Any,
        body: bytes,
        done: Future[Decision],
        source: str | None,
    ) -> Callable[[], None]:
        def settle() -> None:
            self._in_flight -= 1
            if not channel.is_open:
                return
            if done.cancelled():  # never started (shutdown): hand it back untouched
                channel.basic_nack(tag, requeue=True)
                return
            exception = done.exception()
            decision = (
                Decision(Action.RETRY, delay_s=self.bridge.policy.busy_delay_s)
                if exception
                else done.result()
            )
            if exception:
                log.error("bridge failed handling a delivery", exc_info=exception)
            self._apply(channel, tag, properties, body, decision, source)

        return settle

    def _apply(
        self, channel: Any, tag: int, properties: Any, body: bytes, decision: Decision, source: str | None
    ) -> None:
        if decision.action is Action.ACK:
            channel.basic_ack(tag)
        elif decision.action is Action.DEAD_LETTER:
            channel.basic_reject(tag, requeue=False)
        elif decision.action is Action.REQUEUE:
            channel.basic_nack(tag, requeue=True)
        else:
            self._republish_delayed(channel, properties, body, decision, source)
            channel.basic_ack(tag)

    def _republish_delayed(
        self, channel: Any, properties: Any, body: bytes, decision: Decision, source: str | None
    ) -> None:
        """Send a copy through a delay queue that dead-letters it back into the queue it came from."""
        delay_ms = max(int(decision.delay_s * 1000), 1)
        retry_queue = self.topology.retry_queue(delay_ms, source)
        if retry_queue not in self._retry_queues:
            declare_retry_queue(channel, self.topology, delay_ms, source)
            self._retry_queues.add(retry_queue)
        headers = {k: v for k, v in (properties.headers or {}).items() if k != "x-death"}
        headers[RETRY_COUNT_HEADER] = decision.retry_count
        copy = pika.BasicProperties(
            content_type=properties.content_type or "application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            timestamp=properties.timestamp,
            message_id=properties.message_id,
            headers=headers,
        )
        # Confirmed publish before the ack: a crash in between duplicates, never loses.
        channel.basic_publish("", retry_queue, body, properties=copy, mandatory=True)


class MemoryConsumer:
    """The same loop over the embedded :class:`MemoryBroker` (local runs without RabbitMQ)."""

    def __init__(self, bridge: Bridge, broker: MemoryBroker, *, max_parallel: int) -> None:
        self.bridge = bridge
        self.broker = broker
        self._slots = threading.Semaphore(max_parallel)
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="bridge")
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            message = self.broker.get(timeout=0.5)
            if message is None or self._stop.is_set():
                if message is not None:
                    self.broker.schedule(message, delay=0)  # hand it back, unprocessed
                self._slots.release()
                continue
            self._pool.submit(self._handle, message)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _handle(self, message: MemoryMessage) -> None:
        try:
            retry_count = retry_count_of(message.headers)
            decision = self.bridge.handle(
                message.body,
                retry_count=retry_count,
                broker_message_id=message.message_id,
                headers=message.headers,
            )
            if decision.action is Action.RETRY:
                message.headers[RETRY_COUNT_HEADER] = decision.retry_count
                self.broker.schedule(message, delay=decision.delay_s)
            elif decision.action is Action.DEAD_LETTER:
                self.broker.dead_letter(message)
                self._record_dead_letter(message)
        except Exception:
            log.exception("bridge failed handling a message; retrying it")
            self.broker.schedule(message, delay=self.bridge.policy.busy_delay_s)
        finally:
            self._slots.release()

    def _record_dead_letter(self, message: MemoryMessage) -> None:
        """What the RabbitMQ dead-letter consumer does, at once (the embedded queue has no consumer)."""
        headers = {**message.headers, "x-death": [{"reason": "rejected"}]}
        if self.bridge.handle_dead_letter(message.body, headers).action is not Action.ACK:
            log.error("dead letter not recorded", extra={"broker_message_id": message.message_id})


def main() -> None:
    """Entry point of ``python -m shared.bridge``: consume RabbitMQ until SIGTERM/SIGINT."""
    from shared.observability import configure_logging
    from shared.runtime import build_bridge_consumer, get_runtime

    runtime = get_runtime()
    configure_logging(runtime.settings)
    consumer = build_bridge_consumer(runtime)

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("stopping bridge", extra={"signal": signum})
        consumer.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    consumer.run()
    log.info("bridge stopped")
    logging.shutdown()
    # Deliveries still running after the grace period are unacked (the broker redelivers them);
    # do not wait for their HTTP calls at interpreter exit.
    os._exit(0)


if __name__ == "__main__":
    main()
