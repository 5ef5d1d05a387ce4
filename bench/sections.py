"""The six measurements of issue 7. Each starts its own processes in its own namespace and cleans up."""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.drivers import (
    POLL_PATH,
    WEBHOOK_BODY,
    WEBHOOK_PATH,
    MemorySampler,
    closed_loop,
    percentile,
    python_load,
    summarize,
)
from bench.loadgen import Spec
from bench.stack import Backends, Namespace, Proc, memory_mb, start_bridge, start_function


@dataclass(frozen=True)
class Plan:
    """How long and how hard each section runs (``smoke`` is seconds in total)."""

    smoke: bool
    server_workers: int = 1
    server_threads: int = 8
    throughput_duration: float = 10.0
    throughput_connections: int = 16
    throughput_rounds: int = 3
    fixed_rate: float = 500.0
    fixed_rate_duration: float = 20.0
    e2e_rate: float = 200.0
    e2e_duration: float = 60.0
    e2e_max_parallel: int = 16
    worker_latency_ms: float = 500.0
    worker_max_parallel: int = 64
    worker_messages: int = 2560
    cold_runs: int = 5
    scaling_latency_ms: float = 100.0
    scaling_parallel: tuple[int, ...] = (8, 16, 32, 64)
    scaling_processes: tuple[int, ...] = (1, 2)
    scaling_seconds: float = 6.0

    @classmethod
    def for_mode(cls, smoke: bool) -> Plan:
        if not smoke:
            return cls(smoke=False)
        return cls(
            smoke=True,
            throughput_duration=1.0,
            throughput_rounds=1,
            fixed_rate=100.0,
            fixed_rate_duration=1.0,
            e2e_rate=50.0,
            e2e_duration=2.0,
            worker_latency_ms=200.0,
            worker_max_parallel=16,
            worker_messages=64,
            cold_runs=1,
            scaling_latency_ms=50.0,
            scaling_parallel=(4,),
            scaling_processes=(1, 2),
            scaling_seconds=0.5,
        )


@dataclass
class Context:
    plan: Plan
    backends: Backends
    log_dir: Path
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)

    def remember(self, function: str, state: str, value: dict[str, Any]) -> None:
        current = self.memory.setdefault(function, {})
        previous = current.get(state)
        if previous is None or value["rss_mb"] > previous["rss_mb"]:
            current[state] = value


@contextmanager
def namespace(ctx: Context) -> Iterator[tuple[Namespace, list[Proc]]]:
    ns = Namespace(ctx.backends)
    procs: list[Proc] = []
    try:
        yield ns, procs
    finally:
        for proc in reversed(procs):
            proc.stop()
        ns.cleanup()


def _serve(ctx: Context, kind: str, ns: Namespace, procs: list[Proc], **kwargs: Any) -> Proc:
    kwargs.setdefault("workers", ctx.plan.server_workers)
    kwargs.setdefault("threads", ctx.plan.server_threads)
    proc = start_function(kind, ns, ctx.log_dir, **kwargs)
    procs.append(proc)
    proc.wait_live()
    return proc


# --- 1. webhook vs bare --------------------------------------------------------------------------


