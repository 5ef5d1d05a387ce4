"""A deterministic in-process agent for local runs and end-to-end tests.

Texts starting with ``FAIL_TRANSIENT`` raise :class:`AgentUnavailable` and texts starting with
``FAIL_PERMANENT`` raise :class:`AgentRejected`, so the worker's failure paths can be exercised
through the whole stack without a real agent.

It streams too: the reply is cut into words (each keeping its leading space, so the chunks join to
the reply) handed out ``chunk_delay_ms`` apart, like a model writing.

``failure_rate`` adds random transient failures and
``call_log`` appends a line when a call starts (``start\t<unix time>\t<message id>``) and one when it
ends (``end\t<unix time>\t<message id>\t<ok|transient|permanent>``), so that fault-injection tests can
count agent calls per message, across processes and crashes.
"""

from __future__ import annotations

import os
import random
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
        self,
        latency_ms: float = 0,
        reply_template: str = "Você disse: {text}",
        chunk_delay_ms: float = 0,
        *,
        failure_rate: float = 0.0,
        call_log: str | None = None,
    ) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        if chunk_delay_ms < 0:
            raise ValueError(f"chunk_delay_ms must be >= 0, got {chunk_delay_ms}")
        if not 0 <= failure_rate <= 1:
            raise ValueError(f"failure_rate must be between 0 and 1, got {failure_rate}")
        self.latency_ms = latency_ms
        self.reply_template = reply_template
        self.chunk_delay_ms = chunk_delay_ms
        self.failure_rate = failure_rate
        self.call_log = call_log

    def _record(self, *fields: str) -> None:
        if self.call_log:
            # One write of one short line with O_APPEND: atomic between processes.
            line = "\t".join((fields[0], f"{time.time():.6f}", *fields[1:])).encode() + b"\n"
            fd = os.open(self.call_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def _sleep(self) -> None:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)

    def send(self, request: AgentRequest) -> AgentReply:
        self._record("start", request.message_id)
        self._sleep()
        if request.text.startswith(FAIL_TRANSIENT) or random.random() < self.failure_rate:
            self._record("end", request.message_id, "transient")
            raise AgentUnavailable("mock: simulated transient failure")
        if request.text.startswith(FAIL_PERMANENT):
            self._record("end", request.message_id, "permanent")
            raise AgentRejected("mock: simulated permanent failure")
        self._record("end", request.message_id, "ok")
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
