"""OpenTelemetry tracing, off unless configured, and cheap when off.

Tracing is enabled when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set or ``OTEL_ENABLED=true``: the SDK and
the OTLP/gRPC exporter are imported then, and only then, so the webhook's and the poll's cold start
pays nothing for tracing when it is off. Every helper here is a no-op while tracing is off.

One message is one trace: the webhook's server span injects W3C ``traceparent`` into the AMQP
headers of the published message (as the Go gateway does) and stores it under ``task:trace:<id>`` in
Redis; the bridge continues it and puts it into the push envelope's attributes (and the HTTP request
to the worker); the worker continues it for its steps; the poll joins it from ``task:trace:<id>``.

Settings (environment, the OpenTelemetry names):

=================================  ==============================================================
``OTEL_ENABLED``                   ``true`` enables tracing (collector from the variable below, or
                                   the exporter's default ``localhost:4317``)
``OTEL_EXPORTER_OTLP_ENDPOINT``    collector URL (``http://collector:4317``); enables tracing
``OTEL_SERVICE_NAME``              service name (default ``eai-gateway``)
``OTEL_TRACES_SAMPLER[_ARG]``      the SDK's standard sampler settings (default: parent-based, all)
=================================  ==============================================================
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
DEFAULT_SERVICE = "eai-gateway"
_TRUE = {"1", "true", "yes", "on"}


class _State:
    def __init__(self) -> None:
        self.provider: TracerProvider | None = None
        self.tracer: Tracer | None = None
        self.lock = threading.Lock()


_state = _State()


def configured_by_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for tracing (``OTEL_ENABLED`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    enabled = env.get("OTEL_ENABLED", "").strip().lower()
    if enabled in {"0", "false", "no", "off"}:
        return False
    return enabled in _TRUE or bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())


def enabled() -> bool:
    return _state.tracer is not None


def configure(
    *,
    service_name: str | None = None,
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Start tracing when configured (or when an ``exporter`` is given, in tests); idempotent.

    With an ``exporter`` spans are exported synchronously (tests read them at once); otherwise a
    batch processor sends them to the OTLP collector. Returns whether tracing is on.
    """
    with _state.lock:
        if _state.tracer is not None and exporter is None:
            return True
        if exporter is None and not configured_by_env(environ):
            return False
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        env = os.environ if environ is None else environ
        name = service_name or env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _install_global(provider)
        previous = _state.provider
        _state.provider = provider
        _state.tracer = provider.get_tracer("eai-gateway")
    if previous is not None:
        previous.shutdown()
    log.info("tracing enabled", extra={"service": name})
    return True


def _install_global(provider: TracerProvider) -> None:
    """Make ``provider`` the process's global one too (for libraries that trace on their own)."""
    from opentelemetry import trace

    trace.set_tracer_provider(provider)


def shutdown() -> None:
    """Flush and stop tracing (process exit; tests)."""
    with _state.lock:
        provider, _state.provider, _state.tracer = _state.provider, None, None
    if provider is not None:
        provider.shutdown()


@contextmanager
def _span(
    name: str,
    attributes: Mapping[str, Any],
    kind: str,
    parent: Mapping[str, str] | None,
    link: Mapping[str, str] | None,
) -> Iterator[Span]:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    assert _state.tracer is not None
    context = _extract(parent) if parent else None
    links = []
    if link:
        linked = trace.get_current_span(_extract(link)).get_span_context()
        if linked.is_valid:
            links.append(trace.Link(linked))
    clean = {k: v for k, v in attributes.items() if v is not None}
    with _state.tracer.start_as_current_span(
        name,
        context=context,
        kind=getattr(SpanKind, kind.upper()),
        attributes=clean,
        links=links,
        record_exception=True,
        set_status_on_exception=True,
    ) as current:
        yield current


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: str = "internal",
    parent: Mapping[str, str] | None = None,
    link: Mapping[str, str] | None = None,
) -> Any:
    """A context manager running its block in span ``name`` (a no-op while tracing is off).

    ``parent``: a carrier (``traceparent``...) to continue instead of the current span; ``link``: a
    carrier to link to. ``kind``: ``internal``, ``server``, ``client``, ``producer``, ``consumer``.
    """
    if _state.tracer is None:
        return nullcontext(None)
    return _span(name, attributes or {}, kind, parent, link)


def span_following(carrier: Mapping[str, str], name: str, attributes: Mapping[str, Any] | None = None) -> Any:
    """Span ``name`` in the trace of ``carrier`` (a message's): a child of the current span when that
    is already in the same trace (the bridge sent ``traceparent`` over HTTP too), else a child of
    the carrier's context, linked to the current span (e.g. a Pub/Sub push request)."""
    if _state.tracer is None:
        return nullcontext(None)
    current, _, _ = current_ids()
    wanted = trace_id_of(carrier)
    if not wanted or wanted == current:
        return _span(name, attributes or {}, "consumer", None, None)
    return _span(name, attributes or {}, "consumer", carrier, inject({}))


def set_attributes(attributes: Mapping[str, Any]) -> None:
    """Add attributes to the current span (no-op while tracing is off)."""
    if _state.tracer is None:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(key, value)


def inject(carrier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the current trace context (``traceparent``, ``tracestate``) into ``carrier``."""
    carrier = {} if carrier is None else carrier
    if _state.tracer is None:
        return carrier
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    TraceContextTextMapPropagator().inject(carrier)
    return carrier


def carrier_of(headers: Any) -> dict[str, str]:
    """The trace headers found in ``headers`` (AMQP headers, envelope attributes, HTTP headers)."""
    if not headers:
        return {}
    found: dict[str, str] = {}
    for key, value in headers.items():
        name = str(key).lower()
        if name in (TRACEPARENT, TRACESTATE) and value:
            found[name] = value.decode() if isinstance(value, bytes) else str(value)
    return found


def _extract(carrier: Mapping[str, str]) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(dict(carrier))


def current_ids() -> tuple[str, str, bool]:
    """``(trace_id, span_id, sampled)`` of the current span in hex; empty strings when none."""
    if _state.tracer is None:
        return "", "", False
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", "", False
    return f"{context.trace_id:032x}", f"{context.span_id:016x}", bool(context.trace_flags.sampled)


def trace_id_of(carrier: Mapping[str, str]) -> str:
    """The trace id in a ``traceparent`` (``00-<trace>-<span>-<flags>``), without the SDK; or ""."""
    parts = carrier.get(TRACEPARENT, "").strip().split("-")
    if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        try:
            int(parts[1], 16)
        except ValueError:
            return ""
        return parts[1].lower()
    return ""