def webhook_vs_bare(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    headers = ctx.backends.auth_headers()
    rounds: dict[str, list[dict[str, Any]]] = {"bare": [], "floor": [], "webhook": []}
    fixed: dict[str, dict[str, Any]] = {}
    for _ in range(plan.throughput_rounds):
        for kind in rounds:
            with namespace(ctx) as (ns, procs):
                proc = _serve(ctx, kind, ns, procs)
                path = "/" if kind == "bare" else WEBHOOK_PATH
                closed_loop(  # warm-up: connections, imports on first request
                    proc.url + path, body=WEBHOOK_BODY, headers=headers, duration=1, connections=4
                )
                with MemorySampler([proc]) as sampler:
                    rounds[kind].append(
                        closed_loop(
                            proc.url + path,
                            body=WEBHOOK_BODY,
                            headers=headers,
                            duration=plan.throughput_duration,
                            connections=plan.throughput_connections,
                        )
                    )
                    if kind not in fixed and kind != "floor":
                        raw = python_load(
                            Spec(
                                mode="rate",
                                url=proc.url + path,
                                body=WEBHOOK_BODY,
                                headers=headers,
                                rate=plan.fixed_rate,
                                duration=plan.fixed_rate_duration,
                                threads=64,
                            )
                        )
                        fixed[kind] = summarize(raw) | {"latencies_ms": _sample_ms(raw["latency_s"])}
                if kind != "floor":
                    ctx.remember(kind, "loaded", sampler.peak[kind])
    best = {kind: _median_run(runs) for kind, runs in rounds.items()}
    ratio = best["webhook"]["throughput_rps"] / best["bare"]["throughput_rps"]
    return {
        "server": {
            "workers": plan.server_workers,
            "threads": plan.server_threads,
            "server": "gunicorn gthread",
        },
        "bare": best["bare"],
        "floor": best["floor"],
        "webhook": best["webhook"],
        "rounds": rounds,
        "webhook_to_bare_ratio": ratio,
        # The mandated work alone (bench/floor): what any accept path on this stack can reach.
        "floor_to_bare_ratio": best["floor"]["throughput_rps"] / best["bare"]["throughput_rps"],
        "fixed_rate": fixed,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: float(r["throughput_rps"]))
    return ordered[(len(ordered) - 1) // 2]


def _sample_ms(values: list[float], limit: int = 5000) -> list[float]:
    step = max(len(values) // limit, 1)
    return [round(v * 1000, 3) for v in values[::step]]


# --- 2. end to end -------------------------------------------------------------------------------


def end_to_end(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    with namespace(ctx) as (ns, procs):
        worker = _serve(ctx, "worker", ns, procs, threads=max(plan.e2e_max_parallel, 8))
        webhook = _serve(ctx, "webhook", ns, procs)
        poll = _serve(ctx, "poll", ns, procs)
        bridge = start_bridge(
            ns, ctx.log_dir, worker_url=worker.url + "/", max_parallel=plan.e2e_max_parallel
        )
        procs.append(bridge)
        time.sleep(1.0)  # the bridge declares the topology and starts consuming
        spec = Spec(
            mode="e2e",
            url=webhook.url + WEBHOOK_PATH,
            body=WEBHOOK_BODY,
            headers=ctx.backends.auth_headers(),
            rate=plan.e2e_rate,
            duration=plan.e2e_duration,
            threads=64,
            poll_url=poll.url + POLL_PATH,
            poll_interval=0.002,  # first poll; then x1.5 up to 50 ms
        )
        with MemorySampler([webhook, worker, poll, bridge]) as sampler:
            raw = python_load(spec)
        for name in ("webhook", "worker", "poll", "bridge"):
            ctx.remember(name, "loaded", sampler.peak[name])
    e2e = raw["e2e_s"]
    return {
        "generator": raw["generator"],
        "rate": plan.e2e_rate,
        "duration_s": plan.e2e_duration,
        "max_parallel": plan.e2e_max_parallel,
        "poll_interval_ms": spec.poll_interval * 1000,
        "poll_schedule": "first after 2 ms, then x1.5 per poll, capped at 50 ms (result is an upper bound)",
        "polls_per_message": raw["polls"] / max(len(raw["e2e_s"]), 1),
        "accepted": raw["ok"],
        "completed": len(e2e),
        "unfinished": raw["unfinished"],
        "statuses": raw["statuses"],
        "polls": raw["polls"],
        "accept_p50_ms": percentile(raw["service_s"], 50) * 1000,
        "accept_p99_ms": percentile(raw["service_s"], 99) * 1000,
        "p50_ms": percentile(e2e, 50) * 1000,
        "p95_ms": percentile(e2e, 95) * 1000,
        "p99_ms": percentile(e2e, 99) * 1000,
        "submit_to_readable_p50_ms": percentile(raw["e2e_from_send_s"], 50) * 1000,
        "submit_to_readable_p99_ms": percentile(raw["e2e_from_send_s"], 99) * 1000,
        "latencies_ms": _sample_ms(e2e),
    }


# --- 3 and 6. worker throughput ------------------------------------------------------------------


def drain_rate(
    ctx: Context,
    *,
    latency_ms: float,
    max_parallel: int,
    processes: int,
    messages: int,
    sample_memory: bool = False,
) -> dict[str, Any]:
    """Fill the queue through the webhook, then start the bridge and time the worker draining it."""
    with namespace(ctx) as (ns, procs):
        threads = max(max_parallel, 8)
        worker = _serve(
            ctx,
            "worker",
            ns,
            procs,
            workers=processes,
            threads=threads,
            extra={"MOCK_AGENT_LATENCY_MS": str(latency_ms)},
        )
        webhook = _serve(ctx, "webhook", ns, procs)
        fill = python_load(
            Spec(
                mode="closed",
                url=webhook.url + WEBHOOK_PATH,
                body=WEBHOOK_BODY,
                headers=ctx.backends.auth_headers(),
                count=messages,
                duration=120,
                concurrency=8,
            )
        )
        ids: list[str] = fill["ids"]
        prefix = ns.env()["REDIS_KEY_PREFIX"]
        keys = [f"{prefix}task:status:{i}" for i in ids]
        client = redis.Redis.from_url(ctx.backends.redis_url)
        samples: list[tuple[float, int]] = []
        bridge = start_bridge(ns, ctx.log_dir, worker_url=worker.url + "/", max_parallel=max_parallel)
        procs.append(bridge)
        started = time.perf_counter()
        ideal = max_parallel / (latency_ms / 1000)
        deadline = started + 30 + 3 * len(ids) / ideal
        sampler = MemorySampler([worker, bridge]) if sample_memory else None
        if sampler:
            sampler.__enter__()
        try:
            while time.perf_counter() < deadline:
                done = _count_done(client, keys)
                samples.append((time.perf_counter() - started, done))
                if done >= len(keys):
                    break
                time.sleep(0.05)
        finally:
            if sampler:
                sampler.__exit__(None, None, None)
                for name in ("worker", "bridge"):
                    ctx.remember(name, "loaded", sampler.peak[name])
            client.close()
    steady = _steady_rate(samples, len(keys))
    return {
        "latency_ms": latency_ms,
        "max_parallel": max_parallel,
        "worker_processes": processes,
        "worker_threads": threads,
        "messages": len(keys),
        "completed": samples[-1][1] if samples else 0,
        "drain_s": samples[-1][0] if samples else float("nan"),
        "throughput_mps": steady,
        "ideal_mps": ideal,
        "ratio_to_ideal": steady / ideal,
        "fill_rate_rps": fill["achieved_rate"],
    }


def _count_done(client: redis.Redis, keys: list[str]) -> int:
    done = 0
    for start in range(0, len(keys), 1000):
        for value in client.mget(keys[start : start + 1000]):
            if value in (b"completed", b"failed"):
                done += 1
    return done


def _steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Messages/s between 10 % and 90 % completed (skips bridge start-up and the tail)."""
    if not samples or total == 0:
        return float("nan")

    def time_at(count: float) -> float:
        previous = (0.0, 0)
        for moment, done in samples:
            if done >= count:
                if done == previous[1]:
                    return moment
                return previous[0] + (moment - previous[0]) * (count - previous[1]) / (done - previous[1])
            previous = (moment, done)
        return float("nan")

    low, high = 0.1 * total, 0.9 * total
    elapsed = time_at(high) - time_at(low)
    return (high - low) / elapsed if elapsed > 0 else float("nan")


def worker_throughput(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    return drain_rate(
        ctx,
        latency_ms=plan.worker_latency_ms,
        max_parallel=plan.worker_max_parallel,
        processes=1,
        messages=plan.worker_messages,
        sample_memory=True,
    )


def scaling(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    points = []
    for processes in plan.scaling_processes:
        for parallel in plan.scaling_parallel:
            ideal = parallel / (plan.scaling_latency_ms / 1000)
            messages = max(int(ideal * plan.scaling_seconds), 4 * parallel)
            points.append(
                drain_rate(
                    ctx,
                    latency_ms=plan.scaling_latency_ms,
                    max_parallel=parallel,
                    processes=processes,
                    messages=min(messages, 3000),
                )
            )
    return {"latency_ms": plan.scaling_latency_ms, "points": points}


# --- 4 and 5. cold start and memory --------------------------------------------------------------


# The first real request after a start: it also pays for what is set up on first use (connections to
# Redis and RabbitMQ, the topology declaration). The worker's needs a queued message, so it is left out.
FIRST_REQUESTS: dict[str, tuple[str, str, int]] = {
    "webhook": ("POST", WEBHOOK_PATH, 202),
    "poll": ("GET", f"{POLL_PATH}?message_id={uuid.uuid4()}", 404),
    "bare": ("GET", "/", 200),
}


def cold_start(ctx: Context) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in ("webhook", "worker", "poll", "bare"):
        runs: list[float] = []
        first: list[float] = []
        for _ in range(ctx.plan.cold_runs):
            with namespace(ctx) as (ns, procs):
                proc = start_function(kind, ns, ctx.log_dir)
                procs.append(proc)
                runs.append(proc.wait_live(timeout=60))
                if kind in FIRST_REQUESTS:
                    first.append(_first_answer(proc, *FIRST_REQUESTS[kind], ctx.backends.auth_headers()))
                time.sleep(0.5)
                ctx.remember(kind, "idle", memory_mb(proc))
        results[kind] = {"median_s": statistics.median(runs), "runs_s": runs}
        if first:
            results[kind]["first_request_median_s"] = statistics.median(first)
            results[kind]["first_request_runs_s"] = first
    return results


def _first_answer(proc: Proc, method: str, path: str, expected: int, headers: dict[str, str]) -> float:
    """Seconds from process start to the answer of its first real request (which must be ``expected``)."""
    data = json.dumps(WEBHOOK_BODY).encode() if method == "POST" else None
    request = urllib.request.Request(  # noqa: S310 - the function just started on loopback
        proc.url + path, data=data, method=method, headers={**headers, "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            status = response.status
    except urllib.error.HTTPError as refused:
        status = refused.code
    if status != expected:
        raise RuntimeError(f"{proc.name}: first request answered {status}, expected {expected}")
    return time.perf_counter() - proc.started
