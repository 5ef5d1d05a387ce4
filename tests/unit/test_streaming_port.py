"""The streaming port: one-chunk fallback, the mock's word chunks, resets on retry and fallback,
and the worker's task stream (dangling chunks of an earlier delivery are reset)."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from shared.errors import AgentUnavailable
from shared.providers.base import (
    AgentReply,
    AgentRequest,
    Chunk,
    ChunkSink,
    HistoryMessage,
    StreamingProvider,
    stream_reply,
)
from shared.providers.mock import MockProvider, word_chunks
from shared.providers.resilience import FallbackChain, ResilientProvider
from shared.store import TaskStore
from shared.streaming import TaskEvents, TurnWriter
from tests.helpers import wait_for

REQUEST = AgentRequest("5521", "um dois", "m1")


class Chunks(list[Chunk]):
    def __call__(self, chunk: Chunk) -> None:
        self.append(chunk)

    def shown(self) -> str:
        """What a client displays: text since the last reset."""
        text = ""
        for chunk in self:
            text = "" if chunk.kind == "reset" else text + (chunk.text if chunk.kind == "text" else "")
        return text


class Plain:
    """A provider without ``stream``: answers with reasoning and text parts."""

    name = "plain"

    def send(self, request: AgentRequest) -> AgentReply:
        content = [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "olá"}]
        return AgentReply([{"type": "ai", "id": "x", "content": content}], self.name)

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        return {}


class Stutter:
    """Streams two chunks, then fails transiently ``failures`` times before answering in full."""

    def __init__(self, name: str, failures: int) -> None:
        self.name = name
        self.failures = failures
        self.calls = 0

    def send(self, request: AgentRequest) -> AgentReply:
        raise AssertionError("stream expected")

    def stream(self, request: AgentRequest, on_chunk: ChunkSink) -> AgentReply:
        self.calls += 1
        on_chunk(Chunk("text", "a"))
        on_chunk(Chunk("text", "b"))
        if self.calls <= self.failures:
            raise AgentUnavailable("dropped mid-stream")
        on_chunk(Chunk("text", "c"))
        return AgentReply([{"type": "ai", "content": "abc"}], self.name)

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        return {}


def test_a_provider_that_cannot_stream_gives_its_reply_as_one_chunk_per_kind() -> None:
    chunks = Chunks()
    reply = stream_reply(Plain(), REQUEST, chunks)
    assert chunks == [Chunk("reasoning", "hmm"), Chunk("text", "olá")]
    assert reply.text == "olá"
    assert not isinstance(Plain(), StreamingProvider)


def test_without_a_sink_send_is_used() -> None:
    with pytest.raises(AssertionError, match="stream expected"):
        stream_reply(Stutter("s", 0), REQUEST, None)


def test_mock_streams_words_that_join_to_its_reply() -> None:
    chunks = Chunks()
    reply = stream_reply(MockProvider(chunk_delay_ms=1), REQUEST, chunks)
    assert [c.text for c in chunks] == ["Você", " disse:", " um", " dois"]
    assert "".join(c.text for c in chunks) == reply.text
    assert word_chunks("a  b ") == ["a", "  b "]


def test_retry_after_partial_output_resets_before_streaming_again() -> None:
    inner = Stutter("s", failures=1)
    chunks = Chunks()
    reply = ResilientProvider(inner, max_attempts=3, sleep=lambda _: None).stream(REQUEST, chunks)
    assert [c.kind for c in chunks] == ["text", "text", "reset", "text", "text", "text"]
    assert chunks.shown() == "abc" == reply.text
    assert inner.calls == 2


def test_fallback_after_partial_output_resets_once_between_providers() -> None:
    first = ResilientProvider(Stutter("one", failures=9), max_attempts=2, sleep=lambda _: None)
    second = ResilientProvider(Stutter("two", failures=0), sleep=lambda _: None)
    chunks = Chunks()
    reply = FallbackChain([first, second]).stream(REQUEST, chunks)
    kinds = [c.kind for c in chunks]
    # one: a b (reset) a b -> fails; reset; two: a b c
    assert kinds == ["text", "text", "reset", "text", "text", "reset", "text", "text", "text"]
    assert chunks.shown() == "abc"
    assert reply.provider == "two" and reply.extra["fallback_from"] == ["one"]


def test_no_reset_when_nothing_was_streamed_before_the_retry() -> None:
    class Early(Stutter):
        def stream(self, request: AgentRequest, on_chunk: ChunkSink) -> AgentReply:
            self.calls += 1
            if self.calls == 1:
                raise AgentUnavailable("refused before answering")
            on_chunk(Chunk("text", "ok"))
            return AgentReply([{"type": "ai", "content": "ok"}], self.name)

    chunks = Chunks()
    ResilientProvider(Early("e", 0), sleep=lambda _: None).stream(REQUEST, chunks)
    assert chunks == [Chunk("text", "ok")]


def events_on_fakeredis() -> TaskEvents:
    store = TaskStore(fakeredis.FakeRedis(decode_responses=True), prefix="u:")
    return TaskEvents(store, maxlen=100)


def test_a_redelivered_turn_resets_chunks_left_by_the_failed_delivery() -> None:
    events = events_on_fakeredis()
    events.status("m1", "queued")
    writer = events.turn("m1")
    writer(Chunk("text", "par"))  # the delivery then fails transiently
    events.turn("m1")  # redelivery
    events.turn("m1")  # another one, with no chunks in between: no second reset
    assert [(e.event, e.data.get("status") or e.data.get("text")) for e in events.all("m1")] == [
        ("status", "queued"),
        ("status", "processing"),
        ("chunk", "par"),
        ("reset", None),
        ("status", "processing"),
        ("status", "processing"),
    ]


def test_chunks_before_a_final_event_are_not_reset() -> None:
    events = events_on_fakeredis()
    writer = events.turn("m6")
    writer(Chunk("text", "resposta"))
    writer.flush()
    events.finish("m6", "completed", {"status": "completed"})
    events.turn("m6")  # a duplicate delivery of a finished message
    assert [e.event for e in events.all("m6")] == ["status", "chunk", "completed", "status"]


def test_stream_is_bounded_and_expires_with_the_task_status() -> None:
    events = events_on_fakeredis()
    writer = TurnWriter(events, "m2")
    for index in range(1000):
        writer(Chunk("text", str(index)))
    writer.flush()
    client = events.store.client
    assert client.xlen(events.key("m2")) < 200  # MAXLEN ~ 100 trims by whole nodes
    assert 0 < client.ttl(events.key("m2")) <= events.store.ttl.status
    last = events.all("m2")[-1]
    assert last.data == {"type": "text", "text": "999"}


def test_chunks_are_coalesced_but_each_stays_an_event_in_order() -> None:
    events = events_on_fakeredis()
    writer = TurnWriter(events, "m4", coalesce_s=0.2)
    writer(Chunk("text", "Olá"))
    assert [e.data["text"] for e in events.all("m4")] == ["Olá"]  # the first chunk goes at once
    writer(Chunk("text", " mundo"))
    writer(Chunk("text", "!"))
    assert len(events.all("m4")) == 1  # the next ones wait for the window...
    writer.status("transcribed")  # ...and a status writes them first, keeping the order
    assert [(e.event, e.data.get("text")) for e in events.all("m4")] == [
        ("chunk", "Olá"),
        ("chunk", " mundo"),
        ("chunk", "!"),
        ("status", None),
    ]


def test_waiting_chunks_are_written_when_the_provider_pauses() -> None:
    events = events_on_fakeredis()
    writer = TurnWriter(events, "m5", coalesce_s=0.05)
    writer(Chunk("text", "a"))
    writer(Chunk("text", "b"))
    assert len(events.all("m5")) == 1
    wait_for(lambda: len(events.all("m5")) == 2 or None, timeout=2)
    assert [e.data["text"] for e in events.all("m5")] == ["a", "b"]


def test_disabled_events_write_nothing() -> None:
    events = events_on_fakeredis()
    events.enabled = False
    events.turn("m3")(Chunk("text", "x"))
    assert events.all("m3") == []
