"""Every Prometheus metric of the gateway, defined here and nowhere else.

The names are the seed README's; ``monitoring/alerts.yml`` and ``monitoring/grafana-dashboard.json``
use exactly these (a test parses their PromQL and checks each name against :func:`metric_names`).

Multi-process servers (gunicorn with several workers): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty,
writable directory *before* the processes start; every process then writes its samples there and
``/metrics`` aggregates them (:func:`render`). Gauges declare how they aggregate (in-flight: summed
over live processes). ``message_queue_depth`` is read from the broker at scrape time, never stored.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_PROCESSING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800)
_EXTERNAL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "endpoint", "status_code"]
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "endpoint"],
    buckets=_LATENCY_BUCKETS,
)
MESSAGE_PROCESSING = Counter(
    "message_processing_total",
    "Messages by stage outcome: accepted/refused (webhook), completed/failed/retried (worker)",
    ["message_type", "status"],
)
MESSAGE_PROCESSING_DURATION = Histogram(
    "message_processing_duration_seconds",
    "Time from acceptance by the webhook to the message's final state",
    ["message_type"],
    buckets=_PROCESSING_BUCKETS,
)
MESSAGE_PROCESSING_ERRORS = Counter(
    "message_processing_errors_total", "Failed or retried messages by error code", ["error_code"]
)
EXTERNAL_API_CALLS = Counter(
    "external_api_calls_total",
    "Outbound calls (agents, speech, audio download, callbacks) by outcome",
    ["service", "outcome"],
)
EXTERNAL_API_RESPONSE_TIME = Histogram(
    "external_api_response_time_seconds",
    "Duration of outbound calls",
    ["service"],
    buckets=_EXTERNAL_BUCKETS,
)
WORKER_IN_FLIGHT = Gauge(
    "worker_tasks_in_flight", "Messages the worker is processing now", multiprocess_mode="livesum"
)
WORKER_CAPACITY = Gauge(
    "worker_capacity",
    "Messages the bridge delivers at once (MAX_PARALLEL); utilisation = in-flight / capacity",
    multiprocess_mode="livemax",
)
ORDER_SKIPS = Counter(
    "message_order_skips_total", "Messages skipped because they did not arrive in their turn"
)
DEAD_LETTERS = Counter("message_dead_letters_total", "Dead-lettered messages ended failed", ["reason"])
QUEUE_DEPTH = "message_queue_depth"


# --- helpers the code calls ---------------------------------------------------------------------


def observe_http(method: str, endpoint: str, status_code: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, endpoint, str(status_code)).inc()
    HTTP_REQUEST_DURATION.labels(method, endpoint).observe(seconds)


def observe_message(
    message_type: str, status: str, *, error_code: str = "", seconds: float | None = None
) -> None:
    """One message reached ``status``; ``seconds`` (since acceptance) for final states."""
    MESSAGE_PROCESSING.labels(message_type, status).inc()
    if error_code:
        MESSAGE_PROCESSING_ERRORS.labels(error_code).inc()
    if seconds is not None:
        MESSAGE_PROCESSING_DURATION.labels(message_type).observe(max(seconds, 0.0))


@dataclass
class Call:
    """The outcome of an outbound call; code may set ``outcome`` (e.g. ``http_4xx``) before the end."""

    service: str
    outcome: str = "success"


@contextmanager
def external_call(service: str) -> Iterator[Call]:
    """Count and time one outbound call: ``success``, ``timeout`` or ``error`` (an exception)."""
    call = Call(service)
    started = time.perf_counter()
    try:
        yield call
    except BaseException as exc:
        call.outcome = "timeout" if "timeout" in exc.__class__.__name__.lower() else "error"
        raise
    finally:
        EXTERNAL_API_CALLS.labels(service, call.outcome).inc()
        EXTERNAL_API_RESPONSE_TIME.labels(service).observe(time.perf_counter() - started)


@contextmanager
def in_flight() -> Iterator[None]:
    WORKER_IN_FLIGHT.inc()
    try:
        yield
    finally:
        WORKER_IN_FLIGHT.dec()


# --- queue depth, read at scrape time ------------------------------------------------------------


class QueueDepthCollector(Collector):
    """``message_queue_depth{queue}`` from ``source`` (queue -> depth), cached for ``ttl_s``."""

    def __init__(self, source: Callable[[], dict[str, int]], *, ttl_s: float = 5.0) -> None:
        self._source = source
        self._ttl_s = ttl_s
        self._cached: dict[str, int] = {}
        self._at = float("-inf")
        self._lock = threading.Lock()

    def depths(self) -> dict[str, int]:
        with self._lock:
            if time.monotonic() - self._at >= self._ttl_s:
                try:
                    self._cached = dict(self._source())
                except Exception:
                    self._cached = {}  # broker unreachable: no sample rather than a stale one
                self._at = time.monotonic()
            return dict(self._cached)

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(QUEUE_DEPTH, "Messages waiting in each queue", labels=["queue"])
        for queue, depth in sorted(self.depths().items()):
            family.add_metric([queue], depth)
        yield family

    def describe(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(QUEUE_DEPTH, "Messages waiting in each queue", labels=["queue"])


# --- exposition ----------------------------------------------------------------------------------


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()


def render(*extra: Collector) -> tuple[bytes, str]:
    """The exposition text (all processes' samples in multi-process mode) and its content type."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        output = generate_latest(registry)
    else:
        output = generate_latest(REGISTRY)
    if extra:
        scrape = CollectorRegistry(auto_describe=False)
        for collector in extra:
            scrape.register(collector)
        output += generate_latest(scrape)
    return output, CONTENT_TYPE_LATEST


def metric_names() -> set[str]:
    """Every series name ``/metrics`` can expose (with ``_total``, ``_bucket``... suffixes)."""
    families = [*REGISTRY.collect(), *QueueDepthCollector(dict).describe()]
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in families:
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
