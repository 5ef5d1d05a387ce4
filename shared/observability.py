"""Logging (structured JSON, secrets redacted) and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram

from shared.config import Settings

HTTP_REQUESTS = Counter(
    "eai_gateway_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
MESSAGES_ACCEPTED = Counter("eai_gateway_messages_accepted_total", "Messages accepted and queued")
MESSAGES_REFUSED = Counter("eai_gateway_messages_refused_total", "Valid messages the queue did not take")
MESSAGES_PROCESSED = Counter(
    "eai_gateway_messages_processed_total", "Messages that reached a final state", ["outcome", "error_code"]
)
PROCESSING_SECONDS = Histogram(
    "eai_gateway_processing_seconds",
    "Time from acceptance to final state",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800),
)
BRIDGE_DELIVERIES = Counter(
    "eai_gateway_bridge_deliveries_total", "Worker deliveries made by the bridge", ["decision"]
)

# Credentials that may appear in URLs, headers or error texts.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:amqps?|rediss?|https?)://[^:/@\s]*:)[^@\s]+(@)"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret|password|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
)
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def redact(text: str) -> str:
    """Mask credentials in ``text`` (URLs with passwords, bearer tokens, key=value secrets)."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(2) if m.lastindex == 2 else ""), text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the record's ``extra`` fields, secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class RedactingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(settings: Settings) -> None:
    """Send logs to stdout as JSON (or text), at the configured level; idempotent."""
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level)
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
