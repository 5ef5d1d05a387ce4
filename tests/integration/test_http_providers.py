"""EAIProvider and OpenAICompatibleProvider against local HTTP servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.errors import AgentRejected, AgentUnavailable, ConfigError
from shared.providers.base import AgentRequest, HistoryMessage
from shared.providers.eai import EAIProvider
from shared.providers.openai_compat import OpenAICompatibleProvider
from tests.fake_http import FakeServer, Reply

REQUEST = AgentRequest("5521999990000", "Qual o horário do CRAS?", "msg-7")


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


# -- EAI -----------------------------------------------------------------------------------------


def eai(server: FakeServer, **kwargs) -> EAIProvider:
    return EAIProvider(server.url + "/", "secret-token", timeout_s=5, **kwargs)


def test_eai_request_and_messages_answer(server):
    server.route(
        "POST",
        "/api/v1/agent/run",
        Reply(
            200,
            {
                "messages": [
                    {"type": "human", "id": "h", "content": "Qual o horário do CRAS?"},
                    {"type": "ai", "id": "a", "content": "Abre \\u00e0s 8h"},
                ]
            },
        ),
    )
    reply = eai(server).send(REQUEST)
    [call] = server.requests
    assert call.json() == {
        "thread_id": "5521999990000",
        "message": "Qual o horário do CRAS?",
        "message_id": "msg-7",
    }
    assert call.headers["authorization"] == "Bearer secret-token"
    assert reply.provider == "eai"
    assert reply.text == "Abre às 8h"


def test_eai_text_answers_and_custom_path(server):
    server.route(
        "POST",
        "/run",
        Reply(200, {"output": "resposta"}),
        Reply(200, {"content": "c"}),
        Reply(200, "texto puro"),
    )
    provider = eai(server, run_path="/run")
    request = AgentRequest("t", "x", "m", reasoning_engine_id="eng-2")
    assert provider.send(request).messages == [{"type": "ai", "id": "eai-m", "content": "resposta"}]
    assert server.requests[0].json()["reasoning_engine_id"] == "eng-2"
    assert provider.send(request).text == "c"
    assert provider.send(request).text == "texto puro"


def test_eai_history(server):
    server.route("POST", "/api/v1/agent/history", Reply(200, {"status": "history updated"}))
    result = eai(server).add_history("t1", [HistoryMessage("ai", "antes")], None)
    assert result == {"status": "history updated"}
    assert server.requests[0].json() == {"thread_id": "t1", "messages": [{"role": "ai", "content": "antes"}]}


def test_eai_errors_are_classified_by_status(server):
    provider = eai(server)
    server.route("POST", "/api/v1/agent/run", Reply(502, "bad gateway"))
    with pytest.raises(AgentUnavailable):
        provider.send(REQUEST)
    server.route("POST", "/api/v1/agent/run", Reply(429, "slow down", {"Retry-After": "3"}))
    with pytest.raises(AgentUnavailable) as info:
        provider.send(REQUEST)
    assert info.value.retry_after == 3
    server.route("POST", "/api/v1/agent/run", Reply(401, "thread:5521950031234 error 500"))
    with pytest.raises(AgentRejected):
        provider.send(REQUEST)
    server.route("POST", "/api/v1/agent/run", Reply(200, {"unexpected": True}))
    with pytest.raises(AgentRejected, match="unexpected answer"):
        provider.send(REQUEST)


def test_eai_unreachable_is_transient():
    with pytest.raises(AgentUnavailable):
        EAIProvider("http://127.0.0.1:9", "t", timeout_s=2).send(REQUEST)
    with pytest.raises(ConfigError):
        EAIProvider("", "t", timeout_s=2)


# -- OpenAI-compatible ---------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-1",
    "model": "gpt-4o-mini-2024",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "O CRAS abre às 8h."},
        }
    ],
    "usage": {
        "prompt_tokens": 20,
        "completion_tokens": 12,
        "total_tokens": 32,
        "completion_tokens_details": {"reasoning_tokens": 4},
        "prompt_tokens_details": {"cached_tokens": 5},
    },
}


def openai(server: FakeServer, system: str | None = "Você é a EAí.") -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(server.url + "/v1", "sk-test", "gpt-4o-mini", system, timeout_s=5)


def test_openai_request_and_reply(server):
    server.route("POST", "/v1/chat/completions", Reply(200, COMPLETION))
    reply = openai(server).send(REQUEST)
    [call] = server.requests
    assert call.headers["authorization"] == "Bearer sk-test"
    assert call.json() == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Você é a EAí."},
            {"role": "user", "content": "Qual o horário do CRAS?"},
        ],
    }
    human, ai = reply.messages
    assert human == {"type": "human", "id": "openai-human-msg-7", "content": "Qual o horário do CRAS?"}
    assert ai["id"] == "chatcmpl-1"
    assert ai["content"] == "O CRAS abre às 8h."
    assert ai["response_metadata"] == {
        "model_name": "gpt-4o-mini-2024",
        "finish_reason": "stop",
        "usage_metadata": {
            "input_tokens": 20,
            "output_tokens": 8,
            "total_tokens": 32,
            "output_token_details": {"reasoning": 4},
            "input_token_details": {"cache_read": 5},
        },
    }
    assert reply.provider == "openai"


def test_openai_without_system_prompt_and_reasoning_content(server):
    completion = {
        "choices": [
            {"finish_reason": "stop", "message": {"content": "Resposta", "reasoning_content": "Pensando"}}
        ]
    }
    server.route("POST", "/v1/chat/completions", Reply(200, completion))
    reply = openai(server, system=None).send(REQUEST)
    assert server.requests[0].json()["messages"] == [{"role": "user", "content": "Qual o horário do CRAS?"}]
    ai = reply.messages[1]
    assert ai["content"] == [
        {"type": "thinking", "thinking": "Pensando"},
        {"type": "text", "text": "Resposta"},
    ]
    assert ai["response_metadata"]["model_name"] == "gpt-4o-mini"
    assert ai["response_metadata"]["usage_metadata"] is None
    assert reply.text == "Resposta"


def test_openai_errors(server):
    provider = openai(server)
    server.route("POST", "/v1/chat/completions", Reply(500, {"error": {"message": "boom"}}))
    with pytest.raises(AgentUnavailable):
        provider.send(REQUEST)
    server.route(
        "POST", "/v1/chat/completions", Reply(400, {"error": {"message": "context length 5000 exceeded"}})
    )
    with pytest.raises(AgentRejected):
        provider.send(REQUEST)
    server.route("POST", "/v1/chat/completions", Reply(200, {"choices": []}))
    with pytest.raises(AgentRejected, match="choices"):
        provider.send(REQUEST)
    with pytest.raises(AgentRejected) as info:
        provider.add_history("t", [HistoryMessage("ai", "x")], None)
    assert info.value.error_code == "UNSUPPORTED_OPERATION"
