"""The one processing path for a user message.

transcribe (voice notes) -> agent (with fallbacks) -> Go result + WhatsApp text -> Redis -> callback

The worker function runs :meth:`Pipeline.run` once per delivery. Permanent failures end the task
``failed`` here and return normally (the delivery is done); transient ones leave the task
``processing`` and propagate, so that the transport retries the delivery. A delivery of a task that
already reached a final state does no work again: it only completes a callback still owed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared import metrics, tracing
from shared.callbacks import CallbackSender, result_payload
from shared.errors import DownloadError, PermanentError, TranscriptionError, TransientError
from shared.formatter import split_for_whatsapp, to_whatsapp
from shared.models import MessageType, QueueMessage, TaskStatus
from shared.providers.base import AgentProvider, AgentReply, AgentRequest, HistoryMessage, stream_reply
from shared.results import task_body
from shared.store import TaskStore
from shared.streaming import TaskEvents
from shared.transcription import Transcript
from shared.transform import build_result_data

log = logging.getLogger(__name__)

ProviderLookup = Callable[[str], AgentProvider]
_RETRY_LATER_ERRORS = (DownloadError, TranscriptionError)


class VoiceTranscriber(Protocol):
    """Port of the voice-note step (adapter: :class:`shared.voicenotes.VoiceNotes`)."""

    def transcribe_url(self, url: str) -> Transcript: ...


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery."""

    status: str
    error_code: str | None = None


@dataclass
class _Turn:
    reply: AgentReply
    transcript: str | None


