"""Cold start: functions load with the cyclic collector paused, then resume it and freeze what they loaded."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.startup import loading

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def collector() -> Iterator[None]:
    """Leave the process's collector as the test found it."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


def test_loading_pauses_the_collector_then_resumes_it_and_freezes_what_was_loaded(collector: None) -> None:
    gc.unfreeze()
    with loading():
        assert not gc.isenabled()
        loaded = [{"n": n} for n in range(5000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(loaded)


def test_a_function_that_fails_to_load_leaves_the_collector_running(collector: None) -> None:
    with pytest.raises(ValueError, match="bad setting"), loading():
        raise ValueError("bad setting")
    assert gc.isenabled()


def test_a_paused_collector_stays_paused(collector: None) -> None:
    gc.disable()
    with loading():
        pass
    assert not gc.isenabled()


@pytest.mark.parametrize("name", ["webhook", "worker", "poll"])
def test_each_function_loads_without_collections_and_ends_with_the_collector_on(name: str) -> None:
    probe = f"""
import gc, json, sys
import functions_framework
gc.collect()
before = [s["collections"] for s in gc.get_stats()]
functions_framework.create_app({name!r}, {str(ROOT / "functions" / name / "main.py")!r}, "http")
after = [s["collections"] for s in gc.get_stats()]
print(json.dumps({{"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                   "collections": sum(after) - sum(before)}}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RABBITMQ_URL")}
    env.update({"PYTHONPATH": str(ROOT), "API_TOKEN": "startup-test-token-0123456789"})
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["enabled"] is True
    assert state["frozen"] > 100_000  # the libraries and the runtime, frozen once loaded
    assert state["collections"] <= 2  # without the pause: ~170 while the libraries load
