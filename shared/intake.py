"""The webhook function's behaviour: validate, record, queue, answer in milliseconds."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from datetime import UTC, datetime
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared import metrics, tracing
from shared.batch import Batch
from shared.delivery import ORDER_EPOCH, ORDER_SEQ, Position
from shared.errors import GatewayError, QueueUnavailable, StoreUnavailable, TransientError
from shared.http import (
    audit_message,
    current_identity,
    error_response,
    json_response,
    read_json_body,
    request_id,
    unavailable,
    validation_details,
)
from shared.models import (
    MessageType,
    QueueMessage,
    WebhookAccepted,
    WebhookRequest,
    go_timestamp,
    new_message_id,
)
from shared.observability import bind
from shared.providers.base import HistoryMessage
from shared.ratelimit import Window
from shared.runtime import Runtime

log = logging.getLogger(__name__)

POLLING_PATH = "/api/v1/message/response"
DEFAULT_WAIT_SECONDS = 5
MAX_IDEMPOTENCY_KEY_LENGTH = 255
_SAFE_KEY = re.compile(r"^[A-Za-z0-9._:=+/@-]{1,128}$")


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
    """Validate, suppress duplicates, apply the per-number limit, record and queue one message."""
    settings = runtime.settings
    document, problem = read_json_body(request, settings.max_request_size, max_depth=settings.max_json_depth)
    if problem is not None:
        return problem
    if not isinstance(document, dict):
        return error_response(400, "Invalid request", "request body must be a JSON object", field="body")
    try:
        incoming = WebhookRequest.model_validate(
            document, context={"max_message_chars": settings.max_message_chars}
        )
    except ValidationError as exc:
        return invalid(exc)
    if len(incoming.message.encode()) > settings.max_message_bytes:
        return error_response(
            400,
            "Invalid request",
            f"message: must be at most {settings.max_message_bytes} bytes",
            field="message",
        )
    idempotency_key, problem = _idempotency_key(request, incoming)
    if problem is not None:
        return problem
    identity = current_identity()
    client = identity.client if identity is not None else "anonymous"
    message_id = new_message_id()
    if idempotency_key:
        earlier = runtime.store.claim_idempotency(
            client, idempotency_key, message_id, ttl=int(settings.idempotency_ttl)
        )
        if earlier is not None:
            return _duplicate(runtime, earlier)
    try:
        with bind(message_id=message_id):
            return _queue(runtime, incoming, message_id)
    except _Refused as refused:  # not queued: a retry with the same key must be able to succeed
        if idempotency_key:
            _release(runtime, client, idempotency_key, message_id)
        return refused.response
    except BaseException:
        if idempotency_key:
            _release(runtime, client, idempotency_key, message_id)
        raise


def _queue(runtime: Runtime, incoming: WebhookRequest, message_id: str) -> flask.Response:
    settings = runtime.settings
    message_type = incoming.resolved_type()
    provider = incoming.provider or settings.agent_provider
    priority = incoming.priority or (
        settings.default_priority_audio
        if message_type is MessageType.AUDIO
        else settings.default_priority_text
    )
    # One Redis round trip: the per-number limit, the task record, the user's next sequence and the
    # ``queued`` event. The sequence is taken before publishing so that a message refused from here
    # on settles it (later messages of the user must not wait for it).
    batch = Batch(runtime.store.client)
    number_limit = runtime.limiter.stage_hit(
        batch,
        "user_number:" + incoming.user_number.lstrip("+"),
        [Window(settings.rate_limit_per_user_number_per_minute, 60)],
    )
    average_ms = runtime.store.stage_accept(
        batch,
        message_id,
        user_number=incoming.user_number,
        provider=provider,
        callback_url=incoming.callback_url,
        summary={"message_type": message_type.value, "thread_id": incoming.user_number},
    )
    assigned = runtime.guard.stage_assign(batch, incoming.user_number)
    runtime.events.stage_status(batch, message_id, "queued")
    batch.run()
    position = assigned.result()
    decision = number_limit.result()
    if decision is not None and not decision.allowed:
        log.info("per-number rate limit exceeded", extra={"user_number": incoming.user_number})
        _withdraw(runtime, incoming.user_number, message_id, position)
        raise _Refused(json_response(decision.body(), 429, decision.headers()))
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
            "priority": priority,
            ORDER_EPOCH: position.epoch,
            ORDER_SEQ: position.seq,
        },
        reasoning_engine_id=incoming.reasoning_engine_id,
    )
    try:
        with tracing.span(
            f"publish {runtime.topology.queue}",
            {
                "messaging.system": "rabbitmq",
                "messaging.message.id": message_id,
                "message.type": message_type.value,
            },
            kind="producer",
        ):
            headers = tracing.inject({})
            _remember_trace(runtime, message_id, headers)
            runtime.publisher.publish(
                queue_message.to_body(), headers=headers or None, priority=priority == "high"
            )
    except QueueUnavailable as exc:
        metrics.observe_message(message_type.value, "refused", error_code=exc.error_code)
        _settle_unqueued(runtime, incoming.user_number, position)
        raise _Refused(_queue_refused(runtime, message_id, exc)) from None
    metrics.observe_message(message_type.value, "accepted")
    runtime.guard.remember(queue_message, position)
    log.info("message accepted", extra={"message_id": message_id, "user_number": incoming.user_number})
    audit_message(message_id)
    accepted = WebhookAccepted(
        message_id=message_id,
        polling_endpoint=f"{POLLING_PATH}?message_id={message_id}",
        estimated_wait_time=_estimate_seconds(average_ms.result()),
    )
    return json_response(accepted.model_dump(), settings.webhook_success_status)


def _remember_trace(runtime: Runtime, message_id: str, carrier: dict[str, Any]) -> None:
    """Keep the message's trace context (``task:trace:<id>``, as the Go gateway) for the poll."""
    if not carrier.get(tracing.TRACEPARENT):
        return
    key = runtime.store.key("task:trace", message_id)
    try:
        runtime.store.client.set(key, json.dumps(carrier), ex=int(runtime.settings.task_status_ttl))
    except Exception as exc:  # tracing must never refuse a message
        log.warning("could not store the trace context", extra={"error": exc.__class__.__name__})


