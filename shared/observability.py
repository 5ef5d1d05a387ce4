"""Logging: structured JSON for Google Cloud Logging (or text locally), secrets redacted, and the
correlation ids of the request or message being handled on every line.

Metrics live in :mod:`shared.metrics`, tracing in :mod:`shared.tracing`.

Correlation: :func:`bind` puts ``request_id``, ``message_id`` and ``trace_id`` into a context
variable for the duration of a request or a message; every record emitted meanwhile carries them.
With tracing on, the current span's ids are used and the JSON line gets Cloud Logging's
``logging.googleapis.com/trace`` (``projects/<id>/traces/<trace id>``) and ``.../spanId`` fields.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

from shared import tracing
from shared.config import Settings

CORRELATION_FIELDS = ("request_id", "message_id", "trace_id")
TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"

_correlation: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("correlation", default={})  # noqa: B039
_project = {"id": ""}


@contextmanager
def bind(**ids: str | None) -> Iterator[None]:
    """Add correlation ids (``request_id``, ``message_id``, ``trace_id``) to every log line of the block."""
    merged = {**_correlation.get(), **{k: v for k, v in ids.items() if v}}
    token = _correlation.set(merged)
    try:
        yield
    finally:
        _correlation.reset(token)


def correlation() -> dict[str, str]:
    """The correlation ids in effect (the current span's trace id wins when tracing is on)."""
    ids = dict(_correlation.get())
    trace_id, span_id, _ = tracing.current_ids()
    if trace_id:
        ids["trace_id"] = trace_id
        ids["span_id"] = span_id
    return ids


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

# Cheap test for "could one of _SECRET_PATTERNS match here": most log values (ids, names, numbers)
# contain none of these words, and one search is cheaper than three substitutions.
_SECRET_HINT = re.compile(r"(?i)bearer|://|key|token|secret|password|authorization|jwt")

# SHA-256 digests of the configured secrets (registered by shared.auth): a long word in a log record
# whose digest is one of them is masked, even when no pattern around it gives it away. Only words of
# a registered length are hashed (ids of other lengths in every record cost nothing).
_SECRET_DIGESTS: set[bytes] = set()
_SECRET_LENGTHS: set[int] = set()


def register_secret_digest(digest: bytes, length: int) -> None:
    """Mask any word of ``length`` characters whose SHA-256 is ``digest``."""
    _SECRET_DIGESTS.add(digest)
    _SECRET_LENGTHS.add(length)


def redact(text: str) -> str:
    """Mask credentials in ``text`` (URLs with passwords, bearer tokens, key=value secrets, JWTs,
    configured secrets)."""
    if _SECRET_HINT.search(text):
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(2) if m.lastindex == 2 else ""), text)
    if "eyJ" in text:
        text = _JWT.sub("***", text)
    if _SECRET_DIGESTS and len(text) >= min(_SECRET_LENGTHS):
        text = _LONG_WORD.sub(_mask_known_secret, text)
    return text


def _mask_known_secret(match: re.Match[str]) -> str:
    word = match.group(0)
    for candidate in {word, word.strip(".,:;=")}:
        if len(candidate) not in _SECRET_LENGTHS:
            continue
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
        ids = _correlation.get()
        trace_id, span_id, sampled = tracing.current_ids()
        for name in CORRELATION_FIELDS:
            if not getattr(record, name, None):
                value = ids.get(name) or (_current_request_id() if name == "request_id" else "")
                if name == "trace_id" and trace_id:
                    value = trace_id
                if value:
                    setattr(record, name, value)
        if span_id and not getattr(record, "span_id", None):
            record.span_id = span_id
            record._trace_sampled = sampled
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
        trace_id = entry.get("trace_id")
        if isinstance(trace_id, str) and trace_id and _project["id"]:
            entry[TRACE_FIELD] = f"projects/{_project['id']}/traces/{trace_id}"
        if entry.get("span_id"):
            entry[SPAN_FIELD] = entry["span_id"]
            entry[SAMPLED_FIELD] = bool(getattr(record, "_trace_sampled", False))
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class RedactingTextFormatter(logging.Formatter):
    """Human-readable lines for local runs, with the correlation ids at the end."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(
            f"{name}={getattr(record, name)}" for name in CORRELATION_FIELDS if getattr(record, name, None)
        )
        return redact(f"{text} [{ids}]" if ids else text)


class _StdoutHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever ``sys.stdout`` is now (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> IO[str]:
        return sys.stdout

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def _handler(settings: Settings, stream: IO[str] | None) -> logging.Handler:
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
    handler.addFilter(SanitizingFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _project["id"] = settings.google_project_id or os.environ.get("GOOGLE_CLOUD_PROJECT", "")
    return handler


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """Send logs to stdout (or ``stream``) as JSON (or text), at the configured level, through the
    :class:`SanitizingFilter`; replaces the root logger's handlers; idempotent."""
    root = logging.getLogger()
    root.handlers = [_handler(settings, stream)]
    _quiet_libraries(root, settings)


def setup_process(settings: Settings) -> None:
    """What a function does once at start: its log handler (added once, other handlers kept) and
    tracing when configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_ENABLED``)."""
    root = logging.getLogger()
    if not any(getattr(h, "_gateway", False) for h in root.handlers):
        handler = _handler(settings, None)
        handler._gateway = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        _quiet_libraries(root, settings)
    tracing.configure()


def _quiet_libraries(root: logging.Logger, settings: Settings) -> None:
    root.setLevel(settings.log_level)
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
