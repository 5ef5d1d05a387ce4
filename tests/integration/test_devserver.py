"""``make dev``: the stack restarts when a watched file changes, with the same token."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from shared.localstack import ROOT
from tests.helpers import TEST_TOKEN, wait_for


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_stack_restarts_on_change(tmp_path: Path) -> None:
    watched = tmp_path / "src"
    watched.mkdir()
    module = watched / "module.py"
    module.write_text("VALUE = 1\n")
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "RABBITMQ"))}
    environ.update({"PORT": str(port), "HOST": "127.0.0.1", "API_TOKEN": TEST_TOKEN, "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.localstack", "--reload", "--watch", str(watched)],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []

    def saw(text: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(text in line for line in seen)

    try:
        wait_for(lambda: saw("listening on"), timeout=30)
        live = f"http://127.0.0.1:{port}/live"
        assert httpx.get(live).status_code == 200
        time.sleep(1.0)  # mtime granularity
        module.write_text("VALUE = 2\n")
        wait_for(lambda: saw("restarting the stack"), timeout=15)
        wait_for(lambda: saw("") and sum("listening on" in line for line in seen) >= 2, timeout=30)
        assert _up(live)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0
    assert not _up(f"http://127.0.0.1:{port}/live")  # the child stopped with the parent


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
