"""Composition root: build the adapters the settings ask for, once per process.

Functions call :func:`get_runtime` on each request; the first call builds everything (lazily:
no connection is opened until it is needed). Tests and the local stack install their own runtime
with :func:`set_runtime`.

The worker's pipeline, the agent providers and the bridge are imported only when first used, so
that the webhook and poll functions start without loading them (cold start).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared import audit
from shared.auth import Authenticator, build_authenticator
from shared.config import Settings, get_settings
from shared.delivery import DeliveryGuard
from shared.errors import ConfigError
from shared.queue import MemoryBroker, Publisher, RabbitPublisher, Topology
from shared.ratelimit import RateLimiter
from shared.store import TaskStore, TaskTTL, build_redis
from shared.streaming import TaskEvents

if TYPE_CHECKING:
    from shared.bridge import MemoryConsumer, RabbitConsumer, Sink
    from shared.pipeline import Pipeline
    from shared.providers.base import AgentProvider

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a function needs, built from one :class:`Settings`."""

    settings: Settings
    store: TaskStore
    publisher: Publisher
    topology: Topology
    auth: Authenticator
    limiter: RateLimiter
    broker: MemoryBroker | None = None
    _backends: dict[str, AgentProvider] = field(default_factory=dict)
    _agents: dict[str, AgentProvider] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _pipeline: Pipeline | None = None
    _guard: DeliveryGuard | None = None
    _events: TaskEvents | None = None

    @property
    def guard(self) -> DeliveryGuard:
        """The lease and order rules (shared.delivery), over the task store's Redis."""
        with self._lock:
            if self._guard is None:
                settings = self.settings
                self._guard = DeliveryGuard(
                    self.store, lease_s=settings.delivery_lease, skip_after_s=settings.order_skip_after
                )
            return self._guard

    def backend(self, name: str) -> AgentProvider:
        """One resilient backend, shared by every chain that uses it (one breaker per backend)."""
        from shared.providers.factory import build_resilient

        with self._lock:
            if name not in self._backends:
                self._backends[name] = build_resilient(name, self.settings, self.store.client)
            return self._backends[name]

    def provider(self, name: str) -> AgentProvider:
        """The agent for messages asking for ``name``, with the configured fallbacks."""
        from shared.providers.factory import build_agent

        with self._lock:
            if name not in self._agents:
                self._agents[name] = build_agent(name, self.settings, self.store.client, self.backend)
            return self._agents[name]

    @property
    def pipeline(self) -> Pipeline:
        with self._lock:
            if self._pipeline is None:
                self._pipeline = build_pipeline(self)
            return self._pipeline

    @property
    def events(self) -> TaskEvents:
        """The per-task event streams (docs/streaming.md), built once."""
        if self._events is None:
            settings = self.settings
            self._events = TaskEvents(
                self.store, maxlen=settings.stream_maxlen, enabled=settings.stream_enabled
            )
        return self._events

    def close(self) -> None:
        self.publisher.close()


def topology_from(settings: Settings) -> Topology:
    return Topology(
        exchange=settings.rabbitmq_exchange,
        dlx_exchange=settings.rabbitmq_dlx_exchange,
        queue=settings.rabbitmq_queue,
        dlq=settings.rabbitmq_dlq,
        message_ttl_ms=settings.rabbitmq_message_ttl_ms,
    )


def build_runtime(settings: Settings) -> Runtime:
    """Build every adapter; :class:`ConfigError` when a setting is unusable (e.g. no credentials)."""
    auth = build_authenticator(settings)
    client = build_redis(
        settings.redis_url,
        connect_timeout=settings.redis_connect_timeout,
        operation_timeout=settings.redis_operation_timeout,
        pool_size=settings.redis_pool_size,
        cluster=settings.redis_cluster,
    )
    ttl = TaskTTL(
        status=int(settings.task_status_ttl),
        result=int(settings.task_result_ttl),
        thread=int(settings.thread_ttl),
        user_activity=int(settings.user_activity_ttl),
    )
    store = TaskStore(client, ttl=ttl, prefix=settings.redis_key_prefix)
    topology = topology_from(settings)
    broker: MemoryBroker | None = None
    publisher: Publisher
    if settings.rabbitmq_url:
        publisher = RabbitPublisher(
            settings.rabbitmq_url, topology, timeout=settings.rabbitmq_publish_timeout
        )
    else:
        broker = MemoryBroker()
        publisher = broker
    limiter = RateLimiter(client, prefix=settings.redis_key_prefix, enabled=settings.rate_limit_enabled)
    return Runtime(
        settings=settings,
        store=store,
        publisher=publisher,
        topology=topology,
        auth=auth,
        limiter=limiter,
        broker=broker,
    )


