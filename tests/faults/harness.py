"""Processes and faults for the fault-injection suite: a worker (functions-framework) and a bridge
(``python -m shared.bridge``) as separate processes, broker and Redis restarts, a callback recorder."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from shared.localstack import ROOT
from tests.helpers import REDIS_URL

REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379"]
REDIS_START += ["--save", "", "--appendonly", "no"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """A child process in its own session, so that SIGKILL takes its whole process group."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill does: nothing gets to clean up."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_service(env: dict[str, str], port: int, log: Path) -> Service:
    command = [sys.executable, "-m", "functions_framework", "--target", "worker"]
    command += ["--source", str(ROOT / "functions" / "worker" / "main.py"), "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    return Service("worker", command, env, log)


def bridge_service(env: dict[str, str], log: Path) -> Service:
    return Service("bridge", [sys.executable, "-m", "shared.bridge"], env, log)


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def restart_rabbitmq(down_s: float) -> None:
    """Stop the whole broker node and start it again, as an operator's restart would.

    (``stop_app``/``start_app`` is faster but once left RabbitMQ 3.10 without its Mnesia tables.)
    """
    subprocess.run(["rabbitmqctl", "-q", "stop"], check=False, capture_output=True)
    time.sleep(down_s)
    ensure_rabbitmq()


def restart_redis(down_s: float) -> None:
    """SHUTDOWN NOSAVE (every key is lost, as on a restart without persistence), then start again."""
    with contextlib.suppress(redis.ConnectionError):  # the connection drops as the server exits
        redis.Redis.from_url(REDIS_URL).shutdown(nosave=True)
    time.sleep(down_s)
    ensure_redis()


def ensure_redis() -> None:
    """Start Redis when it is not running (also the safety net at the end of the suite)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
        return
    except redis.ConnectionError:
        subprocess.run(REDIS_START, check=True, capture_output=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("Redis did not come back")


def ensure_rabbitmq() -> None:
    """Start the broker node when it is down and wait until it serves its vhost (never leave it down)."""
    for _ in range(3):
        if not _amqp_port_open():
            _start_rabbitmq()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            listed = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True)
            if listed.returncode == 0 and "/" in listed.stdout.split() and _amqp_port_open():
                return
            time.sleep(0.5)
        subprocess.run(["rabbitmqctl", "-q", "stop"], check=False, capture_output=True)  # broken: restart
    _start_rabbitmq()
    raise AssertionError("RabbitMQ did not come back with its vhost")


# Debian's rabbitmq-server switches to the rabbitmq user through su, which resets the soft limit;
# raise it in that user's shell instead.
START_RABBITMQ = (
    "if id rabbitmq >/dev/null 2>&1 && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then "
    'su rabbitmq -s /bin/sh -c \'ulimit -n "$(ulimit -Hn)"; cd /var/lib/rabbitmq; '
    "/usr/lib/rabbitmq/bin/rabbitmq-server -detached'; "
    "else rabbitmq-server -detached; fi"
)


def _start_rabbitmq() -> None:
    """Start the node with the hard file-descriptor limit: with the default soft limit (1024) a
    burst of connections leaves Mnesia unable to open its tables ("no_exists rabbit_vhost")."""
    subprocess.run(["bash", "-c", START_RABBITMQ], check=False, capture_output=True)


def _amqp_port_open() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 5672), timeout=1):
        return True
    return False


class FaultPlan:
    """Runs ``(at_seconds, name, action)`` steps in order on a thread; records when each happened."""

    def __init__(self, steps: list[tuple[float, str, Callable[[], Any]]]) -> None:
        self.steps = steps
        self.done: list[tuple[str, float, float]] = []  # name, started, ended (wall clock)
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="faults")

    def start(self) -> FaultPlan:
        self._begin = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        for at, name, action in self.steps:
            time.sleep(max(0.0, self._begin + at - time.monotonic()))
            started = time.time()
            try:
                action()
            except Exception as exc:
                self.errors.append(f"{name}: {exc!r}")
            self.done.append((name, started, time.time()))

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
