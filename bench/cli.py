"""``python -m bench [--smoke] [--out bench/results] [--plots docs/bench]``."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, sections
from bench.drivers import wrk_available, wrk_version
from bench.stack import ROOT, Backends, compile_sources

SECTIONS: list[tuple[str, Callable[[sections.Context], dict[str, Any]]]] = [
    ("cold_start", sections.cold_start),
    ("webhook", sections.webhook_vs_bare),
    ("end_to_end", sections.end_to_end),
    ("worker", sections.worker_throughput),
    ("scaling", sections.scaling),
]


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "shared", "functions")),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _clean(value: Any) -> Any:
    """JSON has no NaN: write ``null`` instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run that proves the harness works")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "bench", help="where the PNGs go")
    parser.add_argument(
        "--only", action="append", choices=[name for name, _ in SECTIONS], help="run only these sections"
    )
    args = parser.parse_args(argv)

    plan = sections.Plan.for_mode(args.smoke)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    ctx = sections.Context(plan=plan, backends=Backends.from_env(), log_dir=args.out / "logs" / stamp)
    results: dict[str, Any] = {
        "timestamp": stamp,
        "mode": "smoke" if args.smoke else "full",
        "machine": machine(),
        "load_generators": {
            "max_throughput": f"wrk ({wrk_version()})"
            if wrk_available()
            else "python-threads (bench.loadgen)",
            "fixed_rate_and_e2e": "python-threads (bench.loadgen, open loop, latency from scheduled start)",
        },
        "plan": {k: v for k, v in vars(plan).items()},
    }
    compile_sources()
    began = time.perf_counter()
    # The machine may be shared: record its load around each section so a noisy run can be recognised.
    results["loadavg_1m"] = {"start": os.getloadavg()[0]}
    for name, run in SECTIONS:
        if args.only and name not in args.only:
            continue
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        results[name] = run(ctx)
        results["loadavg_1m"][name] = os.getloadavg()[0]
        print(f"[bench] {name} done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    results["memory"] = ctx.memory
    results["duration_s"] = time.perf_counter() - began
    complete = all(name in results for name, _ in SECTIONS)
    if complete:
        results["targets"] = [row.as_dict() for row in report.rows(results)]
        results["plots"] = [str(p) for p in report.plot(results, args.plots)]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stamp}.json"
    path.write_text(json.dumps(_clean(results), indent=1, ensure_ascii=False))
    if complete:
        print(report.table(results))
        print()
        print(report.details(results))
    print(f"\nresults: {path}", file=sys.stderr)
    return 0