class _Refused(Exception):
    """The message was not queued; ``response`` says why (the idempotency claim is released)."""

    def __init__(self, response: flask.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _idempotency_key(
    request: flask.Request, incoming: WebhookRequest
) -> tuple[str | None, flask.Response | None]:
    """``Idempotency-Key`` header, else ``metadata.message_id`` / ``metadata.wamid`` (WhatsApp)."""
    header = request.headers.get("Idempotency-Key")
    if header is not None:
        key = header.strip()
        if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable() or not key.isascii():
            return None, error_response(
                400,
                "Invalid request",
                f"Idempotency-Key: must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters",
                field="Idempotency-Key",
            )
        return _key_name(key), None
    for name in ("message_id", "wamid"):
        value = incoming.metadata.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return _key_name(str(value).strip()), None
    return None, None


def _key_name(key: str) -> str:
    """The key itself when it is short and plain, else its SHA-256 (Redis key names stay tidy)."""
    return key if _SAFE_KEY.match(key) else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _duplicate(runtime: Runtime, earlier: dict[str, Any]) -> flask.Response:
    """200 with the first request's answer: nothing is queued twice."""
    message_id = str(earlier["message_id"])
    status = runtime.store.task_status(message_id)
    if status is None:
        accepted_at = _parse_time(earlier.get("accepted_at"))
        recent = accepted_at is not None and (
            (datetime.now(UTC) - accepted_at).total_seconds() < runtime.settings.task_status_ttl
        )
        status = "processing" if recent else "expired"
    log.info("duplicate message suppressed", extra={"message_id": message_id})
    audit_message(message_id)
    return json_response(
        {
            "message_id": message_id,
            "status": status,
            "polling_endpoint": f"{POLLING_PATH}?message_id={message_id}",
            "duplicate": True,
        },
        200,
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _release(runtime: Runtime, client: str, key: str, message_id: str) -> None:
    try:
        runtime.store.release_idempotency(client, key, message_id)
    except StoreUnavailable:
        log.warning("could not release an idempotency key", extra={"message_id": message_id})


def _estimate_seconds(average_ms: float | None) -> int:
    if average_ms is None:
        return DEFAULT_WAIT_SECONDS
    return max(1, math.ceil(average_ms / 1000))


def _settle_unqueued(runtime: Runtime, user_number: str, position: Position) -> None:
    try:
        runtime.guard.settle(user_number, position)
    except StoreUnavailable:
        # Later messages of the user wait for this sequence until ORDER_SKIP_AFTER, then skip it.
        log.warning("could not settle the sequence of an unqueued message", extra={"sequence": position.seq})


def _withdraw(runtime: Runtime, user_number: str, message_id: str, position: Position) -> None:
    """Undo the record of a message refused before publishing (its id was never given out)."""
    try:
        runtime.store.forget(message_id)
    except StoreUnavailable:
        log.warning("could not delete the record of a refused message", extra={"message_id": message_id})
    _settle_unqueued(runtime, user_number, position)


def _queue_refused(runtime: Runtime, message_id: str, exc: QueueUnavailable) -> flask.Response:
    log.error("message not queued", extra={"message_id": message_id, "error": str(exc)})
    try:
        runtime.store.mark_failed(message_id, error=str(exc), error_code=exc.error_code)
    except GatewayError:
        log.warning("could not mark the unqueued task failed", extra={"message_id": message_id})
    return unavailable("The message queue did not accept the message; it was not queued. Retry shortly.")


def update_history(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    document, problem = read_json_body(request, settings.max_request_size, max_depth=settings.max_json_depth)
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
