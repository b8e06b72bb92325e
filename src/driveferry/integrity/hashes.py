"""Content hashes: the types both clouds use, one streaming pass for any set of them, and encodings.

Digests are exchanged inside driveferry as lowercase hex, whatever the remote's wire encoding
(quickXorHash travels as base64 on Graph; Drive sends hex). `to_hex`/`from_wire` are the one place
that converts.

quickXorHash is XOR-linear, so its running state (a 160-bit register and a length) is a small value
that can be saved in the journal and resumed; hashlib's states cannot, and are rebuilt by re-reading.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import os
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import quickxorhash as _qxh
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


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


_WIDTH_BITS = 160
_SHIFT = 11
_MASK = (1 << _WIDTH_BITS) - 1


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


class QuickXor:
    """quickXorHash over a stream, with a state that can be saved and resumed.

    Each chunk is hashed by the C extension (which holds the GIL while it runs); its raw register is recovered by
    undoing the length fold and rotated into place by (offset * 11) mod 160 bits.
    """

    def __init__(self, state: QuickXorState | None = None) -> None:
        self._register = state.register if state else 0
        self._length = state.length if state else 0

    def update(self, data: bytes) -> None:
        if not data:
            return
        h = _qxh.quickxorhash()
        h.update(data)
        raw = bytearray(h.digest())
        for i, b in enumerate(len(data).to_bytes(8, "little")):
            raw[12 + i] ^= b
        chunk_reg = int.from_bytes(raw, "little")
        rot = (self._length * _SHIFT) % _WIDTH_BITS
        if rot:
            chunk_reg = ((chunk_reg << rot) | (chunk_reg >> (_WIDTH_BITS - rot))) & _MASK
        self._register ^= chunk_reg
        self._length += len(data)

    def state(self) -> QuickXorState:
        return QuickXorState(self._register, self._length)

    def digest(self) -> bytes:
        out = bytearray(self._register.to_bytes(20, "little"))
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

    `update` feeds every hasher; `hexdigests()` returns lowercase hex per type. The quickXor state can be
    resumed from the journal (`quickxor_state`); hashlib states are rebuilt by feeding the prefix again.
    """

    def __init__(self, kinds: Iterable[HashType], quickxor_state: QuickXorState | None = None) -> None:
        self.kinds = frozenset(kinds)
        self._hashers: dict[HashType, _Hasher] = {}
        for kind in self.kinds:
            self._hashers[kind] = QuickXor(quickxor_state) if kind is HashType.QUICKXOR else new_hasher(kind)
        self.length = 0

    def update(self, data: bytes) -> None:
        for h in self._hashers.values():
            h.update(data)
        self.length += len(data)

    def quickxor_state(self) -> QuickXorState | None:
        h = self._hashers.get(HashType.QUICKXOR)
        return h.state() if isinstance(h, QuickXor) else None

    def hexdigests(self) -> dict[HashType, str]:
        return {kind: h.digest().hex() for kind, h in self._hashers.items()}


_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
PARALLEL_MIN_BYTES = 1 << 20  # below this, handing work to threads costs more than it saves


def _pool() -> ThreadPoolExecutor:
    # One shared pool used only for hashing: its tasks never submit to it, so waiting cannot deadlock.
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1), thread_name_prefix="hash")
        return _POOL


class ThreadedMultiHasher(MultiHasher):
    """MultiHasher that feeds its hashers in parallel threads for chunks of 1 MiB and more.

    hashlib and xxhash release the GIL while hashing a large buffer; the quickxorhash extension does
    NOT (measured: a Python loop in another thread stalls while it runs). So the GIL-releasing hashers
    go to pool threads, and only once each has entered its update does the calling thread run the
    GIL-holding one (quickXor), which then overlaps with them instead of blocking their start.
    `update` returns when all are done: the interface and results are exactly MultiHasher's. Whether it
    is faster depends on free cores (see benchmarks/hashing.py). One caller at a time, like any hasher.
    """

    def update(self, data: bytes) -> None:
        hashers = list(self._hashers.values())
        if len(data) < PARALLEL_MIN_BYTES or len(hashers) < 2:
            super().update(data)
            return
        holds_gil = [h for h in hashers if isinstance(h, QuickXor)]
        releases = [h for h in hashers if not isinstance(h, QuickXor)]
        mine = holds_gil or releases[:1]
        others = releases if holds_gil else releases[1:]
        started = [threading.Event() for _ in others]
        futures = [_pool().submit(_started_update, h, data, ev) for h, ev in zip(others, started, strict=True)]
        for ev in started:
            ev.wait()
        for h in mine:
            h.update(data)
        for f in futures:
            f.result()
        self.length += len(data)


def _started_update(h: _Hasher, data: bytes, started: threading.Event) -> None:
    started.set()
    h.update(data)


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
            # bytes() copies, but every hasher needs a bytes-like object that stays put; one copy per
            # 4 MiB is noise next to the hashing itself
            hasher.update(bytes(view[:n]))
            if remaining > 0:
                remaining -= n
    return hasher.hexdigests()
