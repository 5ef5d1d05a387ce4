"""Helpers of the deployment checks: repository paths and a normalised view of the Terraform."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the policy tests read shared/config.py's defaults
    sys.path.insert(0, str(REPO))
TERRAFORM = REPO / "terraform"
FUNCTIONS = ("poll", "webhook", "worker")


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def normalize(node: Any) -> Any:
    """python-hcl2 8.x keeps quotes around labels and string literals and marks blocks with
    ``__is_block__``; strip both so assertions read like the HCL."""
    if isinstance(node, dict):
        return {_unquote(k): normalize(v) for k, v in node.items() if k != "__is_block__"}
    if isinstance(node, list):
        return [normalize(item) for item in node]
    if isinstance(node, str):
        return _unquote(node)
    return node


def parse_file(path: Path) -> dict[str, Any]:
    import hcl2

    with path.open(encoding="utf-8") as handle:
        return normalize(hcl2.load(handle))


class Terraform:
    """All ``*.tf`` files of ``terraform/``, merged by block type."""

    def __init__(self, root: Path) -> None:
        self.files = {path.name: parse_file(path) for path in sorted(root.glob("*.tf"))}
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.where: dict[tuple[str, str], str] = {}
        for name, doc in self.files.items():
            for block in doc.get("resource", []):
                for rtype, by_name in block.items():
                    for rname, body in by_name.items():
                        self.resources.setdefault(rtype, {})[rname] = body
                        self.where[(rtype, rname)] = name
            for block in doc.get("variable", []):
                self.variables.update(block)
            for block in doc.get("locals", []):
                self.locals.update(block)

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        try:
            return self.resources[rtype][name]
        except KeyError:
            found = sorted(f"{t}.{n}" for t, names in self.resources.items() for n in names)
            raise AssertionError(f"expected resource {rtype}.{name}; found: {found}") from None

    def all_resources(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(t, n, body) for t, names in self.resources.items() for n, body in names.items()]
