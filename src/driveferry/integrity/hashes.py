"""Content hashes: the types both clouds use, one streaming pass for any set of them, and encodings.

Digests are exchanged inside driveferry as lowercase hex, whatever the remote's wire encoding
(quickXorHash travels as base64 on Graph; Drive sends hex). `to_hex`/`from_wire` are the one place
that converts.

quickXorHash is XOR-linear, so its running state (a 160-bit register and a length) is a small value
that can be saved and resumed (the Graph emulator keeps one per upload session); hashlib's states
cannot, and are rebuilt by re-reading.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import xxhash


class HashType(enum.StrEnum):
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    QUICKXOR = "quickxor"
    XXH3_128 = "xxh3_128"

    @classmethod
    def parse(cls, text: str) -> HashType:
        """Accept the names users type (`md5`, `SHA-256`, `quickxorhash`, `qxh`)."""
        key = text.strip().lower().replace("-", "").replace("_", "")
        for member in cls:
            if member.value.replace("_", "") == key:
                return member
        aliases = {"quickxorhash": cls.QUICKXOR, "qxh": cls.QUICKXOR, "xxh3": cls.XXH3_128, "xxh128": cls.XXH3_128}
        if key in aliases:
            return aliases[key]
        names = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown hash type {text!r}; use one of {names}")


Buffer = bytes | bytearray | memoryview  # what every hasher here accepts without copying


class _Hasher(Protocol):
    def update(self, data: Buffer, /) -> None: ...
    def digest(self) -> bytes: ...


_WIDTH_BITS = 160
_SHIFT = 11
_MASK = (1 << _WIDTH_BITS) - 1
_BLOCK = 160  # bytes after which the bit positions repeat (160 * 11 = 0 mod 160)
_BLOCK_MASK = (1 << (_BLOCK * 8)) - 1


@dataclass(frozen=True)
class QuickXorState:
    """A resumable quickXorHash state: the raw 160-bit register (before the length fold) and the length."""

    register: int
    length: int

    def to_json(self) -> dict[str, str | int]:
        return {"register": format(self.register, "040x"), "length": self.length}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> QuickXorState:
        return cls(int(str(data["register"]), 16), int(str(data["length"])))


_WIDE = _BLOCK * 64  # 10,240 bytes: a multiple of 160, so folding rows this wide keeps positions mod 160


def _xor_fold(data: Buffer, nbytes: int) -> int:
    """The first `nbytes` (a multiple of 160) of `data` XOR-folded into one 160-byte block, as an int.

    Two folds: rows of `_WIDE` bytes first (each XOR runs over 1,280 words, which numpy vectorises),
    then the one wide row and the tail into 160 bytes. Folding straight into rows of 20 words ran
    numpy's loop 20 words at a time: 0.26 s of CPU per GiB here against 0.08 (benchmarks/hashing.py).
    numpy is imported on first use: only quickXorHash needs it, and it costs ~20 MB of memory. No BLAS
    runs here, so OpenBLAS (loaded with numpy) gets one thread unless the user chose: its pool of
    threads, one per core, took ~2 % of a relay's CPU (perf: blas_thread_server) for nothing."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np
    words = np.frombuffer(data, dtype=np.uint64, count=nbytes // 8)
    wide = nbytes // _WIDE * (_WIDE // 8)
    fold = np.zeros(_BLOCK // 8, dtype=np.uint64)
    if wide:
        row = np.bitwise_xor.reduce(words[:wide].reshape(-1, _WIDE // 8), axis=0)
        fold ^= np.bitwise_xor.reduce(row.reshape(-1, _BLOCK // 8), axis=0)
    if wide < words.size:
        fold ^= np.bitwise_xor.reduce(words[wide:].reshape(-1, _BLOCK // 8), axis=0)
    return int.from_bytes(fold.tobytes(), "little")


class QuickXor:
    """quickXorHash over a stream, with a state that can be saved and resumed.

    Byte i of the stream is XORed into the 160-bit register at bit (11 * i) mod 160, so byte positions
    repeat every 160 bytes. The bytes are therefore first XOR-folded into one 160-byte block, indexed by
    stream position mod 160 (numpy, memory speed, GIL released), and only that block is spread over the
    register, once, when a digest or state is asked for. That is ~15x faster than the per-byte C
    extension (benchmarks/hashing.py) and takes any buffer (bytes, bytearray, memoryview) without a copy.
    """

    def __init__(self, state: QuickXorState | None = None) -> None:
        self._base = state.register if state else 0  # the register of a resumed state
        self._fold = 0  # 160 bytes as an int: byte k (bits 8k..8k+7) = XOR of stream bytes at positions = k mod 160
        self._length = state.length if state else 0

    def update(self, data: Buffer) -> None:
        n = memoryview(data).nbytes
        if not n:
            return
        body = n - n % _BLOCK
        local = 0
        if body:
            local = _xor_fold(data, body)
        if body < n:
            local ^= int.from_bytes(memoryview(data).cast("B")[body:], "little")
        rot = (self._length % _BLOCK) * 8  # local byte k sits at stream position length + k
        if rot:
            local = ((local << rot) | (local >> (_BLOCK * 8 - rot))) & _BLOCK_MASK
        self._fold ^= local
        self._length += n

    def _register(self) -> int:
        reg = self._base
        for k, b in enumerate(self._fold.to_bytes(_BLOCK, "little")):
            if b:
                v = b << (k * _SHIFT) % _WIDTH_BITS
                reg ^= (v | (v >> _WIDTH_BITS)) & _MASK
        return reg

    def state(self) -> QuickXorState:
        return QuickXorState(self._register(), self._length)

    def digest(self) -> bytes:
        out = bytearray(self._register().to_bytes(20, "little"))
        for i, b in enumerate((self._length & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")):
            out[12 + i] ^= b
        return bytes(out)


def new_hasher(kind: HashType) -> _Hasher:
    """A fresh hasher for `kind` (hashlib, xxhash or QuickXor)."""
    if kind is HashType.MD5:
        return hashlib.md5(usedforsecurity=False)
    if kind is HashType.SHA1:
        return hashlib.sha1(usedforsecurity=False)
    if kind is HashType.SHA256:
        return hashlib.sha256()
    if kind is HashType.QUICKXOR:
        return QuickXor()
    return xxhash.xxh3_128()


class MultiHasher:
    """Computes several hashes in one pass over the same chunks.

    `update` feeds every hasher; `hexdigests()` returns lowercase hex per type. A resumed upload
    rebuilds its hashes by feeding the committed prefix again (the relay re-reads it from the source).
    """

    def __init__(self, kinds: Iterable[HashType]) -> None:
        self.kinds = frozenset(kinds)
        self._hashers: dict[HashType, _Hasher] = {kind: new_hasher(kind) for kind in self.kinds}
        self.length = 0

    def update(self, data: Buffer) -> None:
        for h in self._hashers.values():
            h.update(data)
        self.length += memoryview(data).nbytes

    def hexdigests(self) -> dict[HashType, str]:
        return {kind: h.digest().hex() for kind, h in self._hashers.items()}


def hash_bytes(data: bytes, kinds: Iterable[HashType]) -> dict[HashType, str]:
    """Hex digests of `data` for each type (convenience for small inputs and tests)."""
    m = MultiHasher(kinds)
    m.update(data)
    return m.hexdigests()


# --- encodings -----------------------------------------------------------------------------------------


def b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


def from_wire(kind: HashType, value: str) -> str:
    """Normalise a digest as a remote reports it to lowercase hex.

    Graph sends quickXorHash in base64; everything else arrives as hex (any case).
    """
    v = value.strip()
    if kind is HashType.QUICKXOR and len(v) == 28 and v.endswith("="):
        return b64_to_hex(v)
    try:
        bytes.fromhex(v)
    except ValueError:
        try:
            return b64_to_hex(v)
        except binascii.Error as exc:
            raise ValueError(f"not a hex or base64 digest: {value!r}") from exc
    return v.lower()


def to_wire(kind: HashType, hex_value: str) -> str:
    """The encoding the clouds use on the wire: base64 for quickXorHash, hex for the rest."""
    return hex_to_b64(hex_value) if kind is HashType.QUICKXOR else hex_value.lower()


# --- local files -----------------------------------------------------------------------------------------

FILE_READ_BYTES = 4 << 20  # 4 MiB reads: large enough that hashing, not syscalls, dominates


def hash_path(path: str | os.PathLike[str], kinds: Iterable[HashType], *,
              start: int = 0, end: int | None = None, block_bytes: int = FILE_READ_BYTES) -> dict[HashType, str]:
    """Hex digests of bytes [start, end) of a local file in one pass of `block_bytes` reads.

    Raises OSError (FileNotFoundError, IsADirectoryError, ...) as `open` does.
    """
    hasher = MultiHasher(kinds)
    buf = bytearray(block_bytes)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        if start:
            fh.seek(start)
        remaining = -1 if end is None else max(0, end - start)
        while remaining:
            want = block_bytes if remaining < 0 else min(block_bytes, remaining)
            n = fh.readinto(view[:want])
            if not n:
                break
            hasher.update(view[:n])
            if remaining > 0:
                remaining -= n
    return hasher.hexdigests()
