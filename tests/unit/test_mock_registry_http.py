"""MockProvider, the registry and the shared HTTP helpers."""

from __future__ import annotations

import codecs
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from shared.errors import AgentRejected, AgentUnavailable, UnsupportedProvider
from shared.providers import _http
from shared.providers.base import AgentRequest, HistoryMessage
from shared.providers.mock import MockProvider
from shared.providers.registry import KNOWN_PROVIDERS, build_provider


def test_mock_reply_is_deterministic():
    reply = MockProvider().send(AgentRequest("5521", "olá tudo bem", "m1"))
    assert reply.provider == "mock"
    assert reply.messages == [
        {"type": "human", "id": "mock-human-m1", "content": "olá tudo bem"},
        {
            "type": "ai",
            "id": "mock-ai-m1",
            "content": "Você disse: olá tudo bem",
            "response_metadata": {
                "model_name": "mock",
                "finish_reason": "STOP",
                "usage_metadata": {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8},
            },
        },
    ]
    assert MockProvider(reply_template="<{text}>").send(AgentRequest("t", "x", "m")).text == "<x>"
    assert MockProvider().add_history("t", [HistoryMessage("ai", "x")], None) == {"status": "history updated"}


def test_mock_failures_and_latency():
    with pytest.raises(AgentUnavailable):
        MockProvider().send(AgentRequest("t", "FAIL_TRANSIENT please", "m"))
    with pytest.raises(AgentRejected):
        MockProvider().send(AgentRequest("t", "FAIL_PERMANENT", "m"))
    started = time.monotonic()
    MockProvider(latency_ms=50).send(AgentRequest("t", "x", "m"))
    assert time.monotonic() - started >= 0.05
    with pytest.raises(ValueError):
        MockProvider(latency_ms=-1)


def test_registry():
    assert KNOWN_PROVIDERS == ("google_agent_engine", "eai", "openai", "mock")
    mock = MockProvider()
    assert build_provider("mock", {"mock": lambda: mock}) is mock
    with pytest.raises(UnsupportedProvider, match="offers: eai, mock") as info:
        build_provider("letta", {"mock": MockProvider, "eai": MockProvider})
    assert info.value.error_code == "UNSUPPORTED_PROVIDER"


def test_decode_body_strips_every_bom():
    for bom, enc in [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
    ]:
        assert _http.decode_body(bom + '{"a": "ã"}'.encode(enc)) == '{"a": "ã"}'
    assert _http.decode_body(b"plain") == "plain"


def test_unescape_unicode_recursively():
    value = {"k\\u00e3": ["n\\u00e3o", {"x": "\\ud83d\\ude00 ok"}], "n": 1, "raw": "a\\nb"}
    assert _http.unescape_unicode(value) == {"k\\u00e3": ["não", {"x": "😀 ok"}], "n": 1, "raw": "a\\nb"}
    assert _http.unescape_unicode("lone \\ud83d here") == "lone \\ud83d here"


def test_retry_after_parsing():
    assert _http.retry_after_seconds("12") == 12
    assert _http.retry_after_seconds(None) is None
    assert _http.retry_after_seconds("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (_http.retry_after_seconds(later) or 0) <= 30


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, "", AgentUnavailable),
        (503, "x", AgentUnavailable),
        (429, "", AgentUnavailable),
        (408, "", AgentUnavailable),
        (400, '{"error": {"status": "INVALID_ARGUMENT"}}', AgentRejected),
        (400, '[{"error": {"status": "FAILED_PRECONDITION"}}]', AgentUnavailable),
        (400, "FAILED_PRECONDITION UNAVAILABLE 503", AgentRejected),  # text is never searched
        (404, "thread:5521950031234 500", AgentRejected),
        (401, "", AgentRejected),
    ],
)
def test_status_classification(status, body, expected):
    response = httpx.Response(status, text=body)
    assert isinstance(_http.error_for_status("p", response, body), expected)


def test_provider_modules_do_not_import_google_at_import_time():
    import subprocess
    import sys

    code = (
        "import sys, shared.providers.agent_engine, shared.providers.resilience, "
        "shared.transform; "
        "print(any(m.startswith(('google.auth', 'google.oauth2')) for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
