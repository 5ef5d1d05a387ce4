"""Load drivers: `wrk` (closed loop) when installed, else the Python generator; each in its own process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.loadgen import Spec
from bench.stack import ROOT, Proc, memory_mb

WEBHOOK_PATH = "/api/v1/message/webhook/user"
POLL_PATH = "/api/v1/message/response"
WEBHOOK_BODY: dict[str, Any] = {
    "user_number": "5521999990000",
    "message": "Olá! Qual o horário de funcionamento da clínica da família?",
    "metadata": {"source": "bench"},
}

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
%(headers)s
local counter = 0
request = function()
  counter = counter + 1
  local body = string.gsub(wrk.body, "5521999990000", string.format("55%%011d", counter))
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write("WRKJSON ")
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"non2xx":%%d,"connect_errors":%%d,"read_errors":%%d,' ..
    '"write_errors":%%d,"timeouts":%%d,"p50_us":%%d,"p95_us":%%d,"p99_us":%%d,"mean_us":%%f,"max_us":%%d}\\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read, errors.write,
    errors.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max))
end
"""


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no data."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    found = shutil.which("wrk")
    if not found:
        return ""
    output = subprocess.run([found, "-v"], capture_output=True, text=True, timeout=5)
    return (
        (output.stdout or output.stderr).splitlines()[0].strip()
        if (output.stdout or output.stderr)
        else "wrk"
    )


def closed_loop(
    url: str, *, body: dict[str, Any] | None, headers: dict[str, str], duration: float, connections: int
) -> dict[str, Any]:
    """Maximum throughput: ``connections`` back-to-back clients for ``duration`` seconds."""
    if wrk_available():
        return _wrk(url, body=body, headers=headers, duration=duration, connections=connections)
    result = python_load(
        Spec(
            mode="closed",
            url=url,
            body=body,
            headers=headers,
            duration=duration,
            concurrency=connections,
            method="POST" if body else "GET",
        )
    )
    return summarize(result)


def _wrk(
    url: str, *, body: dict[str, Any] | None, headers: dict[str, str], duration: float, connections: int
) -> dict[str, Any]:
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = _WRK_SCRIPT % {"body": json.dumps(body or {}), "headers": header_lines}
    if body is None:
        script = script.replace('wrk.method = "POST"', 'wrk.method = "GET"').replace(
            "return wrk.format(nil, nil, nil, body)", "return wrk.format(nil, nil, nil, nil)"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = handle.name
    try:
        seconds = max(round(duration), 1)
        completed = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", path, url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    finally:
        Path(path).unlink(missing_ok=True)
    line = next((x for x in completed.stdout.splitlines() if x.startswith("WRKJSON ")), "")
    if not line:
        raise RuntimeError(f"wrk gave no result: {completed.stdout[-500:]} {completed.stderr[-500:]}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    elapsed = raw["duration_us"] / 1e6
    errors = (
        raw["non2xx"] + raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    )
    ok = max(raw["requests"] - errors, 0)
    return {
        "generator": f"wrk -t1 -c{connections} -d{seconds}s ({wrk_version()})",
        "requests": raw["requests"],
        "ok": ok,
        "errors": errors,
        "elapsed_s": elapsed,
        "throughput_rps": ok / elapsed if elapsed else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
    }


def python_load(spec: Spec) -> dict[str, Any]:
    """Run :mod:`bench.loadgen` in its own process and return its raw JSON."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", json.dumps(asdict(spec))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=spec.duration + spec.grace + 120,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed: {completed.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def summarize(result: dict[str, Any], key: str = "latency_s") -> dict[str, Any]:
    """Throughput and latency percentiles (ms) of a :mod:`bench.loadgen` result."""
    values = result[key]
    service = result.get("service_s", [])
    return {
        "generator": result["generator"],
        "requests": result["requests"],
        "ok": result["ok"],
        "errors": result["requests"] - result["ok"],
        "statuses": result["statuses"],
        "elapsed_s": result["elapsed_s"],
        "target_rate": result.get("target_rate"),
        "throughput_rps": result["achieved_rate"],
        "p50_ms": percentile(values, 50) * 1000,
        "p95_ms": percentile(values, 95) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values, default=float("nan")) * 1000,
        "service_p99_ms": percentile(service, 99) * 1000,
    }


class MemorySampler:
    """Peak memory of some processes while a block runs (sampled every ``interval`` seconds)."""

    def __init__(self, procs: list[Proc], interval: float = 0.25) -> None:
        self.procs = procs
        self.interval = interval
        self.peak: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for proc in self.procs:
            now = memory_mb(proc)
            best = self.peak.get(proc.name)
            if best is None or now["rss_mb"] > best["rss_mb"]:
                self.peak[proc.name] = now

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
