"""Hashing content as it streams in: md5, sha1 and sha256 together, in parallel, then written to a blob.

md5 is the slowest digest (~600 MB/s here; sha1 and sha256 are SHA-NI accelerated, ~1.4 GB/s), so it
gets a lane of its own and sha1+sha256 share another, both on pool threads; the receiving thread only
reads the socket and writes the file. hashlib releases the GIL for buffers over 2 KiB, so all of it
overlaps. Measured with benchmarks/emulator.py.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from driveferry.emulator.drive.records import StoredContent

_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="drive-hash")
_PARALLEL_MIN = 64 * 1024  # below this the hand-off costs more than it saves


class ContentHasher:
    """md5 + sha1 + sha256 over a byte stream; `copy()` snapshots the state (to roll back a failed chunk).

    Two lanes run on pool threads: md5, and sha1+sha256. `update` queues a block on both lanes and
    returns, so the caller can write the block and receive the next one meanwhile. Each lane keeps at
    most one block in flight (order is preserved, memory stays bounded); the caller must not mutate a
    block it has passed in.
    """

    def __init__(self, hashers: tuple[Any, Any, Any] | None = None, length: int = 0) -> None:
        md5, sha1, sha256 = hashers or (
            hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False), hashlib.sha256())
        self._md5: Any = md5
        self._sha1: Any = sha1
        self._sha256: Any = sha256
        self._lanes: list[Future[None] | None] = [None, None]
        self.length = length

    def _sha(self, data: bytes | memoryview) -> None:
        self._sha1.update(data)
        self._sha256.update(data)

    def update(self, data: bytes | memoryview) -> None:
        if len(data) < _PARALLEL_MIN:  # the hand-off would cost more than it saves
            self._wait()
            self._md5.update(data)
            self._sha(data)
        else:
            for i, fn in enumerate((self._md5.update, self._sha)):
                lane = self._lanes[i]
                if lane is not None:
                    lane.result()
                self._lanes[i] = _POOL.submit(fn, data)
        self.length += len(data)

    def _wait(self) -> None:
        for i, lane in enumerate(self._lanes):
            if lane is not None:
                lane.result()
                self._lanes[i] = None

    def copy(self) -> ContentHasher:
        self._wait()
        return ContentHasher((self._md5.copy(), self._sha1.copy(), self._sha256.copy()), self.length)

    def hexdigests(self) -> tuple[str, str, str]:
        self._wait()
        return self._md5.hexdigest(), self._sha1.hexdigest(), self._sha256.hexdigest()


def write_blob(path: Path, chunks: Iterable[bytes]) -> StoredContent:
    """Stream `chunks` into a new blob file at `path`, hashing on the way; removes the file on failure."""
    hasher = ContentHasher()
    try:
        with open(path, "wb") as fh:
            for chunk in chunks:
                if chunk:
                    fh.write(chunk)
                    hasher.update(chunk)
    except BaseException:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        raise
    return content_of(path, hasher)


def content_of(path: Path, hasher: ContentHasher) -> StoredContent:
    md5, sha1, sha256 = hasher.hexdigests()
    return StoredContent(blob=path.name, size=hasher.length, md5=md5, sha1=sha1, sha256=sha256)


def rehash(path: Path, block: int = 4 << 20) -> ContentHasher:
    """Hash an existing file (a session resumed after a restart: hashlib state can't be persisted)."""
    hasher = ContentHasher()
    with open(path, "rb") as fh:
        while data := fh.read(block):
            hasher.update(data)
    return hasher
