"""The Python load generator, run in its own process: ``python -m bench.loadgen '<json spec>'``.

Threads with one keep-alive ``http.client`` connection each. Modes:

``rate``    open loop at a fixed rate; latency is measured from each request's *scheduled* time, so a
            server that falls behind shows up as latency (no coordinated omission).
``closed``  ``concurrency`` connections sending back to back for ``duration`` seconds or ``count`` requests.
``e2e``     open loop on the webhook; after each 2xx, poll the poll function every ``poll_interval``
            until the result is readable (200), recording accepted -> readable.

Prints one JSON document on stdout. Bounded: every mode stops at ``duration`` (plus ``grace``) or ``count``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Spec:
    mode: str
    url: str
    method: str = "POST"
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    rate: float = 100.0
    duration: float = 5.0
    count: int = 0
    concurrency: int = 16
    threads: int = 32
    poll_url: str = ""
    poll_interval: float = 0.004
    poll_timeout: float = 10.0
    grace: float = 15.0
    unique_user: bool = True


class Client:
    """One keep-alive connection to one host, reopened after any error."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, data
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    return 0, b""
        return 0, b""


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _body(spec: Spec) -> bytes | None:
    if spec.body is None:
        return None
    document = dict(spec.body)
    if spec.unique_user and "user_number" in document:
        document["user_number"] = "55" + str(uuid.uuid4().int)[:11]
    return json.dumps(document).encode()


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.service: list[float] = []
        self.e2e: list[float] = []
        self.e2e_from_send: list[float] = []
        self.statuses: dict[str, int] = {}
        self.polls = 0
        self.unfinished = 0
        self.ids: list[str] = []

    def status(self, code: int) -> None:
        with self.lock:
            self.statuses[str(code)] = self.statuses.get(str(code), 0) + 1


def run(spec: Spec) -> dict[str, Any]:
    recorder = Recorder()
    counter = itertools.count()
    path = _path(spec.url)
    headers = {"Content-Type": "application/json", **spec.headers}
    started = time.perf_counter() + 0.05
    end = started + spec.duration
    hard_stop = end + spec.grace
    workers = spec.concurrency if spec.mode == "closed" else spec.threads

    def worker() -> None:
        client = Client(spec.url)
        poller = Client(spec.poll_url) if spec.mode == "e2e" else None
        while True:
            index = next(counter)
            if spec.count and index >= spec.count:
                return
            if spec.mode == "closed":
                due = time.perf_counter()
                if not spec.count and due >= end:
                    return
            else:
                due = started + index / spec.rate
                if due >= end:
                    return
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if time.perf_counter() > hard_stop:
                return
            sent = time.perf_counter()
            status, data = client.request(spec.method, path, _body(spec), headers)
            done = time.perf_counter()
            recorder.status(status)
            with recorder.lock:
                recorder.latencies.append(done - due)
                recorder.service.append(done - sent)
            if not 200 <= status < 300:
                continue
            message_id = _message_id(data)
            if message_id:
                with recorder.lock:
                    recorder.ids.append(message_id)
            if poller is not None and message_id:
                _poll(poller, spec, message_id, done, sent, recorder)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(hard_stop - time.perf_counter(), 0) + 1)
    elapsed = max(min(time.perf_counter(), hard_stop) - started, 1e-9)
    ok = sum(n for code, n in recorder.statuses.items() if code.startswith("2"))
    with recorder.lock:
        return {
            "mode": spec.mode,
            "generator": "python-threads (bench.loadgen, http.client keep-alive)",
            "elapsed_s": elapsed,
            "requests": sum(recorder.statuses.values()),
            "ok": ok,
            "statuses": dict(recorder.statuses),
            "target_rate": spec.rate if spec.mode != "closed" else None,
            "achieved_rate": ok / elapsed,
            "latency_s": list(recorder.latencies),
            "service_s": list(recorder.service),
            "e2e_s": list(recorder.e2e),
            "e2e_from_send_s": list(recorder.e2e_from_send),
            "polls": recorder.polls,
            "unfinished": recorder.unfinished,
            "ids": list(recorder.ids),
        }


def _message_id(data: bytes) -> str:
    try:
        document = json.loads(data)
    except ValueError:
        return ""
    value = document.get("message_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else ""


def _poll(poller: Client, spec: Spec, message_id: str, accepted: float, sent: float, rec: Recorder) -> None:
    path = _path(spec.poll_url) + f"?message_id={message_id}"
    deadline = accepted + spec.poll_timeout
    polls = 0
    interval = spec.poll_interval
    while time.perf_counter() < deadline:
        time.sleep(interval)
        # Geometric back-off (x1.5, capped at 50 ms): fine resolution where the targets are (≤ 50 ms)
        # without the poller itself loading the 2 cores once the system falls behind.
        interval = min(interval * 1.5, 0.05)
        status, _ = poller.request("GET", path, None, spec.headers)
        polls += 1
        if status == 200:
            now = time.perf_counter()
            with rec.lock:
                rec.e2e.append(now - accepted)
                rec.e2e_from_send.append(now - sent)
                rec.polls += polls
            return
    with rec.lock:
        rec.unfinished += 1
        rec.polls += polls


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = Spec(**json.loads(args[0]))
    json.dump(run(spec), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
