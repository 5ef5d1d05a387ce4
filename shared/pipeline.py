"""The one processing path for a user message: agent call, result, storage.

The worker function runs :meth:`Pipeline.run` once per delivery. Permanent failures end the task
``failed`` here and return normally (the delivery is done); transient ones leave the task
``processing`` and propagate, so that the transport retries the delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import PermanentError, TransientError
from shared.models import QueueMessage
from shared.providers.base import AgentProvider, AgentReply, AgentRequest, HistoryMessage
from shared.store import TaskStore
from shared.transform import build_result_data

log = logging.getLogger(__name__)

ProviderLookup = Callable[[str], AgentProvider]


@dataclass(frozen=True)
class Outcome:
    """What became of one message."""

    status: str
    error_code: str | None = None


class Pipeline:
    """Runs one queued message to its final state."""

    def __init__(self, store: TaskStore, providers: ProviderLookup) -> None:
        self.store = store
        self.providers = providers

    def run(self, message: QueueMessage, *, attempt: int = 1) -> Outcome:
        """Process ``message``; raise :class:`TransientError` when the delivery should be retried."""
        started = time.monotonic()
        self.store.mark_processing(message.id)
        try:
            reply = self._ask_agent(message)
        except PermanentError as exc:
            log.warning(
                "message failed permanently",
                extra={"message_id": message.id, "error_code": exc.error_code, "attempt": attempt},
            )
            self.store.mark_failed(
                message.id,
                error=str(exc),
                error_code=exc.error_code,
                extra=self._timing(message, started),
            )
            return Outcome("failed", exc.error_code)
        except TransientError as exc:
            log.warning(
                "message failed transiently",
                extra={"message_id": message.id, "error_code": exc.error_code, "attempt": attempt},
            )
            self.store.mark_processing(message.id, error=str(exc))
            raise
        self._store_result(message, reply, started)
        return Outcome("completed")

    def _ask_agent(self, message: QueueMessage) -> AgentReply:
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
            text=message.message,
            message_id=message.id,
            reasoning_engine_id=message.reasoning_engine_id,
        )
        return provider.send(request)

    def _store_result(self, message: QueueMessage, reply: AgentReply, started: float) -> None:
        data = build_result_data(
            reply.messages, user_number=message.user_number, message_id=message.id, now=datetime.now(UTC)
        )
        summary: dict[str, Any] = {
            "content": reply.text,
            "provider": reply.provider,
            **self._timing(message, started),
        }
        self.store.save_result(message.id, user_number=message.user_number, data=data, summary=summary)
        log.info(
            "message completed",
            extra={
                "message_id": message.id,
                "provider": reply.provider,
                "processing_time_ms": summary["processing_time_ms"],
            },
        )

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
