"""Test helpers: real-backend settings per test run, a local HTTP server, waiting for results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import pika
import pytest
import redis

from shared.config import Settings, load_settings

REDIS_URL = "redis://127.0.0.1:6379/0"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

T = TypeVar("T")

TEST_TOKEN = "test-admin-token-" + "x" * 24
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}
api = httpx.Client(headers=AUTH, timeout=30)  # an authenticated client of the gateway under test


DIGITS = ("one", "two", "three", "four", "five")

# CI installs every tool the tests use (.ci/run): there a missing tool is a failure, not a skip.
IN_CI = os.environ.get("CI", "").lower() == "true"


def needs_tools(*commands: str, reason: str) -> pytest.MarkDecorator:
    """Skip on a developer machine without ``commands``; in CI, run (and fail) anyway."""
    missing = any(shutil.which(command) is None for command in commands)
    return pytest.mark.skipif(missing and not IN_CI, reason=reason)


def missing_tool(reason: str) -> NoReturn:
    """Skip outside CI; fail in CI, where every tool is installed on purpose."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


needs_speech_tools = needs_tools(
    "espeak-ng", "ffmpeg", reason="needs the Debian packages espeak-ng and ffmpeg (.ci/run installs them)"
)


def speak_digits(folder: Path) -> Path:
    """'one two three four five' spoken by espeak-ng, encoded as OGG/Opus like a WhatsApp voice note.

    Spoken digits are what pocketsphinx's bundled English model recognises reliably.
    """
    wav, ogg = folder / "digits.wav", folder / "digits.ogg"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "110", " ".join(DIGITS), "-w", str(wav)], check=True)
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "libopus", "-b:a", "24k", str(ogg)],
        check=True,
    )
    return ogg


def new_run_id() -> str:
    return "t" + uuid.uuid4().hex[:10]


def real_settings(run_id: str, **overrides: Any) -> Settings:
    """Settings on the real Redis and RabbitMQ, with names no other test run uses."""
    values: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "rabbitmq_url": RABBITMQ_URL,
        "redis_key_prefix": f"{run_id}:",
        "rabbitmq_exchange": f"{run_id}.eai_gateway",
        "rabbitmq_dlx_exchange": f"{run_id}.eai_gateway_dlx",
        "rabbitmq_queue": f"{run_id}.user_messages",
        "rabbitmq_dlq": f"{run_id}.user_messages_dlq",
        "agent_provider": "mock",
        "log_format": "text",
        "api_token": TEST_TOKEN,
    }
    values.update(overrides)
    return load_settings(**values)


def embedded_settings(**overrides: Any) -> Settings:
    # The embedded fakeredis server lives as long as the test process, the in-memory queue only as
    # long as one stack: a fresh key prefix keeps one stack's per-user order state from the next.
    values: dict[str, Any] = {
        "redis_key_prefix": f"{new_run_id()}:",
        "redis_url": None,
        "rabbitmq_url": None,
        "agent_provider": "mock",
        "api_token": TEST_TOKEN,
    }
    values.update(overrides)
    return load_settings(**values)


def cleanup_run(run_id: str) -> None:
    """Delete every Redis key, queue and exchange a test run created."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{run_id}:*", count=1000))
    if keys:
        client.delete(*keys)
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True, check=False
    ).stdout.split()
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    for queue in listed:
        if queue.startswith(run_id):
            channel.queue_delete(queue)
    for exchange in (f"{run_id}.eai_gateway", f"{run_id}.eai_gateway_dlx"):
        channel.exchange_delete(exchange)
    connection.close()


def wait_for(check: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def poll_until_final(base_url: str, message_id: str, *, timeout: float = 20.0) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        response = api.get(f"{base_url}/api/v1/message/response", params={"message_id": message_id})
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 else None

    return wait_for(final, timeout=timeout)


class RecordingServer:
    """A local HTTP server answering every POST with ``status`` and recording the JSON bodies."""

    def __init__(self, status: int | Callable[[dict[str, Any]], int] = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                recorder.bodies.append(body)
                code = recorder.status(body) if callable(recorder.status) else recorder.status
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    @contextmanager
    def running(self) -> Iterator[RecordingServer]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