class Pipeline:
    """Runs one queued message to its final state."""

    def __init__(
        self,
        store: TaskStore,
        providers: ProviderLookup,
        *,
        voice: VoiceTranscriber | None = None,
        callbacks: CallbackSender | None = None,
        failure_retry_after: float | None = 30,
        events: TaskEvents | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.voice = voice
        self.callbacks = callbacks
        self.failure_retry_after = failure_retry_after
        self.events = events

    def run(self, message: QueueMessage, *, attempt: int = 1) -> Outcome:
        """Process ``message``; raise :class:`TransientError` when the delivery should be retried."""
        finished = self._already_final(message)
        if finished is not None:
            return finished
        started = time.monotonic()
        self.store.mark_processing(message.id)
        try:
            turn = self._take_turn(message)
        except PermanentError as exc:
            self._fail(message, exc, started, attempt)
            return Outcome(TaskStatus.FAILED, exc.error_code)
        except TransientError as exc:
            log.warning(
                "message failed transiently",
                extra={"message_id": message.id, "error_code": exc.error_code, "attempt": attempt},
            )
            self.store.mark_processing(message.id, error=str(exc))
            metrics.observe_message(message.message_type.value, "retried", error_code=exc.error_code)
            raise
        self._complete(message, turn, started)
        return Outcome(TaskStatus.COMPLETED)

    def _already_final(self, message: QueueMessage) -> Outcome | None:
        task = self.store.read_task(message.id)
        if task is None or task.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED):
            return None
        log.info("redelivered message already final", extra={"message_id": message.id, "status": task.status})
        self._call_back(message, task.status)
        return Outcome(task.status, task.summary.get("error_code"))

    def _take_turn(self, message: QueueMessage) -> _Turn:
        text, transcript = message.message, None
        stream = self.events.turn(message.id) if self.events is not None else None
        if message.message_type is MessageType.AUDIO:
            if self.voice is None:
                raise TranscriptionError("voice notes are not enabled in this deployment")
            transcript = self.voice.transcribe_url(message.message).text
            text = transcript
            if stream is not None:
                stream.status("transcribed", transcript=transcript)
        provider = self.providers(message.provider)
        self.store.touch_thread(message.user_number, new_messages=1 + bool(message.previous_message))
        if message.previous_message:
            provider.add_history(
                message.user_number,
                [HistoryMessage(role="ai", content=message.previous_message)],
                message.reasoning_engine_id,
            )
        request = AgentRequest(
            thread_id=message.user_number,
            text=text,
            message_id=message.id,
            reasoning_engine_id=message.reasoning_engine_id,
        )
        with tracing.span("agent_call", {"agent.provider": provider.name}, kind="client"):
            return _Turn(stream_reply(provider, request, stream), transcript)

    def _complete(self, message: QueueMessage, turn: _Turn, started: float) -> None:
        with tracing.span("response_formatting"):
            data = build_result_data(
                turn.reply.messages,
                user_number=message.user_number,
                message_id=message.id,
                now=datetime.now(UTC),
            )
            content = _format_assistant_messages(data)
            if not content and turn.reply.text:
                content = to_whatsapp(turn.reply.text)
        summary: dict[str, Any] = {
            "content": content,
            "content_parts": split_for_whatsapp(content),
            "provider": turn.reply.provider,
            **self._timing(message, started),
        }
        if turn.transcript is not None:
            summary["transcript"] = turn.transcript
        if turn.reply.extra.get("fallback_from"):
            summary["fallback_from"] = turn.reply.extra["fallback_from"]
        with tracing.span("result_storage"):
            self.store.save_result(message.id, user_number=message.user_number, data=data, summary=summary)
        self._publish_final(message.id, TaskStatus.COMPLETED)
        self._observe(TaskStatus.COMPLETED, "", summary)
        log.info(
            "message completed",
            extra={
                "message_id": message.id,
                "provider": turn.reply.provider,
                "processing_time_ms": summary["processing_time_ms"],
            },
        )
        self._call_back(message, TaskStatus.COMPLETED)

    def _fail(self, message: QueueMessage, exc: PermanentError, started: float, attempt: int) -> None:
        log.warning(
            "message failed permanently",
            extra={"message_id": message.id, "error_code": exc.error_code, "attempt": attempt},
        )
        retry_after = self.failure_retry_after if isinstance(exc, _RETRY_LATER_ERRORS) else None
        timing = self._timing(message, started)
        self.store.mark_failed(
            message.id, error=str(exc), error_code=exc.error_code, retry_after=retry_after, extra=timing
        )
        self._publish_final(message.id, TaskStatus.FAILED)
        self._observe(TaskStatus.FAILED, exc.error_code, timing)
        self._call_back(message, TaskStatus.FAILED)

    def _publish_final(self, message_id: str, status: str) -> None:
        """The stream's last event: the same body the poll endpoint now answers."""
        if self.events is None:
            return
        task = self.store.read_task(message_id)
        if task is not None:
            self.events.finish(message_id, status, task_body(message_id, task))

    def _call_back(self, message: QueueMessage, status: str) -> None:
        if self.callbacks is None:
            return
        task = self.store.read_task(message.id)
        if task is None:
            return
        payload = result_payload(message.id, status, task_body(message.id, task))
        self.callbacks.deliver(message.id, message.user_number, payload)

    @staticmethod
    def _observe(status: str, error_code: str, summary: dict[str, Any]) -> None:
        seconds = summary["processing_time_ms"] / 1000
        metrics.observe_message(summary["message_type"], status, error_code=error_code, seconds=seconds)

    @staticmethod
    def _timing(message: QueueMessage, started: float) -> dict[str, Any]:
        accepted = message.accepted_at()
        if accepted is not None:
            elapsed_ms = (datetime.now(UTC) - accepted).total_seconds() * 1000
        else:
            elapsed_ms = (time.monotonic() - started) * 1000
        return {
            "processing_time_ms": max(int(elapsed_ms), 0),
            "message_type": message.message_type.value,
            "thread_id": message.user_number,
        }


def _format_assistant_messages(data: dict[str, Any]) -> str:
    """Format every assistant text exactly once; return the last one (the turn's answer)."""
    last = ""
    for entry in data.get("messages") or []:
        if entry.get("message_type") == "assistant_message" and isinstance(entry.get("content"), str):
            entry["content"] = to_whatsapp(entry["content"])
            last = entry["content"]
    return last
