"""Fault injection: a few thousand messages through real Redis and RabbitMQ while things break.

The webhook and poll run in this process (a LocalStack whose own bridge is off); the bridge
(``python -m shared.bridge``) and the worker (functions-framework, as deployed) run as separate
processes. While the users send, the plan kills the worker mid-message, restarts RabbitMQ, kills the
bridge, restarts Redis (losing every key), injects poison messages; the mock agent fails
transiently at random. Final states are observed both through callbacks and by reading Redis, so
that keys lost in the Redis restart do not hide an outcome.

Run with ``make test-faults`` (``pytest -m faults tests/faults``). Sizes: FAULTS_MESSAGES (2000),
FAULTS_USERS (20), FAULTS_SEND_SECONDS (60).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
import redis

from shared.config import load_settings
from shared.localstack import ROOT, LocalStack
from tests.faults.harness import (
    FaultPlan,
    bridge_service,
    ensure_rabbitmq,
    ensure_redis,
    free_port,
    restart_rabbitmq,
    restart_redis,
    wait_http,
    worker_service,
)
from tests.helpers import AUTH, RABBITMQ_URL, REDIS_URL, TEST_TOKEN, RecordingServer, cleanup_run, new_run_id

pytestmark = pytest.mark.faults

MESSAGES = int(os.environ.get("FAULTS_MESSAGES", "2000"))
USERS = int(os.environ.get("FAULTS_USERS", "20"))
SEND_SECONDS = float(os.environ.get("FAULTS_SEND_SECONDS", "60"))
DRAIN_SECONDS = 120.0
FAIL_EVERY = 200  # one message in FAIL_EVERY always fails transiently: retried, then DELIVERY_FAILED
REPORT = ROOT / "docs" / "faults.md"


@dataclass
class Accepted:
    message_id: str
    user: str
    index: int
    at: float


@dataclass
class Final:
    status: str
    error_code: str | None
    finished_at: float  # wall clock, seconds


def environment(run_id: str, calls_log: Path) -> dict[str, str]:
    """Settings shared by the in-process webhook/poll and the bridge and worker processes."""
    return {
        "REDIS_URL": REDIS_URL,
        "RABBITMQ_URL": RABBITMQ_URL,
        "REDIS_KEY_PREFIX": f"{run_id}:",
        "RABBITMQ_EXCHANGE": f"{run_id}.eai_gateway",
        "RABBITMQ_DLX_EXCHANGE": f"{run_id}.eai_gateway_dlx",
        "RABBITMQ_USER_MESSAGES_QUEUE": f"{run_id}.user_messages",
        "RABBITMQ_DLQ": f"{run_id}.user_messages_dlq",
        "AGENT_PROVIDER": "mock",
        "API_TOKEN": TEST_TOKEN,
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
        "MOCK_AGENT_LATENCY_MS": "50",
        "MOCK_AGENT_FAILURE_RATE": "0.05",
        "MOCK_AGENT_CALL_LOG": str(calls_log),
        "AGENT_MAX_ATTEMPTS": "1",  # every agent call is one line of the call log
        "AGENT_BREAKER_FAIL_MAX": "100000",
        "DELIVERY_LEASE": "3",
        "ORDER_SKIP_AFTER": "90",
        "BRIDGE_MAX_ATTEMPTS": "6",
        "BRIDGE_RETRY_INITIAL_DELAY": "0.2",
        "BRIDGE_RETRY_MAX_DELAY": "2",
        "BRIDGE_BUSY_DELAY": "0.2",
        "BRIDGE_RECONNECT_MAX_DELAY": "2",
        "BRIDGE_DEPENDENCY_WAIT": "10",
        "MAX_PARALLEL": "16",
        "THREADS": "16",  # the worker's gunicorn threads
        "WORKER_TIMEOUT": "30",
        "RATE_LIMIT_PER_USER_NUMBER_PER_MINUTE": "0",
        "RATE_LIMIT_REQUESTS_PER_MINUTE": "1000000",
        "RATE_LIMIT_BURST": "1000000",
        "ALLOW_PRIVATE_NETWORK_URLS": "true",
        "CALLBACK_MAX_RETRIES": "5",
        "REDIS_OPERATION_TIMEOUT": "2",
    }


class Tracker:
    """Final states from callbacks and from Redis; the first sighting wins."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.finals: dict[str, Final] = {}
        self.accepted: list[Accepted] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=2)

    def callback(self, body: dict[str, Any]) -> int:
        if body.get("status") in ("completed", "failed"):
            self._record(str(body["message_id"]), Final(body["status"], body.get("error_code"), time.time()))
        return 200

    def _record(self, message_id: str, final: Final) -> None:
        with self._lock:
            self.finals.setdefault(message_id, final)

    def pending(self) -> list[str]:
        with self._lock:
            return [a.message_id for a in self.accepted if a.message_id not in self.finals]

    def sweep(self) -> None:
        ids = self.pending()
        if not ids:
            return
        pipe = self._client.pipeline(transaction=False)
        for message_id in ids:
            pipe.get(f"{self.prefix}task:status:{message_id}")
            pipe.get(f"{self.prefix}task:summary:{message_id}")
        values = pipe.execute()
        for message_id, status, summary in zip(ids, values[::2], values[1::2], strict=True):
            if status in ("completed", "failed"):
                details = json.loads(summary or "{}")
                finished = _epoch(details.get("finished_at")) or time.time()
                self._record(message_id, Final(status, details.get("error_code"), finished))

    def run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.sweep()
            except redis.RedisError:
                continue  # Redis is being restarted

    def stop(self) -> None:
        self._stop.set()


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def send_user(
    base_url: str,
    user: str,
    count: int,
    interval: float,
    callback: str,
    tracker: Tracker,
    tally: Counter[str],
) -> None:
    client = httpx.Client(headers=AUTH, timeout=30)
    for index in range(count):
        text = f"{user} message {index}"
        if (index * USERS + int(user[-3:])) % FAIL_EVERY == 7:
            text = "FAIL_TRANSIENT " + text
        try:
            response = client.post(
                base_url + "/api/v1/message/webhook/user",
                json={"user_number": user, "message": text, "callback_url": callback},
            )
        except httpx.HTTPError:
            tally["transport error"] += 1
            continue
        if response.status_code in (200, 201, 202):
            with tracker._lock:
                tracker.accepted.append(Accepted(response.json()["message_id"], user, index, time.time()))
        elif response.status_code == 503:
            tally["refused 503"] += 1
        else:
            tally[f"HTTP {response.status_code}"] += 1
        time.sleep(interval)
    client.close()


