"""quickXorHash against the published vectors (api-notes 14.2), the slow reference, and resumed states."""

from __future__ import annotations

import base64
import random

import pytest

from driveferry.integrity.hashes import HashType, QuickXor, QuickXorState, from_wire, to_wire

VECTORS = [
    (b"", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    (b"a", "YQAAAAAAAAAAAAAAAQAAAAAAAAA="),
    (b"hello", "aCgDG9jwBgAAAAAABQAAAAAAAAA="),
    (b"hello world", "aCgDG9jwBhDc4Q1yawMZAAAAAAA="),
    (bytes(1000), "AAAAAAAAAAAAAAAA6AMAAAAAAAA="),
    (b"\xff" * 1000, "Yxvb2MY2trGNbWxj89jYOc5xjnM="),
    (bytes(range(256)), "QkGEfSisZcA7k+FCh71r2dbCayY="),
    (bytes(range(256)) * 3, "rxAOGe1RimTF/e+k/m0O5nnSZT8="),
    (base64.b64decode("Sg=="), "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
    (base64.b64decode("NbYXsp5/K6mR+NmHwExjvWeWDJFnXTKWVlzYHoesp2E="), "wjuAuWDiq04qDt1R8hHWDDcwVoQ="),
]


def reference(data: bytes) -> str:
    """The specification's slow reference (api-notes 14.1), base64."""
    reg, pos = 0, 0
    for b in data:
        if b:
            v = b << pos
            reg ^= (v | (v >> 160)) & ((1 << 160) - 1)
        pos = (pos + 11) % 160
    out = bytearray(reg.to_bytes(20, "little"))
    for i, lb in enumerate(len(data).to_bytes(8, "little")):
        out[12 + i] ^= lb
    return base64.b64encode(bytes(out)).decode()


@pytest.mark.parametrize(("data", "expected"), VECTORS, ids=[f"v{i}" for i in range(len(VECTORS))])
def test_published_vectors(data: bytes, expected: str) -> None:
    h = QuickXor()
    h.update(data)
    assert base64.b64encode(h.digest()).decode() == expected
    assert reference(data) == expected
    hex_value = from_wire(HashType.QUICKXOR, expected)
    assert hex_value == h.digest().hex() and to_wire(HashType.QUICKXOR, hex_value) == expected


@pytest.mark.parametrize(("data", "expected"), VECTORS, ids=[f"v{i}" for i in range(len(VECTORS))])
def test_vectors_byte_by_byte_with_saved_state(data: bytes, expected: str) -> None:
    """Every byte in its own update, with the state saved to JSON and resumed in between."""
    state = QuickXor().state()
    for i in range(len(data)):
        h = QuickXor(QuickXorState.from_json(state.to_json()))
        h.update(data[i:i + 1])
        state = h.state()
    assert base64.b64encode(QuickXor(state).digest()).decode() == expected


@pytest.mark.parametrize("cuts", [[1], [3, 7], [159, 160, 161], [1000, 1001, 4095], [7, 13, 8191, 20000]])
def test_resume_across_odd_chunk_boundaries(cuts: list[int]) -> None:
    data = random.Random(sum(cuts)).randbytes(30_011)
    whole = QuickXor()
    whole.update(data)
    state: QuickXorState | None = None
    bounds = [0, *cuts, len(data)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        part = QuickXor(state)  # a new "process" per chunk
        part.update(data[start:end])
        state = part.state()
    assert state is not None and state.length == len(data)
    assert QuickXor(state).digest() == whole.digest()
    assert base64.b64encode(whole.digest()).decode() == reference(data)


def test_state_json_round_trip() -> None:
    h = QuickXor()
    h.update(b"x" * 12345)
    s = h.state()
    assert QuickXorState.from_json(s.to_json()) == s


@pytest.mark.parametrize("seed", range(6))
def test_fold_matches_the_c_extension_on_random_splits_and_buffer_types(seed: int) -> None:
    """The numpy fold against the quickxorhash C extension (the reference implementation), fed in random
    pieces of every buffer type, including unaligned memoryviews, across 160-byte block edges."""
    quickxorhash = pytest.importorskip("quickxorhash")
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(1, 3 << 20))
    ref = quickxorhash.quickxorhash()
    ref.update(data)
    h = QuickXor()
    pos = 0
    view = memoryview(bytearray(b"\0" + data))[1:]  # odd start address: not 8-byte aligned
    while pos < len(data):
        n = rng.choice([1, 7, 159, 160, 161, 4096, rng.randrange(1, 1 << 20)])
        kind = rng.randrange(3)
        piece = view[pos:pos + n]
        h.update(piece if kind == 0 else bytes(piece) if kind == 1 else bytearray(piece))
        pos += n
    assert h.digest() == ref.digest()
    assert h.state().length == len(data)


def test_fold_of_zero_and_long_runs_matches_reference() -> None:
    quickxorhash = pytest.importorskip("quickxorhash")
    for data in (bytes(160 * 1000), b"\xff" * (160 * 1000 + 3), bytes(range(256)) * 4099):
        ref = quickxorhash.quickxorhash()
        ref.update(data)
        h = QuickXor()
        h.update(data)
        assert h.digest() == ref.digest()
