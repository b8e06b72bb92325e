"""Path globs as `--include` and `--exclude` use them (migrate and verify share these rules).

A pattern matches a path relative to the tree's root when it matches the whole relative path or just the
file's name, with fnmatch rules and case kept (`*.tmp`, `Projects/2024/*`, `~$*`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from driveferry.errors import UserError

__all__ = ["check_patterns", "matches_any"]


def check_patterns(patterns: Iterable[str], flag: str) -> tuple[str, ...]:
    """The patterns as a tuple; UserError for an empty one (it would match nothing) or brackets that do
    not pair up."""
    out = tuple(patterns)
    for pattern in out:
        if not pattern.strip():
            raise UserError(f"{flag} '': an empty pattern matches nothing; give a glob such as '*.tmp'")
        if pattern.count("[") != pattern.count("]"):
            raise UserError(f"malformed glob {pattern!r}: brackets must pair up (example: '*.mp4')")
    return out


def matches_any(rel_path: str, patterns: Iterable[str]) -> bool:
    """Whether any pattern matches `rel_path` (or its last part, the file's name)."""
    name = rel_path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel_path, p) or fnmatch.fnmatchcase(name, p) for p in patterns)
