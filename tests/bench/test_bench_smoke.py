"""The bench harness runs end to end (``python -m bench --smoke``); nothing here is about speed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_smoke_run_writes_every_section(tmp_path: Path) -> None:
    out, plots = tmp_path / "results", tmp_path / "plots"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--plots", str(plots)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    files = sorted(out.glob("*.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text())

    assert result["mode"] == "smoke"
    for section in (
        "machine",
        "webhook",
        "end_to_end",
        "worker",
        "cold_start",
        "memory",
        "scaling",
        "targets",
    ):
        assert section in result, section
    web = result["webhook"]
    for kind in ("bare", "webhook"):
        for field in ("throughput_rps", "p50_ms", "p95_ms", "p99_ms"):
            assert _number(web[kind][field]), (kind, field)
            assert _number(web["fixed_rate"][kind][field]), ("fixed", kind, field)
    assert web["floor"]["errors"] == 0 and _number(web["floor"]["throughput_rps"])
    assert _number(web["webhook_to_bare_ratio"]) and _number(web["floor_to_bare_ratio"])
    for field in ("p50_ms", "p99_ms", "accepted", "completed"):
        assert _number(result["end_to_end"][field]), field
    for field in ("throughput_mps", "ideal_mps", "ratio_to_ideal"):
        assert _number(result["worker"][field]), field
    for name in ("webhook", "worker", "poll", "bare"):
        assert _number(result["cold_start"][name]["median_s"]), name
    for name in ("webhook", "poll", "bare"):
        cold = result["cold_start"][name]
        assert cold["first_request_median_s"] >= cold["median_s"], name
    for name in ("webhook", "worker", "poll"):
        for state in ("idle", "loaded"):
            assert _number(result["memory"][name][state]["rss_mb"]), (name, state)
    points = result["scaling"]["points"]
    assert len({(p["max_parallel"], p["worker_processes"]) for p in points}) >= 2
    assert all(_number(p["throughput_mps"]) for p in points)
    for row in result["targets"]:
        assert _number(row["measured"]) and _number(row["target"]) and isinstance(row["pass"], bool), row
    assert "| metric |" in completed.stdout
    assert {Path(p).name for p in result["plots"]} >= {"webhook_vs_bare.png", "scaling.png"}
    assert all(Path(p).is_file() for p in result["plots"])
