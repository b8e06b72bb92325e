"""Zero-content oracles equal hashing real zero bytes; the scanner finds zero blocks, tails and holes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driveferry.integrity.hashes import HashType, hash_bytes, hash_path
from driveferry.integrity.zeros import (
    ZERO_BLOCK_BYTES,
    is_zero_content,
    quickxor_of_zeros,
    scan_zeros,
    zero_hash,
)

SIZES = [0, 1, 1000, (1 << 20) + 7, 3 * ZERO_BLOCK_BYTES]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", list(HashType))
def test_zero_hash_equals_hashing_zero_bytes(size: int, kind: HashType) -> None:
    expected = hash_bytes(bytes(size), [kind])[kind]
    assert zero_hash(size, kind) == expected
    assert is_zero_content(size, kind, expected.upper())
    assert not is_zero_content(size + 1, kind, expected)


def test_quickxor_of_zeros_matches_the_published_vector() -> None:
    assert quickxor_of_zeros(1000) == bytes.fromhex("00" * 12 + "e803000000000000").hex()


def test_non_zero_content_is_not_zero() -> None:
    data = b"\0" * 999 + b"\1"
    for kind in HashType:
        assert not is_zero_content(1000, kind, hash_bytes(data, [kind])[kind])


def test_negative_size_is_rejected() -> None:
    with pytest.raises(ValueError):
        zero_hash(-1, HashType.MD5)


def test_hash_path_matches_hash_bytes_and_ranges(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    f = tmp_path / "f"
    f.write_bytes(data)
    assert hash_path(f, HashType, block_bytes=1 << 20) == hash_bytes(data, HashType)
    assert hash_path(f, [HashType.MD5], start=10, end=2_000_000) == hash_bytes(data[10:2_000_000], [HashType.MD5])


# --- scanner (holes are made here, in the test, with seek/truncate) -------------------------------------

BLOCK = 64 * 1024


def test_scan_sparse_file_with_hole_and_zero_tail(tmp_path: Path) -> None:
    f = tmp_path / "sparse"
    with open(f, "wb") as fh:
        fh.write(b"A" * BLOCK)          # block 0: data
        fh.seek(8 * BLOCK)              # blocks 1..7: a hole (on filesystems that keep holes)
        fh.write(b"B" * 100 + bytes(BLOCK - 100))  # block 8: data, then zeros
        fh.write(bytes(2 * BLOCK))      # blocks 9..10: written zeros (not a hole)
    r = scan_zeros(f, block_bytes=BLOCK)
    assert r.size == 11 * BLOCK
    assert r.zero_runs == ((BLOCK, 8 * BLOCK), (9 * BLOCK, 11 * BLOCK))
    assert r.zero_block_count == 9
    assert r.zero_tail_bytes == 3 * BLOCK - 100
    assert not r.all_zero
    if r.holes_supported and r.holes:
        assert r.holes[0][0] >= BLOCK and r.holes[0][1] <= 8 * BLOCK
        assert r.sparse


def test_scan_truncated_file_is_all_zero_and_a_hole(tmp_path: Path) -> None:
    f = tmp_path / "holey"
    with open(f, "wb") as fh:
        fh.truncate(10 * BLOCK + 5)
    r = scan_zeros(f, block_bytes=BLOCK)
    assert r.all_zero and r.zero_tail_bytes == r.size == 10 * BLOCK + 5
    assert r.zero_runs == ((0, r.size),)
    if r.holes_supported:
        assert r.holes == ((0, r.size),)
        assert r.sparse and r.allocated_bytes < r.size


def test_scan_written_zeros_and_plain_data(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros"
    zeros.write_bytes(bytes(3 * BLOCK + 1))
    r = scan_zeros(zeros, block_bytes=BLOCK)
    assert r.all_zero and r.zero_runs == ((0, 3 * BLOCK + 1),) and not r.sparse
    data = tmp_path / "data"
    data.write_bytes(b"x" * (2 * BLOCK) + b"y")
    r = scan_zeros(data, block_bytes=BLOCK)
    assert r.zero_runs == () and r.zero_tail_bytes == 0 and not r.all_zero


def test_scan_empty_file_and_default_block(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    r = scan_zeros(empty)
    assert r.size == 0 and r.zero_runs == () and r.zero_tail_bytes == 0 and not r.all_zero
    f = tmp_path / "tail"
    f.write_bytes(b"z" + bytes(ZERO_BLOCK_BYTES * 2))
    r = scan_zeros(f)
    assert r.zero_tail_bytes == 2 * ZERO_BLOCK_BYTES and r.zero_runs == ((ZERO_BLOCK_BYTES, 2 * ZERO_BLOCK_BYTES + 1),)
