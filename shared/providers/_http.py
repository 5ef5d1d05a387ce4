"""Helpers shared by the HTTP agent adapters: body decoding and error classification.

Classification is by exception type and HTTP status (plus the ``error.status`` field of Google's
error JSON), never by searching the error text: a phone number containing ``500`` cannot turn a
permanent error into a transient one.
"""

from __future__ import annotations

import codecs
import email.utils
import json
import re
import time
from typing import Any

import httpx

from shared.errors import AgentRejected, AgentUnavailable

# Checked in this order: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)

# google.rpc.Code names that describe a passing condition of the backend (lesson 20: the Reasoning
# Engine answers 400 FAILED_PRECONDITION when its own connection to the model dropped).
TRANSIENT_GOOGLE_STATUSES = frozenset(
    {"UNAVAILABLE", "FAILED_PRECONDITION", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED", "INTERNAL"}
)
# The same codes as numbers (long-running operation errors carry ``code``, not ``status``).
TRANSIENT_GOOGLE_CODES = frozenset({14, 9, 4, 10, 8, 13})

_TRANSIENT_HTTP = frozenset({408, 429})
_BODY_EXCERPT = 300
_UNICODE_ESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|\\u([0-9a-fA-F]{4})"
)


def decode_body(raw: bytes) -> str:
    """Decode a response body, honouring and removing a leading UTF-8/16/32 byte-order mark."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw[len(bom) :].decode(encoding, errors="replace")
    return raw.decode("utf-8", errors="replace")


def parse_json(text: str) -> tuple[bool, Any]:
    """Return ``(True, value)`` when ``text`` is JSON, else ``(False, None)``."""
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def _replace_escape(match: re.Match[str]) -> str:
    if match.group(3) is not None:
        return chr(int(match.group(3), 16))
    high = int(match.group(1), 16)
    low = int(match.group(2), 16)
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def unescape_unicode(value: Any) -> Any:
    """Recursively turn literal unicode escapes (``\\u00e3``) left in strings into the characters.

    Surrogate pairs are combined; lone surrogates are kept as written. Dict keys are untouched.
    """
    if isinstance(value, str):
        if "\\u" not in value:
            return value
        text = _UNICODE_ESCAPE.sub(_replace_escape, value)
        return "".join(ch if not 0xD800 <= ord(ch) <= 0xDFFF else f"\\u{ord(ch):04x}" for ch in text)
    if isinstance(value, list):
        return [unescape_unicode(item) for item in value]
    if isinstance(value, dict):
        return {key: unescape_unicode(item) for key, item in value.items()}
    return value


def retry_after_seconds(header: str | None) -> float | None:
    """Parse a ``Retry-After`` header (delta seconds or HTTP date); None when absent or invalid."""
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def google_error_status(body: Any) -> str | None:
    """The ``error.status`` of a Google API error body (``{"error": {"status": ...}}``)."""
    if isinstance(body, list) and body:  # some Google front ends wrap the error in a list
        body = body[0]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("status"), str):
            return str(error["status"]).upper()
    return None


def excerpt(text: str) -> str:
    """A short, single-line piece of a body for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _BODY_EXCERPT else flat[:_BODY_EXCERPT] + "…"


def error_for_status(provider: str, response: httpx.Response, text: str) -> Exception:
    """Map a non-2xx response to :class:`AgentUnavailable` or :class:`AgentRejected`.

    429, 408 and 5xx are transient (``retry_after`` from the ``Retry-After`` header); other 4xx are
    permanent unless the Google error JSON's ``error.status`` names a transient condition.
    """
    code = response.status_code
    _, body = parse_json(text)
    status = google_error_status(body)
    label = f"{provider}: HTTP {code}" + (f" {status}" if status else "") + f": {excerpt(text)}"
    if code in _TRANSIENT_HTTP or code >= 500:
        return AgentUnavailable(label, retry_after=retry_after_seconds(response.headers.get("retry-after")))
    if status in TRANSIENT_GOOGLE_STATUSES:
        return AgentUnavailable(label)
    return AgentRejected(label)


def error_for_transport(provider: str, exc: httpx.HTTPError) -> AgentUnavailable:
    """Network failures and timeouts are always transient."""
    if isinstance(exc, httpx.TimeoutException):
        return AgentUnavailable(
            f"{provider}: agent timed out ({type(exc).__name__})", error_code="AGENT_TIMEOUT"
        )
    return AgentUnavailable(f"{provider}: agent unreachable ({type(exc).__name__}: {exc})")


def call(
    provider: str,
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    timeout: float | None = None,
) -> str:
    """Send one request and return the decoded body of a 2xx answer.

    Raises :class:`AgentUnavailable` / :class:`AgentRejected` as classified above.
    """
    content = None
    all_headers = dict(headers or {})
    if json_body is not None:
        content = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        all_headers["Content-Type"] = "application/json; charset=utf-8"
    try:
        response = client.request(
            method,
            url,
            content=content,
            headers=all_headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
    except httpx.HTTPError as exc:
        raise error_for_transport(provider, exc) from exc
    text = decode_body(response.content)
    if not response.is_success:
        raise error_for_status(provider, response, text)
    return text
