"""Start and stop the functions (functions-framework + gunicorn) and the bridge as separate processes.

Each section runs in its own :class:`Namespace`: unique RabbitMQ exchange/queue names and a unique
Redis key prefix, deleted afterwards, so bench runs never see each other's (or tests') messages.
"""

from __future__ import annotations

import compileall
import contextlib
import os
import py_compile
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

FUNCTIONS: dict[str, tuple[str, str]] = {
    "webhook": ("webhook", "functions/webhook/main.py"),
    "worker": ("worker", "functions/worker/main.py"),
    "poll": ("poll", "functions/poll/main.py"),
    "bare": ("bare", "bench/bare/main.py"),
    "floor": ("floor", "bench/floor/main.py"),
}

# Settings of features merged by others (auth, rate limiting) are passed through from the caller's
# environment, so "all its work" includes them once they exist.
PASSTHROUGH_PREFIXES = ("AUTH_", "RATE_LIMIT_", "API_TOKEN", "API_KEYS", "JWT_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Backends:
    redis_url: str = "redis://127.0.0.1:6379/0"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    token: str = field(default_factory=lambda: "bench-" + uuid.uuid4().hex)

    @classmethod
    def from_env(cls) -> Backends:
        return cls(
            redis_url=os.environ.get("BENCH_REDIS_URL", cls.redis_url),
            rabbitmq_url=os.environ.get("BENCH_RABBITMQ_URL", cls.rabbitmq_url),
            token=os.environ.get("API_TOKEN") or "bench-" + uuid.uuid4().hex,
        )

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Namespace:
    """Unique names for one section; :meth:`cleanup` deletes everything they named."""

    backends: Backends
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def queue(self) -> str:
        return f"bench_{self.tag}_user_messages"

    def env(self) -> dict[str, str]:
        return {
            "REDIS_URL": self.backends.redis_url,
            "RABBITMQ_URL": self.backends.rabbitmq_url,
            "REDIS_KEY_PREFIX": f"bench:{self.tag}:",
            "RABBITMQ_EXCHANGE": f"bench_{self.tag}_exchange",
            "RABBITMQ_DLX_EXCHANGE": f"bench_{self.tag}_dlx",
            "RABBITMQ_USER_MESSAGES_QUEUE": self.queue,
            "RABBITMQ_DLQ": f"bench_{self.tag}_user_messages_dlq",
            "AGENT_PROVIDER": "mock",
            "MOCK_AGENT_LATENCY_MS": "0",
            "API_TOKEN": self.backends.token,
            "AUTH_DISABLED": "false",
            # The limiter runs on every request (its Redis round trip is part of the measured work),
            # with budgets far above the load so that no request is refused.
            "RATE_LIMIT_ENABLED": "true",
            "RATE_LIMIT_REQUESTS_PER_MINUTE": "100000000",
            "RATE_LIMIT_BURST": "100000000",
            "RATE_LIMIT_PER_USER_NUMBER_PER_MINUTE": "100000",
        }

    def cleanup(self) -> None:
        env = self.env()
        client = redis.Redis.from_url(self.backends.redis_url)
        try:
            keys = list(client.scan_iter(match=env["REDIS_KEY_PREFIX"] + "*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()
        connection = pika.BlockingConnection(pika.URLParameters(self.backends.rabbitmq_url))
        try:
            channel = connection.channel()
            for queue in _bench_queues(self.backends.rabbitmq_url, self.tag) | {
                env["RABBITMQ_USER_MESSAGES_QUEUE"],
                env["RABBITMQ_DLQ"],
            }:
                channel.queue_delete(queue)
            for exchange in (env["RABBITMQ_EXCHANGE"], env["RABBITMQ_DLX_EXCHANGE"]):
                channel.exchange_delete(exchange)
        finally:
            connection.close()


def _bench_queues(url: str, tag: str) -> set[str]:
    """Retry queues (``<queue>.retry.<ms>``) the bridge may have declared: ask rabbitmqctl, if present."""
    try:
        listed = subprocess.run(
            ["rabbitmqctl", "list_queues", "-q", "name"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line.strip() for line in listed.stdout.splitlines() if line.strip().startswith(f"bench_{tag}_")}


class Proc:
    """One started process (a function under gunicorn, or the bridge) and its log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, port: int = 0) -> None:
        self.name = name
        self.port = port
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{port or 'x'}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_live(self, timeout: float = 30.0, path: str = "/live") -> float:
        """Seconds from process start to the first 2xx on ``path``."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=1) as response:  # noqa: S310
                    if 200 <= response.status < 300:
                        return time.perf_counter() - self.started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} not live after {timeout}s; see {self.log_path}")

    def pids(self) -> list[int]:
        """This process and all its descendants (gunicorn master and workers)."""
        return [self.popen.pid, *descendants(self.popen.pid)]

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._log.close()


def compile_sources() -> None:
    """Byte-compile the functions and the library as ``make package`` ships them (checked hashes).

    A deployed bundle carries its bytecode, so a cold start there loads it rather than compiling the
    sources; measuring with stale or missing caches (``PYTHONDONTWRITEBYTECODE`` is set on some
    machines) would time the compiler instead.
    """
    for folder in ("shared", "functions", "bench/bare", "bench/floor"):
        compileall.compile_dir(
            ROOT / folder,
            quiet=1,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )


def function_env(ns: Namespace, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "API_TOKEN"}
    env.update(ns.env())
    env.update({k: v for k, v in os.environ.items() if k.startswith(PASSTHROUGH_PREFIXES)})
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def start_function(
    kind: str,
    ns: Namespace,
    log_dir: Path,
    *,
    workers: int = 1,
    threads: int = 8,
    extra: dict[str, str] | None = None,
) -> Proc:
    """``functions-framework --target <fn> --source <file>``: the production (gunicorn) server."""
    target, source = FUNCTIONS[kind]
    port = free_port()
    env = function_env(ns, {"WORKERS": str(workers), "THREADS": str(threads), **(extra or {})})
    argv = [
        str(BIN / "functions-framework"),
        "--target",
        target,
        "--source",
        source,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return Proc(kind, argv, env, log_dir, port)


def start_bridge(ns: Namespace, log_dir: Path, *, worker_url: str, max_parallel: int) -> Proc:
    env = function_env(ns, {"WORKER_URL": worker_url, "MAX_PARALLEL": str(max_parallel)})
    return Proc("bridge", [sys.executable, "-m", "shared.bridge"], env, log_dir)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """RSS and PSS of one process, in kB (0 when it is gone)."""
    result = {"rss": 0, "pss": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                result[name.lower()] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return result


def memory_mb(proc: Proc) -> dict[str, Any]:
    """Memory of a function: the largest single process (the serving worker) and the whole tree."""
    per = {pid: memory_kb(pid) for pid in proc.pids()}
    return {
        "rss_mb": max((m["rss"] for m in per.values()), default=0) / 1024,
        "tree_rss_mb": sum(m["rss"] for m in per.values()) / 1024,
        "tree_pss_mb": sum(m["pss"] for m in per.values()) / 1024,
        "processes": len(per),
    }
