"""Logging (structured JSON, secrets redacted) and Prometheus metrics."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

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
ORDER_SKIPS = Counter(
    "eai_gateway_order_skips_total", "Messages skipped because they did not arrive in their turn"
)
DEAD_LETTERS = Counter("eai_gateway_dead_letters_total", "Dead-lettered messages ended failed", ["reason"])
BRIDGE_DELIVERIES = Counter(
    "eai_gateway_bridge_deliveries_total", "Worker deliveries made by the bridge", ["decision"]
)

# Credentials that may appear in URLs, headers or error texts.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:amqps?|rediss?|https?)://[^:/@\s]*:)[^@\s]+(@)"),
    re.compile(
        r"(?i)((?:x-api-key|api[_-]?key|token|secret|password|authorization|jwt)[\"']?\s*[:=]\s*[\"']?)"
        r"(?:bearer\s+)?[^\s\"',}]+"
    ),
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_LONG_WORD = re.compile(r"[A-Za-z0-9._~+/=:-]{16,}")
# A phone number: 8-15 digits, optional '+', not part of a longer word, id or UUID group.
_PHONE = re.compile(r"(?<![\w.-])\+?\d{8,15}(?![\w-])")
_SENSITIVE_KEYS = re.compile(r"(?i)authorization|api[_-]?key|token|secret|password|jwt|cookie")
_PHONE_KEYS = re.compile(r"(?i)^(user_number|phone|phone_number|from|to|wa_id|thread_id|user_id)$")
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

# SHA-256 digests of the configured secrets (registered by shared.auth): a long word in a log record
# whose digest is one of them is masked, even when no pattern around it gives it away.
_SECRET_DIGESTS: set[bytes] = set()


def register_secret_digest(digest: bytes) -> None:
    _SECRET_DIGESTS.add(digest)


def redact(text: str) -> str:
    """Mask credentials in ``text`` (URLs with passwords, bearer tokens, key=value secrets, JWTs,
    configured secrets)."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(2) if m.lastindex == 2 else ""), text)
    text = _JWT.sub("***", text)
    if _SECRET_DIGESTS:
        text = _LONG_WORD.sub(_mask_known_secret, text)
    return text


def _mask_known_secret(match: re.Match[str]) -> str:
    word = match.group(0)
    candidates = {word, word.strip(".,:;=")}
    for candidate in candidates:
        if hashlib.sha256(candidate.encode()).digest() in _SECRET_DIGESTS:
            return "***"
    return word


def mask_phone(text: str) -> str:
    """``5521999991234`` -> ``*********1234``: all but the last 4 digits masked."""
    return _PHONE.sub(lambda m: "*" * (len(m.group(0)) - 4) + m.group(0)[-4:], text)


def _clean(value: Any, *, phones: bool, key: str = "") -> Any:
    if key and _SENSITIVE_KEYS.search(key) and value not in (None, ""):
        return "***"
    if isinstance(value, str):
        value = redact(value)
        if phones and key and _PHONE_KEYS.match(key):
            return "*" * max(0, len(value) - 4) + value[-4:]
        return mask_phone(value) if phones else value
    if isinstance(value, int) and not isinstance(value, bool) and phones and key and _PHONE_KEYS.match(key):
        return _clean(str(value), phones=phones, key=key)
    if isinstance(value, dict):
        return {k: _clean(v, phones=phones, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, phones=phones, key=key) for v in value]
    return value


class SanitizingFilter(logging.Filter):
    """The one filter every log record passes: masks secrets (always) and phone numbers (INFO and
    above; DEBUG keeps them for troubleshooting), and adds the current ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        phones = record.levelno >= logging.INFO
        message = record.getMessage()
        record.msg = _clean(message, phones=phones)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _RESERVED and not key.startswith("_"):
                setattr(record, key, _clean(value, phones=phones, key=key))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _clean(record.exc_text, phones=phones)
        if not getattr(record, "request_id", None):
            current = _current_request_id()
            if current:
                record.request_id = current
        return True


def _current_request_id() -> str:
    try:
        import flask

        if flask.has_app_context():
            return str(flask.g.get("request_id", ""))
    except ImportError:  # pragma: no cover - flask is a runtime dependency
        pass
    return ""


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
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class RedactingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """Send logs to stdout (or ``stream``) as JSON (or text), at the configured level, through the
    :class:`SanitizingFilter`; idempotent."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.addFilter(SanitizingFilter())
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
