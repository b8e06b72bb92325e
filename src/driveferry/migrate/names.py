"""Destination names: what a source path becomes on a destination, read from its declared `Features`.

The adapter maps what it can reversibly at its edge (OneDrive: `providers/onedrive/names.py` turns
`"*:<>?\\|#%`, a leading `~` or space, a trailing dot or space and reserved names into fullwidth twins,
and back when listing, so a round trip restores the names). What is left is decided here, per run,
from three declared facts and never from the provider's name:

- `illegal_name_chars`: characters a name can never hold there. Each is replaced by its fullwidth twin
  (`/` -> `／` U+FF0F, NUL -> `␀` U+2400), the same table the OneDrive adapter uses.
- `case_insensitive`: two source siblings whose destination names differ only in case would collide,
  and the later one would overwrite or be refused. The first keeps its name; each later one gets
  `STEM (case N)EXT` with the smallest N >= 2 not taken, and the rename is reported.
- `max_path_chars`: a path longer than the limit (counted from the destination's root, including the
  destination folder) cannot be created: the item is reported, not copied.

A `Namer` is stateful: it remembers, per destination folder, the folder names seen (for the whole walk;
folders are few) and the file names of the folders still open: the folder of the latest item and its
ancestors. A walk never comes back to a folder that is neither (depth-first, or listed whole by a
checker: providers/ops.walk), so the names kept are bounded by the tree's depth times its width.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from driveferry.providers.base import Features

_TWINS = {"/": "\uff0f", "\0": "\u2400"}


def twin(c: str) -> str:
    """The character written for `c` where `c` is illegal: its fullwidth form (ASCII 0x21..0x7E), the
    Control Pictures symbol for a control character, else U+FFFD."""
    if c in _TWINS:
        return _TWINS[c]
    if 0x21 <= ord(c) <= 0x7E:
        return chr(ord(c) + 0xFEE0)
    if ord(c) < 0x20:
        return chr(0x2400 + ord(c))
    return "\ufffd"


def case_twin_name(name: str, n: int) -> str:
    """`report.txt`, 2 -> `report (case 2).txt`; a name with no extension (or a dot file) gets the suffix
    at its end."""
    stem, ext = posixpath.splitext(name)
    return f"{stem} (case {n}){ext}"


@dataclass(frozen=True)
class Named:
    """Where one source item goes: its destination path (relative to the destination folder), a note
    when the name differs from the source's for a reason worth reporting, or `refused` when the item
    cannot be created there."""

    path: str
    renamed: str = ""
    refused: str = ""


@dataclass
class _Folder:
    folders: dict[str, str] = field(default_factory=dict)  # folded dest name -> source name
    files: dict[str, str] = field(default_factory=dict)  # the same, for the folder being walked


class Namer:
    """Maps source paths to destination paths for one destination (see the module docstring)."""

    def __init__(self, features: Features, dest_root: str = "") -> None:
        self.illegal = features.illegal_name_chars
        self.fold = features.case_insensitive
        self.max_path = features.max_path_chars
        self.root_chars = len(dest_root.strip("/"))
        self._dirs: dict[str, str] = {"": ""}  # source rel dir -> dest rel dir
        self._folders: dict[str, _Folder] = {}
        self._open: list[str] = []  # dest dirs whose file names are held: the latest item's and its ancestors

    def _clean(self, name: str) -> str:
        return "".join(twin(c) if c in self.illegal else c for c in name) if self.illegal else name

    def _key(self, name: str) -> str:
        return name.casefold() if self.fold else name

    def _place(self, dest_dir: str, src_name: str, is_dir: bool) -> tuple[str, str]:
        """(destination name, rename note) of `src_name` in `dest_dir`, recording it."""
        folder = self._folders.setdefault(dest_dir, _Folder())
        name = self._clean(src_name)
        note = f"{src_name!r} holds characters the destination refuses" if name != src_name else ""
        mine = folder.folders if is_dir else folder.files
        if mine.get(self._key(name)) == src_name:
            return name, note  # the same source name again (a folder seen before)

        def taken(candidate: str) -> bool:
            key = self._key(candidate)
            return key in folder.folders or key in folder.files

        if taken(name):
            first = name
            n = 2
            while taken(case_twin_name(first, n)):
                n += 1
            name = case_twin_name(first, n)
            note = (f"another item in this folder is named {first!r} on the destination, which does not tell "
                    f"case apart: this one is written as {name!r}")
        mine[self._key(name)] = src_name
        return name, note

    def _dest_dir(self, src_dir: str) -> tuple[str, list[str]]:
        known = self._dirs.get(src_dir)
        if known is not None:
            return known, []
        parent_src, base = posixpath.split(src_dir)
        parent, notes = self._dest_dir(parent_src)
        name, note = self._place(parent, base, is_dir=True)
        dest = posixpath.join(parent, name) if parent else name
        self._dirs[src_dir] = dest
        return dest, [*notes, *([f"folder {src_dir!r}: {note}"] if note else [])]

    def _close_all_but(self, dest_dir: str) -> None:
        """Forget the file names of open folders that are neither `dest_dir` nor one of its ancestors."""
        keep = [d for d in self._open if not d or d == dest_dir or dest_dir.startswith(d + "/")]
        for done in self._open:
            if done not in keep:
                self._folders[done].files.clear()
        self._open = keep if dest_dir in keep else [*keep, dest_dir]

    def name(self, rel_path: str, src_name: str | None = None) -> Named:
        """The destination of the source item at `rel_path`. `src_name` is the item's own name when it
        may hold a `/` (Drive allows one in a name, so the last path segment alone is not the name)."""
        if src_name and rel_path.endswith(src_name):
            src_dir = rel_path[:-len(src_name)].rstrip("/")
        else:
            src_dir, src_name = posixpath.split(rel_path)
        dest_dir, notes = self._dest_dir(src_dir)
        self._close_all_but(dest_dir)
        name, note = self._place(dest_dir, src_name, is_dir=False)
        path = posixpath.join(dest_dir, name) if dest_dir else name
        renamed = "; ".join([*notes, *([note] if note else [])])
        if self.max_path is not None:
            length = self.root_chars + (1 if self.root_chars else 0) + len(path)
            if length > self.max_path:
                return Named(path, renamed, f"path is {length} characters on the destination (with the "
                                            f"destination folder); it accepts at most {self.max_path}")
        return Named(path, renamed)
