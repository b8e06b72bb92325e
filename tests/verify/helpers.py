"""Builders for verify tests: LocalFile and Entry values from bytes, with real hashes and zero facts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.providers.base import Entry, Kind
from driveferry.verify.cache import ZeroFacts
from driveferry.verify.scan import LocalFile

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=2)
KINDS = (HashType.MD5, HashType.SHA256)


def data(n: int, seed: int = 1) -> bytes:
    """`n` deterministic bytes that never end in 0x00 (so they have no zero tail)."""
    return bytes(((i * 131 + seed * 7) % 255) + 1 for i in range(n))


def local(data_: bytes, path: str = "a.bin", *, mtime: datetime = OLD, holes: int = 0,
          changed: bool = False, error: str | None = None) -> LocalFile:
    tail = len(data_) - len(data_.rstrip(b"\0"))
    zeros = ZeroFacts(zero_tail_bytes=tail, all_zero=len(data_) > 0 and tail == len(data_),
                      hole_count=1 if holes else 0, hole_bytes=holes)
    hashes = {} if error else hash_bytes(data_, KINDS)
    return LocalFile(path, len(data_), mtime, hashes, zeros, changed_during_scan=changed, error=error)


def remote(data_: bytes | None, path: str = "a.bin", *, modified: datetime = OLD, kind: Kind = Kind.FILE,
           kinds: tuple[HashType, ...] = KINDS, size: int | None = None, id_: str = "r1",
           properties: Mapping[str, str] | None = None) -> Entry:
    hashes = hash_bytes(data_, kinds) if data_ is not None and kinds else {}
    return Entry(id=id_, path=path, name=path.rsplit("/", 1)[-1], kind=kind,
                 size=size if size is not None else (len(data_) if data_ is not None else None),
                 modified=modified, hashes=hashes, properties=dict(properties or {}))
