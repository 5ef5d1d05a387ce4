"""The OpenAI-compatible provider's ``stream: true`` path against a local fake SSE server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.errors import AgentRejected, AgentUnavailable
from shared.providers.base import AgentRequest, Chunk
from shared.providers.openai_compat import OpenAICompatibleProvider
from shared.providers.resilience import ResilientProvider
from tests.conftest import start_stack
from tests.helpers import api, embedded_settings, poll_until_final
from tests.integration.test_streaming import stream_events

REQUEST = AgentRequest("5521", "Oi?", "msg-9")


def delta(**fields: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "fake-model",
        "choices": [{"index": 0, "delta": fields, "finish_reason": None}],
    }


EVENTS: list[dict[str, Any] | str] = [
    delta(role="assistant"),
    delta(reasoning_content="Pensando"),
    delta(reasoning_content=" rápido."),
    delta(content="Olá"),
    delta(content=", **mundo**!"),
    {
        "id": "chatcmpl-1",
        "model": "fake-model",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    },
    {
        "id": "chatcmpl-1",
        "model": "fake-model",
        "choices": [],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 9,
            "total_tokens": 14,
            "completion_tokens_details": {"reasoning_tokens": 4},
        },
    },
    "[DONE]",
]

Script = Callable[["SSEHandler"], None]


class SSEHandler(BaseHTTPRequestHandler):
    server: FakeSSEServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.server.script(self)

    def event(self, payload: dict[str, Any] | str) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()

    def start(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class FakeSSEServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), SSEHandler)
        self.script = script
        self.bodies: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"


def serving(script: Script) -> Iterator[FakeSSEServer]:
    server = FakeSSEServer(script)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def all_events(handler: SSEHandler) -> None:
    handler.start()
    for event in EVENTS:
        handler.event(event)


@pytest.fixture
def server() -> Iterator[FakeSSEServer]:
    yield from serving(all_events)


def provider(server: FakeSSEServer) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(server.url, "sk-test", "fake-model", "Seja breve.", timeout_s=5)


def test_deltas_become_reasoning_and_text_chunks_and_the_same_reply_as_send(server: FakeSSEServer) -> None:
    chunks: list[Chunk] = []
    reply = provider(server).stream(REQUEST, chunks.append)

    assert chunks == [
        Chunk("reasoning", "Pensando"),
        Chunk("reasoning", " rápido."),
        Chunk("text", "Olá"),
        Chunk("text", ", **mundo**!"),
    ]
    body = server.bodies[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"][-1] == {"role": "user", "content": "Oi?"}
    human, ai = reply.messages
    assert human["type"] == "human" and human["content"] == "Oi?"
    assert ai["id"] == "chatcmpl-1"
    assert ai["content"] == [
        {"type": "thinking", "thinking": "Pensando rápido."},
        {"type": "text", "text": "Olá, **mundo**!"},
    ]
    assert reply.text == "Olá, **mundo**!"
    metadata = ai["response_metadata"]
    assert metadata["model_name"] == "fake-model"
    assert metadata["finish_reason"] == "stop"
    assert metadata["usage_metadata"] == {
        "input_tokens": 5,
        "output_tokens": 5,
        "total_tokens": 14,
        "output_token_details": {"reasoning": 4},
    }


def test_chunks_are_handed_out_while_the_server_is_still_writing() -> None:
    first_seen = threading.Event()
    finished = threading.Event()

    def slow(handler: SSEHandler) -> None:
        handler.start()
        handler.event(delta(content="um"))
        first_seen.wait(5)  # the rest only after the client saw the first chunk
        handler.event(delta(content=" dois"))
        handler.event("[DONE]")
        finished.set()

    seen_before_end: list[bool] = []

    def on_chunk(chunk: Chunk) -> None:
        seen_before_end.append(not finished.is_set())
        first_seen.set()

    for server in serving(slow):
        reply = provider(server).stream(REQUEST, on_chunk)
    assert reply.text == "um dois"
    assert seen_before_end[0] is True


def test_http_errors_before_the_stream_are_classified() -> None:
    def refuse(status: int) -> Script:
        def script(handler: SSEHandler) -> None:
            handler.start(status, "application/json")
            handler.wfile.write(b'{"error": {"message": "nope"}}')

        return script

    for server in serving(refuse(429)):
        with pytest.raises(AgentUnavailable, match="HTTP 429"):
            provider(server).stream(REQUEST, lambda _: None)
    for server in serving(refuse(400)):
        with pytest.raises(AgentRejected, match="HTTP 400"):
            provider(server).stream(REQUEST, lambda _: None)


def test_an_error_mid_stream_is_retried_after_a_reset() -> None:
    calls: list[int] = []

    def flaky(handler: SSEHandler) -> None:
        calls.append(1)
        handler.start()
        handler.event(delta(content="Ol"))
        if len(calls) == 1:
            handler.event({"error": {"message": "overloaded", "type": "server_error"}})
            return
        handler.event(delta(content="á"))
        handler.event("[DONE]")

    chunks: list[Chunk] = []
    for server in serving(flaky):
        resilient = ResilientProvider(provider(server), max_attempts=2, sleep=lambda _: None)
        reply = resilient.stream(REQUEST, chunks.append)
    assert [(c.kind, c.text) for c in chunks] == [
        ("text", "Ol"),
        ("reset", ""),
        ("text", "Ol"),
        ("text", "á"),
    ]
    assert reply.text == "Olá"


def test_a_stream_without_events_is_rejected() -> None:
    def empty(handler: SSEHandler) -> None:
        handler.start()
        handler.event("[DONE]")

    for server in serving(empty):
        with pytest.raises(AgentRejected, match="without any event"):
            provider(server).stream(REQUEST, lambda _: None)


def test_reasoning_and_text_chunks_reach_the_sse_client_through_the_stack(server: FakeSSEServer) -> None:
    stack = start_stack(embedded_settings(agent_provider="openai", openai_base_url=server.url))
    try:
        accepted = api.post(
            stack.base_url + "/api/v1/message/webhook/user",
            json={"user_number": "5521988887777", "message": "Oi?"},
        )
        message_id = accepted.json()["message_id"]
        events = [e for e in stream_events(stack, message_id) if e.event == "chunk"]
        assert [(e.data["type"], e.data["text"]) for e in events] == [
            ("reasoning", "Pensando"),
            ("reasoning", " rápido."),
            ("text", "Olá"),
            ("text", ", **mundo**!"),
        ]
        polled = poll_until_final(stack.base_url, message_id)
        assert polled["content"] == "Olá, *mundo*!"  # the formatted WhatsApp text stays authoritative
    finally:
        stack.stop()


def test_a_server_that_ignores_stream_true_answers_as_one_chunk() -> None:
    def whole(handler: SSEHandler) -> None:
        handler.start(200, "application/json")
        answer = {
            "id": "c2",
            "model": "m",
            "choices": [{"message": {"content": "Tudo"}, "finish_reason": "stop"}],
        }
        handler.wfile.write(json.dumps(answer).encode())

    chunks: list[Chunk] = []
    for server in serving(whole):
        reply = provider(server).stream(REQUEST, chunks.append)
    assert chunks == [Chunk("text", "Tudo")]
    assert reply.messages[-1]["response_metadata"]["finish_reason"] == "stop"
