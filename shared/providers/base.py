"""The port every agent provider implements.

A provider receives the user's text and answers with the messages of this turn in the shape the
Vertex AI Agent Engine returns them (LangChain message dicts: ``type`` ``human``/``ai``/``tool``,
``id``, ``content``, ``tool_calls``, ``response_metadata``...). One transformation
(:mod:`shared.transform`) turns that into the Go gateway's result format, whatever the provider.

Providers raise :class:`~shared.errors.AgentUnavailable` for failures worth retrying and
:class:`~shared.errors.AgentRejected` for final ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

AgentMessage = dict[str, Any]


@dataclass(frozen=True)
class AgentRequest:
    """One user turn sent to an agent."""

    thread_id: str
    text: str
    message_id: str
    reasoning_engine_id: str | None = None


@dataclass(frozen=True)
class HistoryMessage:
    """A message injected into a thread without running the agent."""

    role: str
    content: str


@dataclass(frozen=True)
class AgentReply:
    """The agent's answer to one turn."""

    messages: list[AgentMessage]
    provider: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The final assistant text of the turn ("" when the agent produced none)."""
        for message in reversed(self.messages):
            if message.get("type") == "ai" and not message.get("tool_calls"):
                return content_text(message.get("content"))
        return ""


def content_text(content: Any) -> str:
    """Concatenate the text parts of a LangChain message ``content`` (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
        return "".join(parts)
    return ""


class AgentProvider(Protocol):
    """An AI agent the worker can ask for a reply."""

    name: str

    def send(self, request: AgentRequest) -> AgentReply:
        """Run one turn of the thread and return the agent's messages for it."""
        ...

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        """Append messages to the thread without running the agent; return the backend's answer."""
        ...
