"""The poll function's behaviour: results, task status, last activity."""

from __future__ import annotations

import json
import logging
from typing import Any

import flask

from shared import tracing
from shared.http import audit_message, error_response, json_response
from shared.models import TaskStatus, normalize_message_id
from shared.observability import bind
from shared.results import task_body
from shared.runtime import Runtime

log = logging.getLogger(__name__)

NOT_FOUND = {"error": "Task not found", "message": "No task found with the provided message ID"}


def parse_message_id(request: flask.Request) -> tuple[str, flask.Response | None]:
    raw = request.args.get("message_id", "")
    if not raw.strip():
        return "", error_response(
            400, "Invalid request", "message_id: query parameter is required", field="message_id"
        )
    try:
        return normalize_message_id(raw), None
    except ValueError as exc:
        return "", error_response(400, "Invalid request", f"message_id: {exc}", field="message_id")


def get_response(request: flask.Request, runtime: Runtime) -> flask.Response:
    message_id, problem = parse_message_id(request)
    if problem is not None:
        return problem
    with (
        bind(message_id=message_id),
        tracing.span_following(
            _message_trace(runtime, message_id), "poll_result", {"message.id": message_id}
        ),
    ):
        response = _result(runtime, message_id)
        tracing.set_attributes({"http.response.status_code": response.status_code})
        return response


def _message_trace(runtime: Runtime, message_id: str) -> dict[str, str]:
    """The trace context the webhook stored for the message (``task:trace:<id>``), when tracing."""
    if not tracing.enabled():
        return {}
    try:
        raw = runtime.store.client.get(runtime.store.key("task:trace", message_id))
        stored = json.loads(raw) if raw else {}
    except Exception as exc:
        log.debug("trace context unreadable", extra={"error": exc.__class__.__name__})
        return {}
    return tracing.carrier_of(stored) if isinstance(stored, dict) else {}


def _result(runtime: Runtime, message_id: str) -> flask.Response:
    task = runtime.store.read_task(message_id)
    if task is None:
        return json_response(NOT_FOUND, 404)
    if task.status == TaskStatus.PROCESSING:
        return json_response({"status": "processing", "message_id": message_id}, 202)
    if task.status == TaskStatus.COMPLETED and task.data_unreadable:
        return error_response(500, "Internal server error", "Failed to parse worker response")
    return json_response(task_body(message_id, task), 200)


def get_task_status(request: flask.Request, runtime: Runtime) -> flask.Response:
    """Debug view of one task's Redis state (the Go shape plus the summary)."""
    message_id, problem = parse_message_id(request)
    if problem is not None:
        return problem
    task = runtime.store.read_task(message_id)
    if task is None:
        return json_response(NOT_FOUND, 404)
    body: dict[str, Any] = {
        "message_id": message_id,
        "status": task.status,
        "summary": task.summary,
        "has_result": task.data is not None,
    }
    if task.error:
        body["last_error"] = task.error
    audit_message(message_id)
    return json_response(body)


def get_last_activity(request: flask.Request, runtime: Runtime) -> flask.Response:
    user_number = request.args.get("user_number", "").strip()
    if not user_number:
        return error_response(
            400, "Missing parameter", "user_number query parameter is required", field="user_number"
        )
    found = runtime.store.last_activity(user_number)
    if found is None:
        return json_response(
            {
                "error": "No message history found",
                "message": "No messages found for the provided user number",
            },
            404,
        )
    timestamp, ttl = found
    return json_response(
        {"user_number": user_number, "last_message_timestamp": timestamp, "cached": True, "ttl_seconds": ttl}
    )
