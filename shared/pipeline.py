"""The one processing path for a user message.

transcribe (voice notes) -> agent (with fallbacks) -> Go result + WhatsApp text -> Redis -> callback

The worker function runs :meth:`Pipeline.run` once per delivery. Permanent failures end the task
``failed`` here and return normally (the delivery is done); transient ones leave the task
``processing`` and propagate, so that the transport retries the delivery. A delivery of a task that
already reached a final state does no work again: it only completes a callback still owed.

With a :class:`~shared.delivery.DeliveryGuard` the work runs under the user's lease and in the
order the webhook accepted the user's messages; "not now" is a :class:`BusyError` (HTTP 429). With
burst debounce on, the user's messages accepted within the window are answered by one agent turn.
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
from shared.delivery import ORDER_SEQ, Admission, DeliveryGuard, Pending, Position, holding
from shared.errors import BusyError, DownloadError, PermanentError, TranscriptionError, TransientError
from shared.formatter import split_for_whatsapp, to_whatsapp
from shared.metrics import ORDER_SKIPS
from shared.models import MessageType, QueueMessage, TaskStatus
from shared.providers.base import AgentProvider, AgentReply, AgentRequest, HistoryMessage, stream_reply
from shared.results import task_body
from shared.store import TaskStore, TaskView
from shared.streaming import TaskEvents
from shared.transcription import Transcript
from shared.transform import build_result_data

log = logging.getLogger(__name__)

ProviderLookup = Callable[[str], AgentProvider]
_RETRY_LATER_ERRORS = (DownloadError, TranscriptionError)
ORDER_SKIPPED = "ORDER_SKIPPED"


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
        guard: DeliveryGuard | None = None,
        debounce_s: float = 0.0,
    ) -> None:
        self.store = store
        self.providers = providers
        self.voice = voice
        self.callbacks = callbacks
        self.failure_retry_after = failure_retry_after
        self.events = events
        self.guard = guard
        self.debounce_s = debounce_s

    def run(self, message: QueueMessage, *, attempt: int = 1) -> Outcome:
        """Process ``message``; raise :class:`TransientError` when the delivery should be retried.

        :class:`BusyError` (a transient error) means "not now": the user's lease is held or an
        earlier message of the user has not finished yet.
        """
        finished = self._already_final(message)
        if finished is not None:
            self._settle(message)
            return finished
        if self.guard is None:
            return self._process(message, attempt, None)
        admission = self._admit(message)
        if admission is None:
            return self._passed(message)
        with holding(admission):
            # Re-check under the lease, in the same step that marks the task processing: a concurrent
            # attempt may have finished just before we took it.
            if self.store.begin(message.id) is not None:
                finished = self._already_final(message, call_back=False)
                if finished is not None:
                    self._settle(message)
                    return finished
            return self._process(message, attempt, admission, begun=True)

    def _process(
        self, message: QueueMessage, attempt: int, admission: Admission | None, *, begun: bool = False
    ) -> Outcome:
        started = time.monotonic()
        if not begun:
            self.store.mark_processing(message.id)
        members = self._burst(message, admission)
        try:
            turn = self._take_turn(message, members)
        except PermanentError as exc:
            if admission is not None:
                admission.ensure_held()
            for member in [message, *members]:
                self._fail(member, exc, started, attempt)
            self._settle(message, members)
            return Outcome(TaskStatus.FAILED, exc.error_code)
        except TransientError as exc:
            log.warning(
                "message failed transiently",
                extra={"message_id": message.id, "error_code": exc.error_code, "attempt": attempt},
            )
            self.store.mark_processing(message.id, error=str(exc))
            metrics.observe_message(message.message_type.value, "retried", error_code=exc.error_code)
            raise
        if admission is not None:
            admission.ensure_held()  # never store an answer once another attempt may own the message
        self._complete(message, turn, started, members)
        self._settle(message, members)
        return Outcome(TaskStatus.COMPLETED)

    # --- delivery guarantees (shared.delivery) ---------------------------------------------------
    def _admit(self, message: QueueMessage) -> Admission | None:
        """The user's lease, in turn; ``None`` when the order pointer already passed this message."""
        assert self.guard is not None
        for _ in range(3):
            verdict, admission, head = self.guard.admit(message)
            if admission is not None:
                return admission
            if verdict == "passed":
                return None
            if verdict == "skipped" and head is not None:
                self._end_skipped(message.user_number, head)
                continue
            if head is not None and head.message_id and self._is_final(head.message_id):
                # Its worker died between finishing and settling: settle for it and ask again.
                position = Position.of(message)
                assert position is not None
                self.guard.settle(message.user_number, Position(position.epoch, head.seq))
                continue
            raise BusyError("an earlier message of this user has not finished yet", retry_after=1)
        raise BusyError("the order of this user's messages is changing; retry", retry_after=1)

    def _is_final(self, message_id: str) -> bool:
        return self.store.task_status(message_id) in (TaskStatus.COMPLETED, TaskStatus.FAILED)

    def _end_skipped(self, user_number: str, head: Pending) -> None:
        ORDER_SKIPS.inc()
        log.warning(
            "skipping a message that did not arrive in time; later messages of the user were waiting",
            extra={"message_id": head.message_id, "sequence": head.seq, "thread_id": user_number},
        )
        if head.message_id and not self._is_final(head.message_id):
            self.store.mark_failed(
                head.message_id,
                error="the message did not reach the worker in time; later messages were answered first",
                error_code=ORDER_SKIPPED,
            )

    def _passed(self, message: QueueMessage) -> Outcome:
        """The pointer moved past this message without it: answering now would break the order."""
        finished = self._already_final(message)
        if finished is not None:
            return finished
        self.store.mark_failed(
            message.id,
            error="the message arrived after later messages of the user were answered",
            error_code=ORDER_SKIPPED,
        )
        self._call_back(message, TaskStatus.FAILED)
        return Outcome(TaskStatus.FAILED, ORDER_SKIPPED)

    def _settle(self, message: QueueMessage, members: list[QueueMessage] | None = None) -> None:
        if self.guard is None:
            return
        for each in [message, *(members or [])]:
            self.guard.settle(each.user_number, Position.of(each))

    def _burst(self, message: QueueMessage, admission: Admission | None) -> list[QueueMessage]:
        """With debounce on, the user's next messages accepted within the window (one agent turn)."""
        position = admission.position if admission is not None else None
        if self.guard is None or position is None or self.debounce_s <= 0:
            return []
        if message.message_type is not MessageType.TEXT:
            return []
        members = self.guard.burst(message, position, self.debounce_s)
        return [
            message.model_copy(
                update={
                    "id": member.message_id,
                    "message": member.text,
                    "previous_message": None,
                    "metadata": {**message.metadata, ORDER_SEQ: member.seq, "message_type": "text"},
                }
            )
            for member in members
        ]

    def _already_final(self, message: QueueMessage, *, call_back: bool = True) -> Outcome | None:
        task = self.store.read_task(message.id)
        if task is None or task.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED):
            return None
        log.info("redelivered message already final", extra={"message_id": message.id, "status": task.status})
        if call_back:
            self._call_back(message, task.status)
        return Outcome(task.status, task.summary.get("error_code"))

    def _take_turn(self, message: QueueMessage, members: list[QueueMessage]) -> _Turn:
        text, transcript = "\n".join(m.message for m in [message, *members]), None
        stream = self.events.turn(message.id) if self.events is not None else None
        if message.message_type is MessageType.AUDIO:
            if self.voice is None:
                raise TranscriptionError("voice notes are not enabled in this deployment")
            transcript = self.voice.transcribe_url(message.message).text
            text = transcript
            if stream is not None:
                stream.status("transcribed", transcript=transcript)
        provider = self.providers(message.provider)
        self.store.touch_thread(
            message.user_number, new_messages=1 + len(members) + bool(message.previous_message)
        )
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
            try:
                return _Turn(stream_reply(provider, request, stream), transcript)
            finally:
                if stream is not None:
                    stream.flush()  # the last chunks go before the final event

    def _complete(
        self, message: QueueMessage, turn: _Turn, started: float, members: list[QueueMessage]
    ) -> None:
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
        if members:
            # One agent turn answered the burst: every message id gets that answer, naming the others.
            turn_ids = [m.id for m in [message, *members]]
            for member in members:
                member_summary = {**summary, "combined_with": [i for i in turn_ids if i != member.id]}
                written = self.store.save_result(
                    member.id, user_number=message.user_number, data=data, summary=member_summary
                )
                self._publish_final(member.id, TaskStatus.COMPLETED, written)
                self._call_back(member, TaskStatus.COMPLETED, written)
            summary["combined_with"] = turn_ids[1:]
        with tracing.span("result_storage"):
            written = self.store.save_result(
                message.id, user_number=message.user_number, data=data, summary=summary
            )
        self._publish_final(message.id, TaskStatus.COMPLETED, written)
        self._observe(TaskStatus.COMPLETED, "", summary)
        log.info(
            "message completed",
            extra={
                "message_id": message.id,
                "provider": turn.reply.provider,
                "processing_time_ms": summary["processing_time_ms"],
            },
        )
        self._call_back(message, TaskStatus.COMPLETED, written)

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

    def _publish_final(self, message_id: str, status: str, task: TaskView | None = None) -> None:
        """The stream's last event: the same body the poll endpoint now answers."""
        if self.events is None:
            return
        task = task or self.store.read_task(message_id)
        if task is not None:
            self.events.finish(message_id, status, task_body(message_id, task))

    def _call_back(self, message: QueueMessage, status: str, task: TaskView | None = None) -> None:
        if self.callbacks is None:
            return
        task = task or self.store.read_task(message.id)
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
