"""The bridge's ``pubsub`` sink: republish each queue message to a Pub/Sub topic.

A push subscription (created by Terraform, with retry policy and dead-letter topic) then calls the
worker, and Pub/Sub owns retries. No ordering key is used: a failed publish would pause every later
message of that user inside the client; per-user order is enforced by the worker instead (a message
whose turn has not come is answered 429 and redelivered). The user number travels as an attribute.
The Google library is imported only when this sink is built.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.models import PushEnvelope

log = logging.getLogger(__name__)

# Answers in the bridge's vocabulary (HTTP-like status codes; see shared.bridge).
PUBLISHED, REFUSED, UNAVAILABLE = 200, 400, 503


class PubSubSink:
    """Publish envelopes' payloads to ``topic`` (``projects/<p>/topics/<t>``), one confirmed publish each."""

    def __init__(self, topic: str, *, timeout_s: float = 30.0, client: Any = None) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self.client = client if client is not None else build_publisher()

    def deliver(self, envelope: PushEnvelope) -> int:
        from google.api_core import exceptions as google_errors

        payload = envelope.payload()
        attributes = {str(k): str(v) for k, v in envelope.message.attributes.items()}
        attributes["user_number"] = _user_number(payload)
        try:
            future = self.client.publish(self.topic, payload, **attributes)
            future.result(timeout=self.timeout_s)
        except (google_errors.InvalidArgument, google_errors.NotFound, google_errors.PermissionDenied) as exc:
            log.error("Pub/Sub refused the message", extra={"error": exc.__class__.__name__})
            return REFUSED
        except Exception as exc:
            log.warning("Pub/Sub publish failed", extra={"error": repr(exc)[:300]})
            return UNAVAILABLE
        return PUBLISHED

    def close(self) -> None:
        self.client.stop()


def build_publisher(**client_options: Any) -> Any:
    """A Pub/Sub publisher without batching delay (one message per call)."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    return pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=1, max_latency=0.0),
        **client_options,
    )


def _user_number(payload: bytes) -> str:
    try:
        document = json.loads(payload)
    except ValueError:
        return ""
    value = document.get("user_number") if isinstance(document, dict) else None
    return value if isinstance(value, str) else ""
