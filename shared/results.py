"""The public body of a task's state: what polling returns and what callbacks send."""

from __future__ import annotations

from typing import Any

from shared.models import TaskStatus
from shared.store import TaskView

_COMPLETED_FIELDS = (
    "content",
    "content_parts",
    "thread_id",
    "processing_time_ms",
    "message_type",
    "transcript",
    "provider",
    "fallback_from",
)
_FAILED_FIELDS = ("retry_after", "thread_id", "processing_time_ms", "message_type", "transcript")


def task_body(message_id: str, task: TaskView) -> dict[str, Any]:
    """Go's ``status``/``data``/``error`` plus the seed's fields, for a task in any state."""
    body: dict[str, Any] = {"status": task.status, "message_id": message_id}
    summary = task.summary
    if task.status == TaskStatus.COMPLETED:
        if task.data is not None:
            body["data"] = task.data
        body.update({name: summary[name] for name in _COMPLETED_FIELDS if name in summary})
    elif task.status == TaskStatus.FAILED:
        if task.error is not None:
            body["error"] = task.error
        body["error_code"] = summary.get("error_code", "PROCESSING_ERROR")
        body.update({name: summary[name] for name in _FAILED_FIELDS if name in summary})
    return body
