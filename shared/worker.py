"""The worker function's behaviour: decode a push envelope, run the pipeline, answer the contract.

=====  ==================================================================
200    done: completed, or failed permanently (already recorded)
400    the envelope or its message can never be processed
429    not now (the same user's previous message is still running)
503    transient failure: retry with back-off
=====  ==================================================================
"""

from __future__ import annotations

import logging

import flask
from pydantic import ValidationError

from shared import metrics, tracing
from shared.errors import BusyError, InvalidMessage, TransientError
from shared.http import error_response, json_response, read_json_body
from shared.models import PushEnvelope, QueueMessage
from shared.observability import bind
from shared.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ENVELOPE_BYTES = 1_048_576


def handle_push(request: flask.Request, runtime: Runtime) -> flask.Response:
    document, problem = read_json_body(request, MAX_ENVELOPE_BYTES)
    if problem is not None:
        return problem
    try:
        envelope = PushEnvelope.model_validate(document)
        message = QueueMessage.from_body(envelope.payload())
    except (ValidationError, InvalidMessage) as exc:
        log.error("undeliverable push envelope", extra={"error": str(exc)[:500]})
        return error_response(400, "Invalid message", str(exc)[:500], field="message.data")
    try:
        with (
            bind(message_id=message.id, request_id=str(message.metadata.get("request_id") or "")),
            tracing.span_following(
                tracing.carrier_of(envelope.message.attributes),
                "process_user_message",
                {"message.id": message.id, "message.type": message.message_type.value},
            ),
            metrics.in_flight(),
        ):
            outcome = runtime.pipeline.run(message, attempt=envelope.delivery_attempt)
    except BusyError as exc:
        retry_after = str(int(exc.retry_after or 1))
        return error_response(429, "Busy", str(exc), headers={"Retry-After": retry_after})
    except TransientError as exc:
        return error_response(503, "Temporary failure", str(exc), error_code=exc.error_code)
    return json_response(
        {"message_id": message.id, "status": outcome.status, "error_code": outcome.error_code}
    )
