"""Fixtures of the deployment checks: parsed Terraform and freshly built bundles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import REPO, TERRAFORM, Terraform


@pytest.fixture(scope="session")
def terraform() -> Terraform:
    return Terraform(TERRAFORM)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<function>.zip`` for every function, built by scripts/package.py into a temp dir."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out
