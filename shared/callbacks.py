"""Callbacks: POST the final result (success and failure) to the client's ``callback_url``.

Delivery runs inside the worker's request, before the delivery is acknowledged, and its state is
kept in Redis (``callback:status:<id>``), so a worker restart redelivers the message and the callback
is attempted again instead of being lost with a background thread. The URL passes the same SSRF
guard as audio downloads, at delivery time (DNS may have changed since intake).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from shared import metrics, tracing
from shared.errors import UnsafeURL
from shared.models import go_json
from shared.store import TaskStore
from shared.urlguard import check_url

log = logging.getLogger(__name__)

USER_AGENT = "EAI-Agent-Gateway/1.0"


@dataclass(frozen=True)
class CallbackPolicy:
    timeout_s: float = 10.0
    max_retries: int = 3
    hmac_secret: str = ""
    auth_token: str = ""
    allow_private: bool = False
    data_relay_url: str = ""
    data_relay_api_key: str = ""
    backoff_s: float = 1.0


class _RetriableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, _RetriableStatus | httpx.TransportError)


def sign(body: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of the exact body, sent as ``X-Signature-SHA256``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class CallbackSender:
    """Delivers results to callback URLs with retries on network errors, 5xx and 429."""

    def __init__(self, store: TaskStore, policy: CallbackPolicy, client: httpx.Client | None = None) -> None:
        self.store = store
        self.policy = policy
        self.client = client or httpx.Client(timeout=policy.timeout_s, follow_redirects=False)

    def deliver(self, message_id: str, user_number: str, payload: dict[str, Any]) -> None:
        """Send ``payload`` to the task's callback URL, if it has one and it was not delivered yet."""
        url = self.store.callback_url(message_id)
        if not url or self.store.callback_state(message_id).get("state") == "delivered":
            return
        with tracing.span("callback", kind="client"):
            self._deliver(message_id, user_number, payload, url)

    def _deliver(self, message_id: str, user_number: str, payload: dict[str, Any], url: str) -> None:
        body = go_json(payload)
        try:
            check_url(url, allow_private=self.policy.allow_private)
        except UnsafeURL as exc:
            self._record_failure(message_id, url, attempts=0, status=None, error=str(exc))
            return
        attempts = 0
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.policy.max_retries + 1),
                wait=wait_exponential(multiplier=self.policy.backoff_s, max=30),
                retry=retry_if_exception(_retriable),
                reraise=False,
            ):
                with attempt:
                    attempts += 1
                    response = self._post(url, body)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            status = cause.response.status_code if isinstance(cause, _RetriableStatus) else None
            self._record_failure(message_id, url, attempts=attempts, status=status, error=str(cause))
            self._report_to_data_relay(user_number, url, body, status, str(cause))
            return
        if response.is_success:
            self.store.record_callback(
                message_id, {"state": "delivered", "attempts": attempts, "http_status": response.status_code}
            )
            log.info("callback delivered", extra={"message_id": message_id, "attempts": attempts})
        else:
            self._record_failure(
                message_id,
                url,
                attempts=attempts,
                status=response.status_code,
                error=f"HTTP {response.status_code}",
            )

    def _post(self, url: str, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.policy.auth_token:
            headers["Authorization"] = f"Bearer {self.policy.auth_token}"
        if self.policy.hmac_secret:
            headers["X-Signature-SHA256"] = sign(body, self.policy.hmac_secret)
        with metrics.external_call("callback") as call:
            response = self.client.post(url, content=body, headers=headers)
            if not response.is_success:
                call.outcome = f"http_{response.status_code // 100}xx"
        if response.status_code >= 500 or response.status_code == 429:
            raise _RetriableStatus(response)
        return response

    def _record_failure(
        self, message_id: str, url: str, *, attempts: int, status: int | None, error: str
    ) -> None:
        log.warning(
            "callback failed", extra={"message_id": message_id, "attempts": attempts, "http_status": status}
        )
        self.store.record_callback(
            message_id,
            {"state": "failed", "attempts": attempts, "http_status": status, "error": error[:300]},
            go_error=f"Failed to execute callback: {error}"[:500],
        )

    def _report_to_data_relay(
        self, user_number: str, url: str, body: bytes, status: int | None, error: str
    ) -> None:
        """The Go gateway's optional error report for callbacks that failed retriably."""
        if not (self.policy.data_relay_url and self.policy.data_relay_api_key):
            return
        report = {
            "customer_whatsapp_number": user_number,
            "source": "eai-agent-gateway",
            "flowname": "wetalkie_callback",
            "api_endpoint": url,
            "input_body": body.decode(),
            "http_status_code": status or 0,
            "error_response": error,
        }
        try:
            with metrics.external_call("data_relay"):
                self.client.post(
                    self.policy.data_relay_url.rstrip("/") + "/data/whatsapp-api-error-interceptor",
                    content=json.dumps(report),
                    headers={
                        "Content-Type": "application/json",
                        "X-Api-Key": self.policy.data_relay_api_key,
                        "User-Agent": USER_AGENT,
                    },
                )
        except httpx.HTTPError as exc:
            log.warning("data relay report failed", extra={"error": exc.__class__.__name__})


def result_payload(message_id: str, status: str, body: dict[str, Any]) -> dict[str, Any]:
    """Callback body: the Go fields (message_id, status, data, timestamp, processed_at) plus ours."""
    payload = {
        "message_id": message_id,
        "status": status,
        **{k: v for k, v in body.items() if k not in ("message_id", "status")},
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "processed_at": message_id,
    }
    return payload
