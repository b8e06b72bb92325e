"""Zeros: the hash of N zero bytes for every hash type, and a scanner for zero runs and holes in files.

Why: a file whose remote hash equals the hash of `size` zero bytes holds no data at all (a failed
download, a preallocated file a crashed writer never filled, a FUSE placeholder). The verifier
classifies those without downloading anything, and the local scanner finds zero-filled tails and
sparse holes, which are how such damage looks on disk.

quickXorHash of zeros is computed directly: every byte XORs zero into the register, so the digest is
an all-zero register with the length folded into bytes 12..19. The other hashes are computed once per
size by streaming a preallocated zero block, and cached (bounded LRU).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from functools import lru_cache

from driveferry.integrity.hashes import HashType, new_hasher

ZERO_BLOCK_BYTES = 1 << 20
_ZEROS = bytes(ZERO_BLOCK_BYTES)


def quickxor_of_zeros(size: int) -> str:
    """quickXorHash (hex) of `size` zero bytes: a zero register with the little-endian length folded in."""
    if size < 0:
        raise ValueError("size must be >= 0")
    return (bytes(12) + (size & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")).hex()


@lru_cache(maxsize=512)
def _streamed_zero_hash(size: int, kind: HashType) -> str:
    h = new_hasher(kind)
    full, rest = divmod(size, ZERO_BLOCK_BYTES)
    for _ in range(full):
        h.update(_ZEROS)
    if rest:
        h.update(_ZEROS[:rest])
    return h.digest().hex()


def zero_hash(size: int, kind: HashType) -> str:
    """Lowercase hex digest of `size` zero bytes. Memory stays bounded at one 1 MiB block for any size."""
    if size < 0:
        raise ValueError("size must be >= 0")
    if kind is HashType.QUICKXOR:
        return quickxor_of_zeros(size)
    return _streamed_zero_hash(size, kind)


def is_zero_content(size: int, hash_type: HashType, hex_digest: str) -> bool:
    """True when `hex_digest` (any case) is the `hash_type` hash of `size` zero bytes.

    An empty file (size 0) counts as zero content; callers that care test `size` first.
    """
    return zero_hash(size, hash_type) == hex_digest.strip().lower()


# --- local files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZeroReport:
    """What a scan of one local file found. Offsets are bytes; ranges are half-open [start, end).

    zero_runs: maximal runs of consecutive all-zero blocks (block-aligned; the last may be short).
    zero_tail_bytes: length of the zero-filled suffix, exact to the byte (size if the file is all zeros).
    holes: sparse holes reported by SEEK_HOLE/SEEK_DATA (empty when the filesystem cannot say).
    allocated_bytes: st_blocks * 512; less than size means the file is sparse.
    """

    size: int
    block_bytes: int
    zero_runs: tuple[tuple[int, int], ...]
    zero_tail_bytes: int
    holes: tuple[tuple[int, int], ...]
    holes_supported: bool
    allocated_bytes: int

    @property
    def all_zero(self) -> bool:
        return self.size > 0 and self.zero_tail_bytes == self.size

    @property
    def sparse(self) -> bool:
        return self.allocated_bytes < self.size

    @property
    def zero_block_count(self) -> int:
        return sum(-(-(end - start) // self.block_bytes) for start, end in self.zero_runs)


def find_holes(fd: int, size: int) -> tuple[tuple[tuple[int, int], ...], bool]:
    """Sparse holes of an open file via SEEK_DATA/SEEK_HOLE, and whether the filesystem supports them.

    Filesystems without support (some FUSE mounts) raise EINVAL/ENOTSUP; those report (), False.
    A filesystem that supports the calls but keeps no holes reports the whole file as data.
    """
    holes: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no data after pos, the rest is one hole
                    raise
                holes.append((pos, size))
                break
            if data > pos:
                holes.append((pos, min(data, size)))
            pos = os.lseek(fd, data, os.SEEK_HOLE)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            return (), False
        raise
    return tuple(holes), True


def scan_zeros(path: str | os.PathLike[str], block_bytes: int = ZERO_BLOCK_BYTES) -> ZeroReport:
    """Scan a local file for all-zero blocks, its zero-filled tail and its sparse holes.

    Blocks that lie wholly inside a hole are counted as zero without being read. Comparison is one
    memcmp per block (bytearray == bytes), never a per-byte Python loop. Raises OSError.
    """
    if block_bytes <= 0:
        raise ValueError("block_bytes must be > 0")
    zeros = _ZEROS if block_bytes == ZERO_BLOCK_BYTES else bytes(block_bytes)
    buf = bytearray(block_bytes)
    view = memoryview(buf)
    runs: list[tuple[int, int]] = []
    last_data_block = -1  # start offset of the last block holding a non-zero byte
    with open(path, "rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        size = st.st_size
        holes, supported = find_holes(fh.fileno(), size)
        offset, h = 0, 0  # h: first hole that may still contain blocks (offsets only grow)
        while offset < size:
            end = min(size, offset + block_bytes)
            n = end - offset
            while h < len(holes) and holes[h][1] <= offset:
                h += 1
            if h < len(holes) and holes[h][0] <= offset and end <= holes[h][1]:
                is_zero = True
            else:
                fh.seek(offset)
                got = fh.readinto(view[:n])
                if got is None or got < n:  # the file shrank while we read it
                    n = got or 0
                    end = offset + n
                    if not n:
                        break
                is_zero = (buf == zeros) if n == block_bytes else (view[:n] == zeros[:n])
            if is_zero:
                if runs and runs[-1][1] == offset:
                    runs[-1] = (runs[-1][0], end)
                else:
                    runs.append((offset, end))
            else:
                last_data_block = offset
            offset = end
        size = offset if offset < size else size
        if last_data_block < 0:
            tail = size
        else:
            # only the last data block needs a byte-exact look: strip its trailing zeros
            fh.seek(last_data_block)
            block = fh.read(min(block_bytes, size - last_data_block))
            tail = size - last_data_block - len(block.rstrip(b"\0"))
    return ZeroReport(size=size, block_bytes=block_bytes, zero_runs=tuple(runs), zero_tail_bytes=tail,
                      holes=holes, holes_supported=supported, allocated_bytes=st.st_blocks * 512)
