"""Build one self-contained, reproducible zip per function for Cloud Functions (gen2).

Each ``dist/<function>.zip`` holds, at its root:

* ``main.py``          the function's entry module (``functions/<function>/main.py``);
* ``shared/``          the common library (Python sources only, no caches);
* ``requirements.txt`` the pinned runtime requirements, installed by the Cloud Functions build.

The archive is deterministic: entries are sorted, every entry has the same timestamp and mode,
so the same sources always give the same bytes and Terraform's content-hash object name only
changes when the code does. Usage::

    python scripts/package.py                 # all functions into ./dist
    python scripts/package.py --out build/dist worker
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest timestamp a zip entry can carry
FILE_MODE = 0o644 << 16
SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


class PackagingError(Exception):
    """The repository does not have what a bundle needs."""


def available_functions(root: Path = ROOT) -> list[str]:
    """Names of the folders under ``functions/`` that have a ``main.py``."""
    return sorted(p.parent.name for p in (root / "functions").glob("*/main.py"))


def _library_files(library: Path) -> Iterator[Path]:
    for path in library.rglob("*"):
        if path.is_dir() or SKIP_DIRS.intersection(path.relative_to(library).parts):
            continue
        if path.suffix in SKIP_SUFFIXES:
            continue
        yield path


def bundle_entries(function: str, root: Path = ROOT) -> dict[str, Path]:
    """Map of archive name -> source file for one function's bundle."""
    main = root / "functions" / function / "main.py"
    if not main.is_file():
        offered = ", ".join(available_functions(root)) or "none"
        raise PackagingError(f"no function {function!r}: expected {main}. Found: {offered}")
    requirements = root / "requirements.txt"
    if not requirements.is_file():
        raise PackagingError(f"expected the runtime requirements at {requirements}")
    library = root / "shared"
    entries = {"main.py": main, "requirements.txt": requirements}
    for path in _library_files(library):
        entries[path.relative_to(root).as_posix()] = path
    return entries


def write_bundle(entries: dict[str, Path], target: Path) -> str:
    """Write ``entries`` to the zip ``target`` deterministically; return its SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".tmp")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever the build machine is
            archive.writestr(info, entries[name].read_bytes())
    partial.replace(target)
    return hashlib.sha256(target.read_bytes()).hexdigest()


def package(functions: Iterable[str], out: Path, root: Path = ROOT) -> dict[str, str]:
    """Build ``out/<function>.zip`` for each function; return function -> SHA-256."""
    return {name: write_bundle(bundle_entries(name, root), out / f"{name}.zip") for name in functions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("functions", nargs="*", help="functions to package (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist)")
    args = parser.parse_args(argv)
    try:
        digests = package(args.functions or available_functions(), args.out)
    except PackagingError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 2
    for name, digest in digests.items():
        print(f"{args.out / (name + '.zip')}  sha256:{digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
