"""Composition root: build the adapters the settings ask for, once per process.

Functions call :func:`get_runtime` on each request; the first call builds everything (lazily:
no connection is opened until it is needed). Tests and the local stack install their own runtime
with :func:`set_runtime`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.auth import Authenticator, build_authenticator
from shared.bridge import Bridge, HttpSink, MemoryConsumer, RabbitConsumer, RetryPolicy, Sink
from shared.config import Settings, get_settings
from shared.errors import ConfigError, UnsupportedProvider
from shared.models import KNOWN_PROVIDERS
from shared.pipeline import Pipeline
from shared.providers.base import AgentProvider
from shared.queue import MemoryBroker, Publisher, RabbitPublisher, Topology
from shared.ratelimit import RateLimiter
from shared.store import TaskStore, TaskTTL, build_redis

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
    _providers: dict[str, AgentProvider] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def provider(self, name: str) -> AgentProvider:
        """The agent provider called ``name`` (built on first use)."""
        with self._lock:
            if name not in self._providers:
                self._providers[name] = build_provider(name, self.settings)
            return self._providers[name]

    @property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.store, self.provider)

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


def build_provider(name: str, settings: Settings) -> AgentProvider:
    factories: dict[str, Callable[[], AgentProvider]] = {
        "mock": lambda: _mock(settings),
    }
    factory = factories.get(name)
    if factory is None:
        offered = ", ".join(sorted(factories))
        known = name in KNOWN_PROVIDERS
        reason = "is not configured in this deployment" if known else "is unknown"
        raise UnsupportedProvider(f"provider {name!r} {reason}; available: {offered}")
    return factory()


def _mock(settings: Settings) -> AgentProvider:
    from shared.providers.mock import MockProvider

    return MockProvider(latency_ms=settings.mock_agent_latency_ms)


def build_sink(settings: Settings) -> Sink:
    if settings.bridge_sink == "pubsub":
        raise ConfigError("BRIDGE_SINK=pubsub is not available yet; use http")
    if not settings.worker_url:
        raise ConfigError("WORKER_URL: required for BRIDGE_SINK=http (the worker function's URL)")
    return HttpSink(settings.worker_url, timeout=settings.worker_timeout, audience=settings.worker_audience)


def build_bridge_consumer(runtime: Runtime) -> RabbitConsumer | MemoryConsumer:
    settings = runtime.settings
    policy = RetryPolicy(
        max_attempts=settings.bridge_max_attempts,
        initial_delay_s=settings.bridge_retry_initial_delay,
        max_delay_s=settings.bridge_retry_max_delay,
        busy_delay_s=settings.bridge_busy_delay,
    )
    bridge = Bridge(
        build_sink(settings), runtime.store, policy, subscription=f"rabbitmq/{settings.rabbitmq_queue}"
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
    )


_current: list[Runtime] = []
_current_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, built from the environment on first use."""
    if _current:
        return _current[0]
    with _current_lock:
        if not _current:
            _current.append(build_runtime(get_settings()))
        return _current[0]


def set_runtime(runtime: Runtime | None) -> None:
    """Install ``runtime`` for this process (tests, local stack); ``None`` forgets the current one."""
    with _current_lock:
        _current.clear()
        if runtime is not None:
            _current.append(runtime)
