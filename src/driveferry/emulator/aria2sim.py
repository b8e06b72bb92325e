"""An aria2-like writer for tests and the demo: preallocate, then fill pieces out of order.

aria2 with `file-allocation=prealloc|falloc` makes a full-size file of zeros first and then writes
pieces as peers deliver them, in no particular order; stopped part-way, the file has the right size
and zero-filled gaps. `Aria2Writer` reproduces that deterministically (the piece order comes from a
seed), so a lazy sync (see lazysync.py) can catch it at any point:

    w = Aria2Writer(path, content, piece_bytes=16384, allocation="prealloc", seed=1)
    w.preallocate()          # full size, all zeros (sparse with allocation="trunc")
    w.write_pieces(3)        # three pieces, out of order
    w.finish()               # the rest
"""

from __future__ import annotations

import os
import random
from pathlib import Path

__all__ = ["Aria2Writer", "ALLOCATIONS"]

ALLOCATIONS = ("prealloc", "falloc", "trunc", "none")


class Aria2Writer:
    """Writes `content` to `path` as aria2 would. `allocation`: prealloc (zeros written), falloc
    (posix_fallocate), trunc (sparse ftruncate) or none (pieces in order, the file grows)."""

    def __init__(self, path: Path | str, content: bytes, *, piece_bytes: int = 16 * 1024,
                 allocation: str = "prealloc", seed: int = 0) -> None:
        if allocation not in ALLOCATIONS:
            raise ValueError(f"allocation must be one of {', '.join(ALLOCATIONS)}")
        if piece_bytes <= 0:
            raise ValueError("piece_bytes must be > 0")
        self.path = Path(path)
        self.content = content
        self.piece_bytes = piece_bytes
        self.allocation = allocation
        count = max(1, -(-len(content) // piece_bytes))
        order = list(range(count))
        if allocation != "none":  # without preallocation aria2 appends; with it, pieces land anywhere
            random.Random(seed).shuffle(order)
        self._todo = order
        self.written: list[int] = []

    @property
    def done(self) -> bool:
        return not self._todo

    def preallocate(self) -> None:
        """Create the file at full size (zeros), or empty for allocation="none"."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        size = len(self.content)
        with open(self.path, "wb") as fh:
            if self.allocation == "prealloc":
                fh.write(bytes(size))
            elif self.allocation == "falloc" and size:
                os.posix_fallocate(fh.fileno(), 0, size)
            elif self.allocation == "trunc":
                fh.truncate(size)

    def write_pieces(self, count: int | None = None) -> int:
        """Write the next `count` pieces (all remaining when None). Returns how many were written."""
        if not self.path.exists():
            self.preallocate()
        n = len(self._todo) if count is None else min(count, len(self._todo))
        with open(self.path, "r+b") as fh:
            for _ in range(n):
                piece = self._todo.pop(0)
                start = piece * self.piece_bytes
                fh.seek(start)
                fh.write(self.content[start:start + self.piece_bytes])
                self.written.append(piece)
        return n

    def finish(self) -> None:
        self.write_pieces(None)
