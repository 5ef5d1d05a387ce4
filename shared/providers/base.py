"""The port every agent provider implements.

A provider receives the user's text and answers with the messages of this turn in the shape the
Vertex AI Agent Engine returns them (LangChain message dicts: ``type`` ``human``/``ai``/``tool``,
``id``, ``content``, ``tool_calls``, ``response_metadata``...). One transformation
(:mod:`shared.transform`) turns that into the Go gateway's result format, whatever the provider.

Providers raise :class:`~shared.errors.AgentUnavailable` for failures worth retrying and
:class:`~shared.errors.AgentRejected` for final ones.

Streaming is an optional capability (:class:`StreamingProvider`): ``stream(request, on_chunk)``
returns the same :class:`AgentReply` as ``send`` and calls ``on_chunk`` with each piece of raw text
(or reasoning) as it arrives. Callers use :func:`stream_reply`, which falls back to ``send`` plus one
chunk for providers that cannot stream. A ``reset`` chunk tells the consumer to discard the chunks
received so far: wrappers that retry or fall back after partial output emit it before trying
again, so a client never sees text twice (see docs/streaming.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

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


ChunkKind = Literal["text", "reasoning", "reset"]


@dataclass(frozen=True)
class Chunk:
    """A piece of a reply as it is produced: raw ``text``, ``reasoning``, or ``reset`` (discard so far)."""

    kind: ChunkKind
    text: str = ""


ChunkSink = Callable[[Chunk], None]
RESET = Chunk("reset")


@runtime_checkable
class StreamingProvider(Protocol):
    """A provider that can hand out its reply piece by piece."""

    def stream(self, request: AgentRequest, on_chunk: ChunkSink) -> AgentReply:
        """Like ``send``, calling ``on_chunk`` for each piece as it arrives."""
        ...


def reasoning_text(content: Any) -> str:
    """The ``thinking``/``reasoning`` parts of a message ``content`` ("" when there are none)."""
    if not isinstance(content, list):
        return ""
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("thinking", "reasoning"):
            parts.append(str(part.get("thinking") or part.get("reasoning") or part.get("text") or ""))
    return "".join(parts)


def emit_whole(reply: AgentReply, on_chunk: ChunkSink) -> None:
    """Send a finished reply as (at most) one reasoning chunk and one text chunk."""
    for message in reversed(reply.messages):
        if message.get("type") == "ai" and not message.get("tool_calls"):
            reasoning = reasoning_text(message.get("content"))
            if reasoning:
                on_chunk(Chunk("reasoning", reasoning))
            break
    if reply.text:
        on_chunk(Chunk("text", reply.text))


def stream_reply(provider: AgentProvider, request: AgentRequest, on_chunk: ChunkSink | None) -> AgentReply:
    """Run one turn, streaming through ``on_chunk`` when given (one chunk if the provider can't)."""
    if on_chunk is None:
        return provider.send(request)
    if isinstance(provider, StreamingProvider):
        return provider.stream(request, on_chunk)
    reply = provider.send(request)
    emit_whole(reply, on_chunk)
    return reply


class RewindableSink:
    """Forwards chunks and remembers whether any text was forwarded since the last reset.

    :meth:`rewind` (called before a retry or a fallback) emits ``reset`` only when needed.
    """

    def __init__(self, sink: ChunkSink) -> None:
        self._sink = sink
        self.dirty = False

    def __call__(self, chunk: Chunk) -> None:
        self.dirty = chunk.kind != "reset"
        self._sink(chunk)

    def rewind(self) -> None:
        if self.dirty:
            self._sink(RESET)
            self.dirty = False
