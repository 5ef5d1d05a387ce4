"""Function bundles (``make package``): complete, reproducible and self-contained."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import FUNCTIONS, REPO

# Runs in a fresh interpreter: no site, no PYTHON* variables, no script or working dir on
# sys.path. Only the unpacked bundle and the virtualenv's site-packages are importable.
PROBE = textwrap.dedent(
    """
    import json, site, sys
    bundle, site_packages, repo, target = sys.argv[1:5]
    sys.path[:] = [bundle] + [p for p in sys.path if p.startswith(sys.base_prefix) and "-packages" not in p]
    site.addsitedir(site_packages)
    # The virtualenv may live inside the repository (.venv): only its site-packages may be there.
    leaks = [p for p in sys.path if (p.rstrip("/") == repo or p.startswith(repo + "/"))
             and not p.startswith(site_packages)]
    assert not leaks, sys.path

    import functions_framework
    app = functions_framework.create_app(target=target, source=bundle + "/main.py")
    import shared
    response = app.test_client().get("/live")
    print(json.dumps({"status": response.status_code, "shared": shared.__file__}))
    """
)


def _site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


def test_every_function_gets_a_bundle(bundles: Path) -> None:
    assert sorted(p.stem for p in bundles.glob("*.zip")) == sorted(FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bundle_holds_main_shared_and_requirements(bundles: Path, function: str) -> None:
    with zipfile.ZipFile(bundles / f"{function}.zip") as archive:
        names = archive.namelist()
        assert names == sorted(names), "entries must be sorted for a stable content hash"
        assert {"main.py", "requirements.txt", "shared/__init__.py", "shared/config.py"} <= set(names)
        assert archive.read("main.py") == (REPO / "functions" / function / "main.py").read_bytes()
        assert archive.read("requirements.txt") == (REPO / "requirements.txt").read_bytes()
        assert not [n for n in names if n.endswith(".pyc") and "__pycache__/" not in n]
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bundle_ships_checked_hash_bytecode_of_its_own_sources(bundles: Path, function: str) -> None:
    """Every module has bytecode that is valid after unzipping (hash, not mtime) and matches its source."""
    with zipfile.ZipFile(bundles / f"{function}.zip") as archive:
        names = set(archive.namelist())
        sources = sorted(n for n in names if n.endswith(".py"))
        compiled = {n for n in names if n.endswith(".pyc")}
        assert compiled == {importlib.util.cache_from_source(n) for n in sources}
        for name in sources:
            pyc = archive.read(importlib.util.cache_from_source(name))
            assert pyc[:4] == importlib.util.MAGIC_NUMBER
            assert int.from_bytes(pyc[4:8], "little") == 0b11, f"{name}: not checked-hash bytecode"
            assert pyc[8:16] == importlib.util.source_hash(archive.read(name)), f"{name}: stale bytecode"


def test_bundles_are_byte_for_byte_reproducible(bundles: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for function in FUNCTIONS:
        first = hashlib.sha256((bundles / f"{function}.zip").read_bytes()).hexdigest()
        second = hashlib.sha256((tmp_path / f"{function}.zip").read_bytes()).hexdigest()
        assert first == second, f"{function}.zip changed between two builds of the same sources"


def test_unknown_function_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package.py"), "--out", str(tmp_path), "nope"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "no function 'nope'" in result.stderr and "worker" in result.stderr


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bundle_runs_alone(bundles: Path, tmp_path: Path, function: str) -> None:
    unpacked = tmp_path / function
    with zipfile.ZipFile(bundles / f"{function}.zip") as archive:
        archive.extractall(unpacked)
    clean_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "API_TOKEN": "t" * 32}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(unpacked), _site_packages(), str(REPO), function],
        cwd=tmp_path,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last_line = result.stdout.strip().splitlines()[-1]
    import json

    report = json.loads(last_line)
    assert report["status"] == 200
    assert Path(report["shared"]).is_relative_to(unpacked), "shared must come from the bundle"
    assert os.path.commonpath([report["shared"], str(REPO)]) != str(REPO)
