"""Walk two trees at once, folder by folder, in sorted path order, holding only the open folders' listings.

`merged(...)` yields one `Group` per non-folder path found on either side, in exactly the order
`sorted()` puts the full relative paths. A folder's children are ordered by the key `name` for an
item and `name + "/"` for a folder: every path under folder `x` starts with `x/`, and a child name
holds no `/`, so comparing that key with a sibling's decides the same as comparing any of the paths
under `x` with it. Nothing is sorted beyond one folder's listing, so nothing holds the whole tree.

Memory: the stack holds the not yet visited children of each folder on the current path (depth x
fan-out); `Held` counts them, so a test can assert the bound structurally. A side may name several
folders for one path (Drive allows two folders of one name): their listings are united, as a walk by
path sees them.

`fill(rel, is_folder)` is asked for the right side's items of a path the left side has and the right
side's listing lacks: verify answers from the journal's recorded ids where listings lag (Drive's
listing by parent is eventually consistent, api-notes Part C §20, rclone#2485).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Group", "Held", "Listing", "merged"]

HL = TypeVar("HL")  # a left folder handle
TL = TypeVar("TL")  # a left item
HR = TypeVar("HR")
TR = TypeVar("TR")


@dataclass(frozen=True)
class Listing(Generic[HL, TL]):
    """One folder's children on one side: (name, item) of non-folders, (name, handle) of folders."""

    files: list[tuple[str, TL]] = field(default_factory=list)
    folders: list[tuple[str, HL]] = field(default_factory=list)


@dataclass
class Held:
    """Listed children not yet visited (items plus folder handles, both sides): now and the peak."""

    now: int = 0
    peak: int = 0

    def add(self, n: int) -> None:
        self.now += n
        self.peak = max(self.peak, self.now)


@dataclass(frozen=True)
class Group(Generic[TL, TR]):
    """The items at one relative path: left ones and right ones (either list may be empty, not both)."""

    rel: str
    left: list[TL]
    right: list[TR]


@dataclass
class _Child(Generic[HL, TL, HR, TR]):
    is_folder: bool
    left: list[TL] = field(default_factory=list)
    right: list[TR] = field(default_factory=list)
    left_dirs: list[HL] = field(default_factory=list)
    right_dirs: list[HR] = field(default_factory=list)

    def size(self) -> int:
        return len(self.left) + len(self.right) + len(self.left_dirs) + len(self.right_dirs)


def merged(left_roots: Iterable[HL], right_roots: Iterable[HR],
           list_left: Callable[[HL, str], Listing[HL, TL]], list_right: Callable[[HR, str], Listing[HR, TR]],
           *, fill: Callable[[str, bool], tuple[list[TR], list[HR]]] | None = None,
           held: Held | None = None) -> Iterator[Group[TL, TR]]:
    """Every non-folder path under the roots, both sides paired, in sorted path order (module doc).

    `list_left(handle, rel)` lists one folder (rel "" is the root); so does `list_right`. Errors they
    raise reach the caller. `fill(rel, is_folder)` returns (items, folder handles) of the right side
    for a path only the left side listed, or is None.
    """
    count = held if held is not None else Held()
    stack: list[deque[tuple[str, _Child[HL, TL, HR, TR]]]] = []

    def push(prefix: str, lefts: list[HL], rights: list[HR]) -> None:
        children: dict[str, _Child[HL, TL, HR, TR]] = {}
        for handle in lefts:
            listing = list_left(handle, prefix.rstrip("/"))
            for name, item in listing.files:
                children.setdefault(name, _Child(False)).left.append(item)
            for name, folder in listing.folders:
                children.setdefault(name + "/", _Child(True)).left_dirs.append(folder)
        for rhandle in rights:
            rlisting = list_right(rhandle, prefix.rstrip("/"))
            for name, ritem in rlisting.files:
                children.setdefault(name, _Child(False)).right.append(ritem)
            for name, rfolder in rlisting.folders:
                children.setdefault(name + "/", _Child(True)).right_dirs.append(rfolder)
        if fill is not None:
            for key, child in children.items():
                has_left = child.left_dirs if child.is_folder else child.left
                has_right = child.right_dirs if child.is_folder else child.right
                if has_left and not has_right:
                    items, dirs = fill(prefix + key.rstrip("/"), child.is_folder)
                    child.right.extend(items)
                    child.right_dirs.extend(dirs)
        level = deque((prefix + key, children[key]) for key in sorted(children))
        count.add(sum(child.size() for _, child in level))
        stack.append(level)

    push("", list(left_roots), list(right_roots))
    while stack:
        level = stack[-1]
        if not level:
            stack.pop()
            continue
        key, child = level.popleft()
        count.add(-child.size())
        if child.is_folder:
            push(key, child.left_dirs, child.right_dirs)
        else:
            yield Group(key, child.left, child.right)
