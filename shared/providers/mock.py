"""A deterministic agent for local runs and tests."""

from __future__ import annotations

import time
from typing import Any

from shared.errors import AgentRejected, AgentUnavailable
from shared.providers.base import AgentReply, AgentRequest, HistoryMessage


class MockProvider:
    """Answers ``reply_template`` filled with the user's text after ``latency_ms``.

    A text starting with ``FAIL_TRANSIENT`` raises :class:`AgentUnavailable` and one starting with
    ``FAIL_PERMANENT`` raises :class:`AgentRejected`, so failure paths can be exercised end to end.
    """

    name = "mock"

    def __init__(self, latency_ms: float = 0, reply_template: str = "Você disse: {text}") -> None:
        self.latency_ms = latency_ms
        self.reply_template = reply_template

    def send(self, request: AgentRequest) -> AgentReply:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        if request.text.startswith("FAIL_TRANSIENT"):
            raise AgentUnavailable("mock agent asked to fail transiently")
        if request.text.startswith("FAIL_PERMANENT"):
            raise AgentRejected("mock agent asked to fail permanently")
        reply = self.reply_template.format(text=request.text)
        words_in, words_out = len(request.text.split()), len(reply.split())
        messages: list[dict[str, Any]] = [
            {"type": "human", "id": f"mock-human-{request.message_id}", "content": request.text},
            {
                "type": "ai",
                "id": f"mock-ai-{request.message_id}",
                "content": reply,
                "response_metadata": {
                    "model_name": "mock",
                    "finish_reason": "STOP",
                    "usage_metadata": {
                        "input_tokens": words_in,
                        "output_tokens": words_out,
                        "total_tokens": words_in + words_out,
                    },
                },
            },
        ]
        return AgentReply(messages=messages, provider=self.name)

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        return {"output": {"message": None, "status": "history updated", "status_code": 200}}
