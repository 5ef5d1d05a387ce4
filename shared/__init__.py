"""Common library of the EAí Agent Gateway functions.

Every behaviour of the gateway lives here; the functions under ``functions/`` only translate an
HTTP request into a call of this package and its answer back.
"""

import sys as _sys

from shared import tracing as _tracing
from shared.startup import loading as _loading


def _import_redis_without_otel_metrics() -> None:
    """Import redis-py while ``opentelemetry.sdk.metrics`` is hidden, unless tracing is configured.

    redis-py 8 imports the OpenTelemetry metrics SDK at import time whenever it is installed (for its
    opt-in client metrics, which the gateway does not use): 60-80 ms of every cold start. Tracing
    needs the SDK installed, so it is hidden for the duration of this one import only; when tracing
    is configured the exporter loads it anyway and nothing is hidden.
    """
    if "redis" in _sys.modules or _tracing.configured_by_env():
        return
    name = "opentelemetry.sdk.metrics"
    hidden = name not in _sys.modules
    if hidden:
        _sys.modules[name] = None  # type: ignore[assignment]
    try:
        with _loading():  # the largest library a function loads (see shared.startup)
            import redis  # noqa: F401
    finally:
        if hidden and _sys.modules.get(name, 0) is None:
            del _sys.modules[name]


_import_redis_without_otel_metrics()
