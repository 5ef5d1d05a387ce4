"""Targets from issue 7, the results table, and the PNG plots."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@dataclass(frozen=True)
class Row:
    metric: str
    measured: float
    target: float
    unit: str
    higher_is_better: bool

    @property
    def ratio(self) -> float:
        """measured / target: ≥ 1 passes for "at least" targets, ≤ 1 for "at most" ones."""
        return self.measured / self.target if self.target else float("nan")

    @property
    def passed(self) -> bool:
        if math.isnan(self.measured):
            return False
        return self.measured >= self.target if self.higher_is_better else self.measured <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "measured": self.measured,
            "target": self.target,
            "unit": self.unit,
            "goal": ">=" if self.higher_is_better else "<=",
            "ratio": self.ratio,
            "pass": self.passed,
        }


def rows(results: dict[str, Any]) -> list[Row]:
    web = results["webhook"]
    e2e = results["end_to_end"]
    worker = results["worker"]
    cold = results["cold_start"]
    memory = results["memory"]
    out = [
        Row("webhook throughput", web["webhook"]["throughput_rps"], 1000, "req/s", True),
        Row("webhook / bare throughput", web["webhook_to_bare_ratio"], 0.60, "ratio", True),
        Row("floor / bare throughput (reference)", web["floor_to_bare_ratio"], 0.60, "ratio", True),
        Row(
            f"webhook p99 @ {web['fixed_rate']['webhook']['target_rate']:.0f} req/s",
            web["fixed_rate"]["webhook"]["p99_ms"],
            25,
            "ms",
            False,
        ),
        Row(f"e2e p50 @ {e2e['rate']:.0f} msg/s", e2e["p50_ms"], 10, "ms", False),
        Row(f"e2e p99 @ {e2e['rate']:.0f} msg/s", e2e["p99_ms"], 50, "ms", False),
        Row(
            f"worker throughput / ideal ({worker['ideal_mps']:.0f} msg/s)",
            worker["ratio_to_ideal"],
            0.90,
            "ratio",
            True,
        ),
    ]
    for name, limit in (("webhook", 0.5), ("poll", 0.5), ("worker", 1.0)):
        out.append(Row(f"cold start {name}", cold[name]["median_s"], limit, "s", False))
    for name in ("webhook", "worker", "poll"):
        states = memory.get(name, {})
        out.append(Row(f"RSS idle {name}", states.get("idle", {}).get("rss_mb", math.nan), 80, "MB", False))
        out.append(
            Row(f"RSS loaded {name}", states.get("loaded", {}).get("rss_mb", math.nan), 150, "MB", False)
        )
    return out


def table(results: dict[str, Any]) -> str:
    """A Markdown table of every target, with pass/miss (speed never fails the bench)."""
    lines = [
        "| metric | measured | target | ratio | result |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows(results):
        goal = "≥" if row.higher_is_better else "≤"
        lines.append(
            f"| {row.metric} | {_fmt(row.measured)} {row.unit} | {goal} {_fmt(row.target)} {row.unit} | "
            f"{_fmt(row.ratio)} | {'pass' if row.passed else 'MISS'} |"
        )
    return "\n".join(lines)


def details(results: dict[str, Any]) -> str:
    """Side-by-side figures behind the table."""
    web = results["webhook"]
    lines = ["| run | req/s | p50 ms | p95 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
    for kind in ("bare", "floor", "webhook"):
        r = web[kind]
        lines.append(
            f"| {kind}, max throughput | {r['throughput_rps']:.0f} | {_fmt(r['p50_ms'])} "
            f"| {_fmt(r['p95_ms'])} | {_fmt(r['p99_ms'])} | {r['errors']} |"
        )
    for kind in ("bare", "webhook"):
        r = web["fixed_rate"][kind]
        lines.append(
            f"| {kind}, fixed {r['target_rate']:.0f} req/s | {r['throughput_rps']:.0f} | {_fmt(r['p50_ms'])} "
            f"| {_fmt(r['p95_ms'])} | {_fmt(r['p99_ms'])} | {r['errors']} |"
        )
    e2e = results["end_to_end"]
    lines += [
        "",
        f"end to end at {e2e['rate']:.0f} msg/s for {e2e['duration_s']:.0f} s: accepted {e2e['accepted']}, "
        f"readable {e2e['completed']}, unfinished {e2e['unfinished']}; accepted→readable p50 "
        f"{_fmt(e2e['p50_ms'])} ms, p95 {_fmt(e2e['p95_ms'])} ms, p99 {_fmt(e2e['p99_ms'])} ms "
        f"(polls back off 2 ms x1.5 to 50 ms, "
        f"{_fmt(e2e.get('polls_per_message', math.nan))} per message); "
        f"webhook answer p50 {_fmt(e2e['accept_p50_ms'])} ms",
    ]
    w = results["worker"]
    lines.append(
        f"worker: {w['throughput_mps']:.1f} msg/s with {w['max_parallel']} in flight "
        f"at {w['latency_ms']:.0f} ms "
        f"(ideal {w['ideal_mps']:.0f}); {w['completed']}/{w['messages']} done in {w['drain_s']:.1f} s"
    )
    lines += [
        "",
        "| function | cold start (median) | first request answered | RSS idle MB | RSS loaded MB "
        "| tree PSS loaded MB |",
    ]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for name in ("webhook", "worker", "poll", "bare", "bridge"):
        cold = results["cold_start"].get(name, {}).get("median_s", math.nan)
        first = results["cold_start"].get(name, {}).get("first_request_median_s", math.nan)
        mem = results["memory"].get(name, {})
        lines.append(
            f"| {name} | {_fmt(cold)} s | {_fmt(first)} s | "
            f"{_fmt(mem.get('idle', {}).get('rss_mb', math.nan))} | "
            f"{_fmt(mem.get('loaded', {}).get('rss_mb', math.nan))} | "
            f"{_fmt(mem.get('loaded', {}).get('tree_pss_mb', math.nan))} |"
        )
    lines += ["", "| worker processes | MAX_PARALLEL | msg/s | ideal | ratio |", "|---:|---:|---:|---:|---:|"]
    for p in results["scaling"]["points"]:
        lines.append(
            f"| {p['worker_processes']} | {p['max_parallel']} | {p['throughput_mps']:.1f} | "
            f"{p['ideal_mps']:.0f} | {_fmt(p['ratio_to_ideal'])} |"
        )
    return "\n".join(lines)


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def plot(results: dict[str, Any], directory: Path) -> list[Path]:
    """Write the PNG plots; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        _plot_webhook(results, directory / "webhook_vs_bare.png"),
        _plot_latency(results, directory / "latency_distribution.png"),
        _plot_scaling(results, directory / "scaling.png"),
        _plot_resources(results, directory / "cold_start_memory.png"),
    ]
    return written


