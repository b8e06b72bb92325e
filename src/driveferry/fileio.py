"""Reading byte ranges of local files in blocks: one loop for the local provider and the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

BLOCK_BYTES = 1 << 20


def iter_range(fh: BinaryIO, start: int = 0, end: int | None = None, block: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Bytes [start, end) of an open binary file in blocks of at most `block` (end None: to EOF).

    Stops early at EOF; the caller owns (and closes) the file.
    """
    fh.seek(start)
    left = None if end is None else end - start
    while left is None or left > 0:
        data = fh.read(block if left is None else min(block, left))
        if not data:
            return
        if left is not None:
            left -= len(data)
        yield data
