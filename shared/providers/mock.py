"""A deterministic in-process agent for local runs and end-to-end tests.

Texts starting with ``FAIL_TRANSIENT`` raise :class:`AgentUnavailable` and texts starting with
``FAIL_PERMANENT`` raise :class:`AgentRejected`, so the worker's failure paths can be exercised
through the whole stack without a real agent.

It streams too: the reply is cut into words (each keeping its leading space, so the chunks join to
the reply) handed out ``chunk_delay_ms`` apart, like a model writing.
"""

from __future__ import annotations

import re
import time
from typing import Any

from shared.errors import AgentRejected, AgentUnavailable
from shared.providers.base import (
    AgentMessage,
    AgentReply,
    AgentRequest,
    Chunk,
    ChunkSink,
    HistoryMessage,
    content_text,
)

FAIL_TRANSIENT = "FAIL_TRANSIENT"
FAIL_PERMANENT = "FAIL_PERMANENT"
_WORDS = re.compile(r"\s*\S+\s*$|\s*\S+")


def word_chunks(text: str) -> list[str]:
    """``"a b  c "`` -> ``["a", " b", "  c "]``: words with their leading spaces, joining to ``text``."""
    pieces = _WORDS.findall(text)
    return pieces if pieces else ([text] if text else [])


class MockProvider:
    """Echoes the user's text through ``reply_template`` after ``latency_ms``."""

    name = "mock"

    def __init__(
        self, latency_ms: float = 0, reply_template: str = "Você disse: {text}", chunk_delay_ms: float = 0
    ) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        if chunk_delay_ms < 0:
            raise ValueError(f"chunk_delay_ms must be >= 0, got {chunk_delay_ms}")
        self.latency_ms = latency_ms
        self.reply_template = reply_template
        self.chunk_delay_ms = chunk_delay_ms

    def _sleep(self) -> None:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)

    def send(self, request: AgentRequest) -> AgentReply:
        self._sleep()
        if request.text.startswith(FAIL_TRANSIENT):
            raise AgentUnavailable("mock: simulated transient failure")
        if request.text.startswith(FAIL_PERMANENT):
            raise AgentRejected("mock: simulated permanent failure")
        reply = self.reply_template.format(text=request.text)
        input_tokens = len(request.text.split())
        output_tokens = len(reply.split())
        messages: list[AgentMessage] = [
            {"type": "human", "id": f"mock-human-{request.message_id}", "content": request.text},
            {
                "type": "ai",
                "id": f"mock-ai-{request.message_id}",
                "content": reply,
                "response_metadata": {
                    "model_name": "mock",
                    "finish_reason": "STOP",
                    "usage_metadata": {
                        "input_tokens": input_tokens,
                        "output_tokens": output_tokens,
                        "total_tokens": input_tokens + output_tokens,
                    },
                },
            },
        ]
        return AgentReply(messages=messages, provider=self.name)

    def stream(self, request: AgentRequest, on_chunk: ChunkSink) -> AgentReply:
        reply = self.send(request)
        for index, piece in enumerate(word_chunks(content_text(reply.messages[-1]["content"]))):
            if index and self.chunk_delay_ms:
                time.sleep(self.chunk_delay_ms / 1000)
            on_chunk(Chunk("text", piece))
        return reply

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        self._sleep()
        return {"status": "history updated"}
