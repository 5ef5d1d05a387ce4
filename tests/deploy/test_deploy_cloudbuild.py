"""cloudbuild.yaml, checked offline: steps, ordering and substitutions."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy.deploy_helpers import REPO

BUILT_IN = {"PROJECT_ID", "SHORT_SHA", "COMMIT_SHA", "BUILD_ID", "LOCATION"}


def _build() -> dict[str, Any]:
    return yaml.safe_load((REPO / "cloudbuild.yaml").read_text(encoding="utf-8"))


def test_steps_are_unique_and_wait_for_known_steps() -> None:
    steps = _build()["steps"]
    ids = [step["id"] for step in steps]
    assert len(ids) == len(set(ids))
    for step in steps:
        for dependency in step.get("waitFor", []):
            assert dependency == "-" or dependency in ids, f"{step['id']} waits for unknown {dependency}"


def test_pipeline_covers_test_package_image_terraform_and_smoke() -> None:
    text = (REPO / "cloudbuild.yaml").read_text(encoding="utf-8")
    for needle in (
        "ruff check",
        "pytest",
        "make package",
        "Dockerfile.bridge",
        "terraform init",
        "terraform plan",
        "terraform apply",
        "/health",
    ):
        assert needle in text, f"cloudbuild.yaml should run {needle!r}"
    steps = {step["id"]: step for step in _build()["steps"]}
    assert set(steps["terraform-plan"]["waitFor"]) >= {
        "unit-tests",
        "check-config",
        "package",
        "bridge-image",
    }
    assert "-m shared.localstack --check" in steps["check-config"]["args"][-1]


def test_every_substitution_used_is_declared() -> None:
    build = _build()
    declared = set(build["substitutions"])
    assert {"_PROJECT", "_REGION", "_ENV"} <= declared
    used = set(re.findall(r"\$\{?(_[A-Z0-9_]+)", (REPO / "cloudbuild.yaml").read_text(encoding="utf-8")))
    assert used <= declared, f"undeclared substitutions: {sorted(used - declared)}"
    plain = set(re.findall(r"(?<!\$)\$\{?([A-Z][A-Z0-9_]+)", yaml.safe_dump(build["steps"])))
    assert plain <= BUILT_IN, f"shell variables must be escaped as $$VAR: {sorted(plain - BUILT_IN)}"
