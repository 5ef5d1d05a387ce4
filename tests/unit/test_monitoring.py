"""The alert rules and the Grafana dashboard only use metrics the gateway exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.metrics import metric_names

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBERS = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}


def metrics_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels, keywords and numbers removed)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBERS.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        following = text[match.end() :].lstrip()
        if following.startswith("("):
            continue  # a function: rate(, histogram_quantile(, sum(...
        if match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def alert_expressions() -> list[tuple[str, str]]:
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [
        (rule["alert"], rule["expr"])
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def dashboard_expressions() -> list[tuple[str, str]]:
    document = json.loads((MONITORING / "grafana-dashboard.json").read_text())

    def walk(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
        found = []
        for panel in panels:
            found += [(panel["title"], t["expr"]) for t in panel.get("targets", []) if t.get("expr")]
            found += walk(panel.get("panels", []))
        return found

    return walk(document["panels"])


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum(rate(http_requests_total{status_code=~"5.."}[5m])) / clamp_min(sum(rate(x_total[5m])), 1)',
            {"http_requests_total", "x_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (le, endpoint) (rate(a_bucket[$__rate_interval]))) > 1",
            {"a_bucket"},
        ),
        (
            "sum(worker_tasks_in_flight) / max(worker_capacity) > 0.9 and on(job) up == 1",
            {"worker_tasks_in_flight", "worker_capacity", "up"},
        ),
        ("process_resident_memory_bytes > 1.6e9", {"process_resident_memory_bytes"}),
    ],
)
def test_promql_metric_names_are_found(expr: str, names: set[str]) -> None:
    assert metrics_in(expr) == names


def test_the_seed_metrics_are_registered() -> None:
    known = metric_names()
    expected = {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "message_processing_total",
        "message_processing_duration_seconds_bucket",
        "message_processing_errors_total",
        "message_queue_depth",
        "external_api_calls_total",
        "external_api_response_time_seconds_bucket",
        "worker_tasks_in_flight",
        "worker_capacity",
    }
    assert expected <= known
    assert "up" not in known  # the check below would catch a rule on a metric we do not export


@pytest.mark.parametrize("source", [alert_expressions, dashboard_expressions], ids=["alerts", "dashboard"])
def test_every_referenced_metric_exists(source: Any) -> None:
    expressions = source()
    assert len(expressions) >= 8
    known = metric_names()
    for title, expr in expressions:
        names = metrics_in(expr)
        assert names, f"{title}: no metric found in {expr!r}"
        unknown = names - known
        assert not unknown, f"{title}: unknown metrics {sorted(unknown)} in {expr!r}"


def test_alerts_cover_the_seed_conditions() -> None:
    used = {name for _, expr in alert_expressions() for name in metrics_in(expr)}
    # error rate, queue backup and DLQ, latency, memory
    assert {
        "message_processing_total",
        "message_queue_depth",
        "http_request_duration_seconds_bucket",
        "process_resident_memory_bytes",
    } <= used
    exprs = " ".join(expr for _, expr in alert_expressions())
    assert '_dlq"' in exprs
