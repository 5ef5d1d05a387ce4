"""The webhook function's behaviour: validate, record, queue, answer in milliseconds."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import GatewayError, QueueUnavailable, TransientError
from shared.http import (
    error_response,
    json_response,
    read_json_body,
    request_id,
    unavailable,
    validation_details,
)
from shared.models import QueueMessage, WebhookAccepted, WebhookRequest, go_timestamp, new_message_id
from shared.providers.base import HistoryMessage
from shared.runtime import Runtime

log = logging.getLogger(__name__)

POLLING_PATH = "/api/v1/message/response"
DEFAULT_WAIT_SECONDS = 5


class HistoryUpdateRequest(BaseModel):
    """Body of ``POST /api/v1/message/webhook/update_history``."""

    model_config = ConfigDict(extra="ignore")

    user_number: str = Field(min_length=1, max_length=128)
    messages: list[HistoryMessageIn] = Field(min_length=1)
    reasoning_engine_id: str | None = None

    @field_validator("user_number")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()


class HistoryMessageIn(BaseModel):
    role: str = Field(min_length=1, max_length=32)
    content: str


HistoryUpdateRequest.model_rebuild()


def invalid(exc: ValidationError) -> flask.Response:
    details = validation_details(exc.errors())
    first = details[0]
    return error_response(
        400,
        "Invalid request",
        f"{first['field']}: {first['message']}",
        field=first["field"],
        details=details,
    )


def accept_user_message(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    document, problem = read_json_body(request, settings.max_request_size)
    if problem is not None:
        return problem
    if not isinstance(document, dict):
        return error_response(400, "Invalid request", "request body must be a JSON object", field="body")
    try:
        incoming = WebhookRequest.model_validate(document)
    except ValidationError as exc:
        return invalid(exc)
    if len(incoming.message.encode()) > settings.max_message_bytes:
        return error_response(
            400,
            "Invalid request",
            f"message: must be at most {settings.max_message_bytes} bytes",
            field="message",
        )
    message_id = new_message_id()
    message_type = incoming.resolved_type()
    provider = incoming.provider or settings.agent_provider
    queue_message = QueueMessage(
        id=message_id,
        user_number=incoming.user_number,
        message=incoming.message,
        previous_message=incoming.previous_message,
        provider=provider,
        timestamp=go_timestamp(datetime.now(UTC)),
        metadata={
            **incoming.metadata,
            "request_id": request_id(),
            "source": "webhook",
            "message_type": message_type.value,
        },
        reasoning_engine_id=incoming.reasoning_engine_id,
    )
    average_ms = runtime.store.accept(
        message_id,
        user_number=incoming.user_number,
        provider=provider,
        callback_url=incoming.callback_url,
        summary={"message_type": message_type.value, "thread_id": incoming.user_number},
    )
    try:
        runtime.publisher.publish(queue_message.to_body())
    except QueueUnavailable as exc:
        return _queue_refused(runtime, message_id, exc)
    accepted = WebhookAccepted(
        message_id=message_id,
        polling_endpoint=f"{POLLING_PATH}?message_id={message_id}",
        estimated_wait_time=_estimate_seconds(average_ms),
    )
    return json_response(accepted.model_dump(), settings.webhook_success_status)


def _estimate_seconds(average_ms: float | None) -> int:
    if average_ms is None:
        return DEFAULT_WAIT_SECONDS
    return max(1, math.ceil(average_ms / 1000))


def _queue_refused(runtime: Runtime, message_id: str, exc: QueueUnavailable) -> flask.Response:
    log.error("message not queued", extra={"message_id": message_id, "error": str(exc)})
    try:
        runtime.store.mark_failed(message_id, error=str(exc), error_code=exc.error_code)
    except GatewayError:
        log.warning("could not mark the unqueued task failed", extra={"message_id": message_id})
    return unavailable("The message queue did not accept the message; it was not queued. Retry shortly.")


def update_history(request: flask.Request, runtime: Runtime) -> flask.Response:
    document, problem = read_json_body(request, runtime.settings.max_request_size)
    if problem is not None:
        return problem
    if not isinstance(document, dict):
        return error_response(400, "Invalid request", "request body must be a JSON object", field="body")
    try:
        body = HistoryUpdateRequest.model_validate(document)
    except ValidationError as exc:
        return invalid(exc)
    provider = runtime.provider(runtime.settings.agent_provider)
    runtime.store.touch_thread(body.user_number, new_messages=len(body.messages))
    try:
        answer: Any = provider.add_history(
            body.user_number,
            [HistoryMessage(role=m.role, content=m.content) for m in body.messages],
            body.reasoning_engine_id,
        )
    except GatewayError as exc:
        status = 503 if isinstance(exc, TransientError) else 502
        return error_response(status, "Failed to update history", str(exc), error_code=exc.error_code)
    return json_response(answer)
