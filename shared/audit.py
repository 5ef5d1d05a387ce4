"""The audit stream: who did what, when, with which result, as one JSON object per line.

Records go to the logger ``audit`` (not propagated to the application log), always as JSON on
stdout, whatever ``LOG_FORMAT`` says, so that the platform can route them on their own (Terraform:
a log sink with a filter on ``jsonPayload.logger="audit"``, into a log bucket kept 90 days).

Shape::

    {"time": "...", "severity": "INFO", "logger": "audit", "message": "message.accept accepted",
     "who": {"client": "token:ab12cd34", "ip": "10.1.2.3"},
     "what": {"action": "message.accept", "resource": "message:<id>"},
     "when": "2025-01-01T12:00:00.000Z", "result": "accepted", "status": 202, "request_id": "..."}

Never the message text, phone numbers, tokens or setting values: only identifiers the gateway makes
(client ids are digests of credentials, message ids are UUIDs) and setting *names*. Every string
value still passes :func:`shared.observability.redact` and the phone mask as a second line of defence.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from shared.config import Settings, env_name
from shared.observability import mask_phone, redact

LOGGER_NAME = "audit"
STREAM_LABEL = "eai-gateway-audit"


class _AuditHandler(logging.Handler):
    """Writes each record's JSON line to ``stream`` (default: the *current* ``sys.stdout``)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(logging.INFO)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = self.stream or sys.stdout
            stream.write(line + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class _AuditFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = getattr(record, "audit", {})
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "severity": record.levelname,
            "logger": LOGGER_NAME,
            "message": record.getMessage(),
            "logging.googleapis.com/labels": {"stream": STREAM_LABEL},
            **entry,
        }
        return json.dumps(_scrub(document), ensure_ascii=False, default=str)


def _scrub(value: Any) -> Any:
    """Redact credentials and mask phone numbers in every string value (keys are setting names)."""
    if isinstance(value, str):
        return mask_phone(redact(value))
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def configure(stream: IO[str] | None = None) -> logging.Logger:
    """(Re)install the audit handler; ``stream`` for tests, else stdout. Idempotent."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = _AuditHandler(stream)
    handler.setFormatter(_AuditFormatter())
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    return logger if logger.handlers else configure()


def record(
    action: str,
    *,
    result: str,
    resource: str = "",
    client: str | None = None,
    ip: str | None = None,
    status: int | None = None,
    request_id: str | None = None,
    **details: Any,
) -> None:
    """Write one audit record. ``details`` must hold identifiers and counts only, never content."""
    entry: dict[str, Any] = {
        "who": {"client": client or "anonymous", "ip": ip or "unknown"},
        "what": {"action": action, "resource": resource},
        "when": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "result": result,
    }
    if status is not None:
        entry["status"] = status
    if request_id:
        entry["request_id"] = request_id
    if details:
        entry["details"] = details
    _logger().info("%s %s", action, result, extra={"audit": entry})


def configuration(settings: Settings, *, component: str) -> None:
    """Audit the configuration a process starts with: each setting's name and whether it is set."""
    names = {env_name(Settings, field): field in settings.model_fields_set for field in Settings.model_fields}
    record(
        "config.loaded",
        result="ok",
        resource=f"settings:{component}",
        client=f"process:{component}",
        settings=dict(sorted(names.items())),
        set_count=sum(names.values()),
    )
