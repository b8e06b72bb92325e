"""Imports point one way: cli/commands -> migrate, verify -> journal, providers, integrity -> errors.

The emulator and the providers never import each other (tests wire them together). Checked on the
source text (ast), so a violation fails here even if it would only be hit at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import driveferry

ROOT = Path(driveferry.__file__).parent

# package -> the driveferry packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "units": set(),
    "fileio": set(),
    "integrity": {"errors"},
    "typedconfig": {"errors", "units"},
    "globs": {"errors"},
    "config": {"errors", "units", "typedconfig"},
    "providers": {"errors", "integrity", "units", "config", "fileio"},
    "journal": {"errors"},
    "migrate": {"errors", "integrity", "providers", "journal", "units", "config", "typedconfig", "globs"},
    "verify": {"errors", "integrity", "providers", "journal", "units", "config", "globs"},
    "emulator": {"errors", "integrity", "units", "fileio", "typedconfig"},
}


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "driveferry" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_imports_point_one_way() -> None:
    problems = []
    checked = 0
    for path in sorted(ROOT.rglob("*.py")):
        pkg = _package(path)
        if pkg not in ALLOWED:
            continue  # cli, commands and __init__ may import anything
        checked += 1
        for target in _imports(path) - {pkg}:
            if target not in ALLOWED[pkg]:
                problems.append(f"{path.relative_to(ROOT)} imports driveferry.{target}")
    assert checked > 50
    assert problems == []
