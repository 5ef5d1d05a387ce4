"""``make dev``: the local stack in a child process, restarted whenever a source file changes.

``python -m shared.localstack --reload [--watch DIR ...]`` watches ``shared/`` and ``functions/``
(``.py``, ``.html``, ``.js``, ``.css``) by polling modification times, so it needs no extra
package and works on every file system (bind mounts, network shares). A stack that crashes (say, a
syntax error) is restarted at the next change. The admin token is chosen once, in this process, so
that it stays the same across restarts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.localstack import ROOT, _prepare_environment

WATCHED_SUFFIXES = frozenset({".py", ".html", ".js", ".css"})
POLL_INTERVAL_S = 0.5


def snapshot(roots: list[Path]) -> dict[Path, int]:
    """Modification time of every watched file under ``roots``."""
    seen: dict[Path, int] = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.suffix in WATCHED_SUFFIXES and "__pycache__" not in path.parts:
                try:
                    seen[path] = path.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
    return seen


def changed(before: dict[Path, int], after: dict[Path, int]) -> list[Path]:
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def _start() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "shared.localstack"], cwd=ROOT)


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _roots(args: list[str]) -> list[Path]:
    roots = [Path(args[i + 1]) for i, arg in enumerate(args[:-1]) if arg == "--watch"]
    return roots or [ROOT / "shared", ROOT / "functions"]


def main(args: list[str]) -> int:
    roots = _roots(args)
    token = _prepare_environment()
    if token:
        print(f"dev: local admin token for every restart: {token}", flush=True)
    print(f"dev: watching {', '.join(str(r) for r in roots)}; Ctrl-C stops", flush=True)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _frame: stopping.append(signum))
    files = snapshot(roots)
    child = _start()
    try:
        while not stopping:
            time.sleep(POLL_INTERVAL_S)
            current = snapshot(roots)
            edits = changed(files, current)
            if not edits:
                continue
            files = current
            shown = ", ".join(os.path.relpath(p, ROOT) for p in edits[:3])
            print(f"dev: change in {shown}; restarting the stack", flush=True)
            _stop(child)
            child = _start()
    finally:
        _stop(child)
    return 0