def _plot_webhook(results: dict[str, Any], path: Path) -> Path:
    web = results["webhook"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    kinds = ["bare", "floor", "webhook"]
    left.bar(kinds, [web[k]["throughput_rps"] for k in kinds], color=["#999999", "#bbbbbb", "#1f77b4"])
    left.axhline(1000, color="red", linestyle="--", label="target 1000 req/s")
    left.set_ylabel("requests/s (2xx)")
    left.set_title("max throughput, same gunicorn settings")
    left.legend()
    width = 0.35
    quantiles = ["p50_ms", "p95_ms", "p99_ms"]
    for offset, kind in ((-width / 2, "bare"), (width / 2, "webhook")):
        fixed = web["fixed_rate"][kind]
        right.bar([i + offset for i in range(3)], [fixed[q] for q in quantiles], width, label=kind)
    right.axhline(25, color="red", linestyle="--", label="p99 target 25 ms")
    right.set_xticks(range(3), ["p50", "p95", "p99"])
    right.set_ylabel("ms")
    right.set_title(f"latency at fixed {web['fixed_rate']['webhook']['target_rate']:.0f} req/s")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_latency(results: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    series = {
        "webhook @ fixed rate": results["webhook"]["fixed_rate"]["webhook"]["latencies_ms"],
        "bare @ fixed rate": results["webhook"]["fixed_rate"]["bare"]["latencies_ms"],
        "accepted → readable (e2e)": results["end_to_end"]["latencies_ms"],
    }
    for label, values in series.items():
        if values:
            ordered = sorted(values)
            ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("ms (log)")
    ax.set_ylabel("fraction ≤ x")
    ax.set_title("latency distributions (CDF)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_scaling(results: dict[str, Any], path: Path) -> Path:
    points = results["scaling"]["points"]
    fig, ax = plt.subplots(figsize=(8, 4))
    for processes in sorted({p["worker_processes"] for p in points}):
        mine = sorted(
            (p for p in points if p["worker_processes"] == processes), key=lambda p: p["max_parallel"]
        )
        ax.plot(
            [p["max_parallel"] for p in mine],
            [p["throughput_mps"] for p in mine],
            marker="o",
            label=f"{processes} worker process(es)",
        )
    xs = sorted({p["max_parallel"] for p in points})
    ax.plot(xs, [x / (results["scaling"]["latency_ms"] / 1000) for x in xs], "k--", label="ideal")
    w = results["worker"]
    ax.scatter([w["max_parallel"]], [w["throughput_mps"]], color="red", zorder=5, label="§3 @ 500 ms agent")
    ax.set_xlabel("MAX_PARALLEL (bridge in-flight limit)")
    ax.set_ylabel("messages/s")
    ax.set_title(f"worker throughput, mock agent {results['scaling']['latency_ms']:.0f} ms")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_resources(results: dict[str, Any], path: Path) -> Path:
    names = ["webhook", "worker", "poll", "bare"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, [results["cold_start"][n]["median_s"] for n in names])
    left.axhline(0.5, color="red", linestyle="--", label="0.5 s (webhook, poll)")
    left.axhline(1.0, color="orange", linestyle="--", label="1.0 s (worker)")
    left.set_ylabel("s")
    left.set_title("cold start: process start → first 2xx /live")
    left.legend()
    width = 0.35
    memory = results["memory"]
    idle = [memory.get(n, {}).get("idle", {}).get("rss_mb", 0.0) for n in names]
    loaded = [memory.get(n, {}).get("loaded", {}).get("rss_mb", 0.0) for n in names]
    right.bar([i - width / 2 for i in range(len(names))], idle, width, label="idle")
    right.bar([i + width / 2 for i in range(len(names))], loaded, width, label="loaded")
    right.axhline(80, color="red", linestyle="--", label="idle target 80 MB")
    right.axhline(150, color="orange", linestyle="--", label="loaded target 150 MB")
    right.set_xticks(range(len(names)), names)
    right.set_ylabel("RSS MB (serving process)")
    right.set_title("memory")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