def build_pipeline(runtime: Runtime) -> Pipeline:
    from shared.callbacks import CallbackPolicy, CallbackSender
    from shared.pipeline import Pipeline
    from shared.voicenotes import VoiceNotes

    settings = runtime.settings
    callbacks = None
    if settings.callback_enabled:
        policy = CallbackPolicy(
            timeout_s=settings.callback_timeout,
            max_retries=settings.callback_max_retries,
            hmac_secret=settings.callback_hmac_secret,
            auth_token=settings.callback_auth_token,
            allow_private=settings.allow_private_network_urls,
            data_relay_url=settings.data_relay_base_url,
            data_relay_api_key=settings.data_relay_api_key,
        )
        callbacks = CallbackSender(runtime.store, policy)
    return Pipeline(
        runtime.store,
        runtime.provider,
        voice=VoiceNotes.from_settings(settings),
        callbacks=callbacks,
        failure_retry_after=settings.failure_retry_after,
        events=runtime.events,
        guard=runtime.guard,
        debounce_s=settings.debounce_seconds,
    )


def build_sink(settings: Settings) -> Sink:
    from shared.bridge import HttpSink

    if settings.bridge_sink == "pubsub":
        if not settings.pubsub_topic:
            raise ConfigError("PUBSUB_TOPIC: required for BRIDGE_SINK=pubsub (projects/<p>/topics/<t>)")
        from shared.pubsub import PubSubSink

        return PubSubSink(settings.pubsub_topic)
    if not settings.worker_url:
        raise ConfigError("WORKER_URL: required for BRIDGE_SINK=http (the worker function's URL)")
    return HttpSink(
        settings.worker_url,
        timeout=settings.worker_timeout,
        audience=settings.worker_audience,
        connections=settings.max_parallel,
    )


def build_bridge_consumer(runtime: Runtime) -> RabbitConsumer | MemoryConsumer:
    from shared.bridge import Bridge, MemoryConsumer, RabbitConsumer, RetryPolicy

    settings = runtime.settings
    from shared.metrics import WORKER_CAPACITY

    WORKER_CAPACITY.set(settings.max_parallel)
    policy = RetryPolicy(
        max_attempts=settings.bridge_max_attempts,
        initial_delay_s=settings.bridge_retry_initial_delay,
        max_delay_s=settings.bridge_retry_max_delay,
        busy_delay_s=settings.bridge_busy_delay,
    )
    bridge = Bridge(
        build_sink(settings),
        runtime.store,
        policy,
        subscription=f"rabbitmq/{settings.rabbitmq_queue}",
        guard=runtime.guard,
        dependency_wait_s=settings.bridge_dependency_wait,
    )
    if runtime.broker is not None:
        return MemoryConsumer(bridge, runtime.broker, max_parallel=settings.max_parallel)
    assert settings.rabbitmq_url is not None
    return RabbitConsumer(
        bridge,
        settings.rabbitmq_url,
        runtime.topology,
        max_parallel=settings.max_parallel,
        reconnect_max_delay_s=settings.bridge_reconnect_max_delay,
        shutdown_grace_s=settings.bridge_shutdown_grace,
    )


_current: list[Runtime] = []
_current_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, built from the environment on first use."""
    if _current:
        return _current[0]
    with _current_lock:
        if not _current:
            settings = get_settings()
            _current.append(build_runtime(settings))
            audit.configuration(settings, component=os.environ.get("K_SERVICE", "function"))
        return _current[0]


def set_runtime(runtime: Runtime | None) -> None:
    """Install ``runtime`` for this process (tests, local stack); ``None`` forgets the current one."""
    with _current_lock:
        _current.clear()
        if runtime is not None:
            _current.append(runtime)
