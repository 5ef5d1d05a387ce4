"""Locust version of the Go gateway's k6 load test (load-tests/main.js).

Each simulated user is one WhatsApp number (``55`` + 10 random digits) that sends
``MESSAGES_PER_USER`` messages (default 3) ``MESSAGE_DELAY_SECONDS`` apart (default 10): first a fixed
English text, then 32 random alphanumerics or, with 25 % chance, a question that makes the agent use a
tool. After each send it polls the returned ``polling_endpoint`` every ``POLL_INTERVAL_SECONDS``
(default 5) until the status is completed/failed/error, and records submit -> final poll as
``message_completion_time`` (plus ``successful_``/``failed_message_completion_time``), which appear in
Locust's statistics, charts and ``--html`` report like requests do.

Environment: ``BEARER_TOKEN`` (or ``API_TOKEN``) sent as ``Authorization: Bearer``; ``POLL_TIMEOUT_SECONDS``
(default 600); ``COMPLETION_JSON`` a path to dump every completion time at the end.
Run: ``locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --headless -u 20 -t 2m --html r.html``
(see docs/loadtest.md).
"""

from __future__ import annotations

import json
import os
import random
import string
import threading
import time
from typing import Any

from locust import HttpUser, between, events, task
from locust.env import Environment

WEBHOOK_PATH = "/api/v1/message/webhook/user"
FIRST_MESSAGE = (
    "I am a virtual user created by k6 to test the system. Please answer briefly so that the test can go on."
)
TOOL_QUESTION = "Qual o presidente da australia? Use a tool google_search pra responder"

MESSAGES_PER_USER = int(os.environ.get("MESSAGES_PER_USER", "3"))
MESSAGE_DELAY_SECONDS = float(os.environ.get("MESSAGE_DELAY_SECONDS", "10"))
POLL_INTERVAL_SECONDS = float(os.environ.get("POLL_INTERVAL_SECONDS", "5"))
POLL_TIMEOUT_SECONDS = float(os.environ.get("POLL_TIMEOUT_SECONDS", "600"))
TOKEN = os.environ.get("BEARER_TOKEN") or os.environ.get("API_TOKEN") or ""
FINAL = {"completed", "failed", "error"}


class Outcomes:
    """Completion times (ms) of every message, shared by all users of this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.all: list[float] = []
        self.succeeded: list[float] = []
        self.failed: list[float] = []

    def add(self, ms: float, ok: bool) -> None:
        with self.lock:
            self.all.append(ms)
            (self.succeeded if ok else self.failed).append(ms)


OUTCOMES = Outcomes()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(round((len(ordered) - 1) * q / 100), len(ordered) - 1)]


def _record(environment: Environment, name: str, ms: float, error: str | None = None) -> None:
    environment.events.request.fire(  # type: ignore[no-untyped-call]
        request_type="MESSAGE",
        name=name,
        response_time=ms,
        response_length=0,
        exception=RuntimeError(error) if error else None,
        context={},
    )


class WhatsAppUser(HttpUser):
    """One k6 virtual-user iteration per task run."""

    wait_time = between(1, 2)

    def on_start(self) -> None:
        if TOKEN:
            self.client.headers["Authorization"] = f"Bearer {TOKEN}"

    @task
    def conversation(self) -> None:
        user_number = "55" + "".join(random.choices(string.digits, k=10))
        for index in range(MESSAGES_PER_USER):
            self._send_and_wait(user_number, self._message(index))
            if index < MESSAGES_PER_USER - 1:
                time.sleep(MESSAGE_DELAY_SECONDS)

    @staticmethod
    def _message(index: int) -> str:
        if index == 0:
            return FIRST_MESSAGE
        if random.random() < 0.25:
            return TOOL_QUESTION
        return "".join(random.choices(string.ascii_letters + string.digits, k=32))

    def _send_and_wait(self, user_number: str, text: str) -> None:
        submitted = time.perf_counter()
        body = {"user_number": user_number, "message": text, "metadata": {}}
        with self.client.post(WEBHOOK_PATH, json=body, name=WEBHOOK_PATH, catch_response=True) as response:
            if response.status_code not in (200, 201, 202):
                response.failure(f"webhook answered {response.status_code}")
                return
            try:
                accepted: dict[str, Any] = response.json()
            except ValueError:
                response.failure("webhook answer is not JSON")
                return
            if not accepted.get("message_id") or not accepted.get("polling_endpoint"):
                response.failure("webhook answer lacks message_id or polling_endpoint")
                return
        status = self._poll(str(accepted["polling_endpoint"]), submitted)
        elapsed_ms = (time.perf_counter() - submitted) * 1000
        ok = status == "completed"
        OUTCOMES.add(elapsed_ms, ok)
        env = self.environment
        _record(env, "message_completion_time", elapsed_ms, None if ok else f"final status {status}")
        _record(
            env, "successful_message_completion_time" if ok else "failed_message_completion_time", elapsed_ms
        )

    def _poll(self, endpoint: str, submitted: float) -> str:
        path = endpoint.split("?", 1)[0]
        while time.perf_counter() - submitted < POLL_TIMEOUT_SECONDS:
            time.sleep(POLL_INTERVAL_SECONDS)
            with self.client.get(endpoint, name=path, catch_response=True) as response:
                if response.status_code not in (200, 202):
                    response.failure(f"poll answered {response.status_code}")
                    return "error"
                try:
                    status = str(response.json().get("status", ""))
                except ValueError:
                    response.failure("poll answer is not JSON")
                    return "error"
                if status in FINAL:
                    return status
        return "timeout"


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _summary(environment: Environment, **_kwargs: Any) -> None:
    """Print the completion-time distribution and the k6 thresholds; dump them if asked."""
    with OUTCOMES.lock:
        everything, good, bad = list(OUTCOMES.all), list(OUTCOMES.succeeded), list(OUTCOMES.failed)
    if not everything:
        return
    rate = len(good) / len(everything)
    print("\nmessage completion time (submit -> final poll), ms")
    for label, values in (("all", everything), ("successful", good), ("failed", bad)):
        if values:
            print(
                f"  {label:<10} n={len(values):<6} p50={_percentile(values, 50):.0f} "
                f"p90={_percentile(values, 90):.0f} p95={_percentile(values, 95):.0f} "
                f"p99={_percentile(values, 99):.0f} max={max(values):.0f}"
            )
    p99 = _percentile(everything, 99)
    print(f"  success rate {rate:.3f} (k6 threshold > 0.99: {'ok' if rate > 0.99 else 'MISS'})")
    print(f"  completion p99 {p99:.0f} ms (k6 threshold < 100000: {'ok' if p99 < 100_000 else 'MISS'})")
    path = os.environ.get("COMPLETION_JSON")
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"all_ms": everything, "successful_ms": good, "failed_ms": bad}, handle)
