"""Build one self-contained, reproducible zip per function for Cloud Functions (gen2).

Each ``dist/<function>.zip`` holds, at its root:

* ``main.py``          the function's entry module (``functions/<function>/main.py``);
* ``shared/``          the common library (Python sources only, no caches);
* ``requirements.txt`` the pinned runtime requirements, installed by the Cloud Functions build;
* ``__pycache__/``     bytecode of every module, compiled by the packaging interpreter with checked
  hashes: valid wherever the archive is unpacked (no timestamps), used only by the same Python
  version (Cloud Build packages with the runtime's ``python:3.12``), and skipped for a source that
  no longer matches. A cold start then loads the library instead of compiling it.

The archive is deterministic: entries are sorted, every entry has the same timestamp and mode,
so the same sources always give the same bytes and Terraform's content-hash object name only
changes when the code does. Usage::

    python scripts/package.py                 # all functions into ./dist
    python scripts/package.py --out build/dist worker
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import py_compile
import sys
import tempfile
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


def bytecode_entries(entries: dict[str, Path]) -> dict[str, bytes]:
    """Archive name -> checked-hash ``.pyc`` for every Python source among ``entries``.

    Checked-hash bytecode carries the source's hash instead of its modification time, so it stays
    valid after unzipping and the same sources always give the same bytes.
    """
    compiled: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, source in entries.items():
            if not name.endswith(".py"):
                continue
            target = Path(scratch) / "out.pyc"
            py_compile.compile(
                str(source),
                cfile=str(target),
                dfile=name,
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
            )
            compiled[importlib.util.cache_from_source(name)] = target.read_bytes()
    return compiled


def write_bundle(entries: dict[str, Path], target: Path) -> str:
    """Write ``entries`` and their bytecode to the zip ``target`` deterministically; return its SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".tmp")
    contents = {name: path.read_bytes() for name, path in entries.items()}
    contents.update(bytecode_entries(entries))
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(contents):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever the build machine is
            archive.writestr(info, contents[name])
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