def inject_poison(exchange: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    for body in (b"\xff not json at all", b'{"id": "", "user_number": ""}'):
        channel.basic_publish(exchange, queue, body, pika.BasicProperties(delivery_mode=2))
    connection.close()


def read_calls(path: Path) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Agent call start times, and end times of successful calls, per message id."""
    starts: dict[str, list[float]] = defaultdict(list)
    successes: dict[str, list[float]] = defaultdict(list)
    if not path.exists():
        return starts, successes
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if fields[0] == "start" and len(fields) == 3:
            starts[fields[2]].append(float(fields[1]))
        elif fields[0] == "end" and len(fields) == 4 and fields[3] == "ok":
            successes[fields[2]].append(float(fields[1]))
    return starts, successes


def queue_depth(queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def test_nothing_lost_nothing_doubled_in_order_under_faults(tmp_path: Path) -> None:
    run_id = new_run_id()
    calls_log = tmp_path / "agent_calls.log"
    env = environment(run_id, calls_log)
    child_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    tracker = Tracker(env["REDIS_KEY_PREFIX"])
    tally: Counter[str] = Counter()
    worker_port = free_port()
    worker = worker_service(child_env, worker_port, tmp_path / "worker.log")
    bridge = bridge_service(
        {**child_env, "WORKER_URL": f"http://127.0.0.1:{worker_port}/"}, tmp_path / "bridge.log"
    )
    settings = load_settings(**env)
    stack = LocalStack(settings, port=0, host="127.0.0.1")
    stack.consumer.stop()  # the bridge runs as its own process
    recorder = RecordingServer(status=tracker.callback)
    sweeper = threading.Thread(target=tracker.run, daemon=True)
    try:
        with recorder.running():
            stack.start()
            worker.start()
            wait_http(f"http://127.0.0.1:{worker_port}/live")
            bridge.start()
            sweeper.start()

            def restart(service: Any, pause: float) -> None:
                service.kill()
                time.sleep(pause)
                service.start()

            exchange = settings.rabbitmq_exchange
            plan = FaultPlan(
                [
                    (5, "worker SIGKILL + restart", lambda: restart(worker, 1)),
                    (
                        10,
                        "poison messages",
                        lambda: inject_poison(exchange, settings.rabbitmq_queue),
                    ),
                    (14, "RabbitMQ restart", lambda: restart_rabbitmq(3)),
                    (25, "bridge SIGKILL + restart", lambda: restart(bridge, 1)),
                    (33, "Redis SHUTDOWN NOSAVE + restart", lambda: restart_redis(2)),
                    (43, "worker SIGKILL + restart", lambda: restart(worker, 1)),
                    (49, "bridge SIGKILL + restart", lambda: restart(bridge, 0.5)),
                ]
            ).start()
            per_user = MESSAGES // USERS
            interval = SEND_SECONDS / per_user
            users = [f"55219{n:08d}" for n in range(USERS)]
            senders = [
                threading.Thread(
                    target=send_user,
                    args=(stack.base_url, user, per_user, interval, recorder.url, tracker, tally),
                )
                for user in users
            ]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            plan.join(timeout=60)
            deadline = time.monotonic() + DRAIN_SECONDS
            while tracker.pending() and time.monotonic() < deadline:
                time.sleep(1)
            time.sleep(2)  # late duplicates, if any, would show in the call log now
            tracker.stop()
            dlq_depth = queue_depth(settings.rabbitmq_dlq)
            queue_left = queue_depth(settings.rabbitmq_queue)
    finally:
        tracker.stop()
        bridge.terminate()
        worker.terminate()
        stack.stop()
        ensure_redis()
        ensure_rabbitmq()
        cleanup_run(run_id)

    report = analyse(tracker, tally, calls_log, plan, dlq_depth, queue_left)
    print("\n" + report)
    REPORT.write_text(report)
    assert not plan.errors, plan.errors
    lost = tracker.pending()
    assert not lost, f"{len(lost)} accepted messages never reached a final state"
    assert not [k for k in tally if k.startswith("HTTP") or k == "transport error"], tally
    assert all(f.error_code for f in tracker.finals.values() if f.status == "failed")
    assert RESULTS["duplicates"] == 0
    assert RESULTS["reordered"] == 0
    assert dlq_depth == 0 and queue_left == 0


RESULTS: dict[str, int] = {}


def analyse(
    tracker: Tracker, tally: Counter[str], calls_log: Path, plan: FaultPlan, dlq_depth: int, queue_left: int
) -> str:
    starts, successes = read_calls(calls_log)
    finals = tracker.finals
    wipe = next(((s, e) for name, s, e in plan.done if name.startswith("Redis")), (0.0, 0.0))
    # Agent calls that started after the message was completed once: the exactly-once violation.
    # The completion record lives in Redis: a redelivery after SHUTDOWN NOSAVE finds no record and
    # calls the agent again. Those are reported apart (deployments keep Redis persistent/replicated).
    duplicates = duplicates_across_wipe = 0
    for a in tracker.accepted:
        f = finals.get(a.message_id)
        if f is None or f.status != "completed":
            continue
        late = [start for start in starts.get(a.message_id, []) if start > f.finished_at + 0.001]
        if not late:
            continue
        if f.finished_at < wipe[1] and any(start > wipe[0] for start in late):
            duplicates_across_wipe += 1
        else:
            duplicates += 1
    repeated = sum(1 for calls in starts.values() if len(calls) > 1)
    by_user: dict[str, list[Accepted]] = defaultdict(list)
    for a in tracker.accepted:
        by_user[a.user].append(a)
    reordered = across_wipe = 0
    for accepted in by_user.values():
        done = [
            (a, successes[a.message_id][-1])
            for a in sorted(accepted, key=lambda x: x.index)
            if finals.get(a.message_id, Final("", None, 0)).status == "completed"
            and successes.get(a.message_id)
        ]
        for (first, first_end), (second, second_end) in itertools.pairwise(done):
            if first_end <= second_end:
                continue
            # Order state lives in Redis: messages accepted before the wipe and answered after it
            # are processed unordered (their epoch is gone); reported, not asserted.
            # Either message may be the one that lost its epoch.
            if any(m.at < wipe[1] and end > wipe[0] for m, end in ((first, first_end), (second, second_end))):
                across_wipe += 1
            else:
                reordered += 1
    failed = Counter(f.error_code or "?" for f in finals.values() if f.status == "failed")
    completed = sum(1 for f in finals.values() if f.status == "completed")
    RESULTS.update(duplicates=duplicates, reordered=reordered)
    rows = [
        ("messages sent", str(len(tracker.accepted) + sum(tally.values()))),
        ("accepted (2xx)", str(len(tracker.accepted))),
        ("refused by the webhook (503)", str(tally["refused 503"])),
        ("other webhook answers", str(sum(v for k, v in tally.items() if k != "refused 503"))),
        ("completed", str(completed)),
        *[(f"failed: {code}", str(count)) for code, count in sorted(failed.items())],
        ("not final (lost)", str(len(tracker.pending()))),
        ("agent calls", str(sum(len(v) for v in starts.values()))),
        ("messages with more than one agent call (crash/transient retries)", str(repeated)),
        ("duplicates: agent calls after the message completed", str(duplicates)),
        (
            "agent called again after the Redis wipe lost its record (not asserted)",
            str(duplicates_across_wipe),
        ),
        ("reordered (per-user answer order != acceptance order)", str(reordered)),
        ("reordered across the Redis wipe (order state lost; not asserted)", str(across_wipe)),
        ("poison messages injected", "2"),
        ("left in user_messages / user_messages_dlq", f"{queue_left} / {dlq_depth}"),
    ]
    faults = ", ".join(f"{name} at +{start - plan.done[0][1] + 5:.0f}s" for name, start, _ in plan.done)
    width = max(len(name) for name, _ in rows)
    table = [f"| {'count'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    table += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(
        [
            "# Fault-injection run",
            "",
            f"{len(tracker.accepted) + sum(tally.values())} messages from {USERS} users over "
            f"{SEND_SECONDS:.0f} s through real Redis and RabbitMQ, the bridge and the worker as separate "
            "processes, the mock agent failing transiently 5% of the time.",
            "",
            f"Faults: {faults}.",
            "",
            *table,
            "",
        ]
    )
