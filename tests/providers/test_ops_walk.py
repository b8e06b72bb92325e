"""ops.walk on a fake provider: deeper than the recursion limit, streamed, pre-order."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from driveferry.providers.base import Entry, Kind
from driveferry.providers.ops import normalise_path, walk


class Chain:
    """A provider stub: folder d<i> holds folder d<i+1> and a file f<i>; only root() and list() exist."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.listed = 0

    def root(self) -> Entry:
        return Entry(id="0", path="", name="", kind=Kind.FOLDER)

    def list(self, folder: Entry) -> Iterator[Entry]:
        self.listed += 1
        level = int(folder.id)
        if level >= self.depth:
            return
        yield Entry(id=str(level + 1), path=f"{folder.path}/d{level + 1}".lstrip("/"), name=f"d{level + 1}",
                    kind=Kind.FOLDER)
        yield Entry(id=f"f{level}", path=f"{folder.path}/f{level}".lstrip("/"), name=f"f{level}",
                    kind=Kind.FILE, size=1)


def test_walk_is_iterative_and_preorder() -> None:
    depth = sys.getrecursionlimit() * 3
    p = Chain(depth)
    items = walk(p, p.root())  # type: ignore[arg-type]
    first = [next(items) for _ in range(3)]
    assert [w.rel_path for w in first] == ["d1", "d1/d2", "d1/d2/d3"] and p.listed == 3  # streamed, lazily
    rest = list(items)
    assert len(first) + len(rest) == 2 * depth
    assert rest[-1].rel_path == "f0" and rest[-1].depth == 1
    files_only = list(walk(p, p.root(), include_folders=False))  # type: ignore[arg-type]
    assert len(files_only) == depth and files_only[0].depth == depth


def test_walk_max_depth_and_normalise() -> None:
    p = Chain(10)
    assert [w.rel_path for w in walk(p, p.root(), max_depth=2)] == ["d1", "d1/d2", "d1/f1", "f0"]  # type: ignore[arg-type]
    assert normalise_path("/a//b/./c/") == "a/b/c"
