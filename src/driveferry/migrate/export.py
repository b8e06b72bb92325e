"""Copying native documents (Google Docs, Sheets, Slides): export once, then relay the exported bytes.

A native document has no bytes and no hash of its own, so its copy can never be called identical to
it. What is proven instead is the export: the converted bytes are fetched whole (Drive answers an
export in one response, at most 10 MB), hashed, and relayed like a file whose reported hashes are
those of the export, so the relay's gates prove that the destination holds exactly the bytes the
source exported. Each export is recorded (`ExportRecord`) for the run summary, which the journal keeps
with the run, and the report lists it as "exported", not "copied identical".

`MigrationRelay` is the relay a migration uses: the plain `Relay` for files, this path for native
documents (the plan names them with the format's extension, which is how the format is found again
here, also in another process). Both keep a copy the destination rewrote as it stored it (altered.py)
instead of deleting it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, cast

from driveferry.errors import UnsupportedError
from driveferry.integrity.hashes import HashType
from driveferry.migrate.altered import AlteredRecord, altered_by_destination
from driveferry.migrate.relay import Checkpoint, Progress, Relay, RelayJob, RelayResult
from driveferry.providers.base import Entry, Features, Kind, Provider


@dataclass(frozen=True)
class ExportRecord:
    """One exported document: where it went, as what, and the proof of the bytes uploaded."""

    path: str  # destination name
    source_id: str
    mime_type: str
    size_bytes: int
    sha256: str
    dest_agrees: bool  # a hash the destination reports equals the hash of the exported bytes

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "source_id": self.source_id, "as": self.mime_type, "bytes": self.size_bytes,
                "sha256": self.sha256, "proven": self.dest_agrees,
                "note": "exported: a converted copy of a document that has no bytes of its own"}


class _ExportedBytes:
    """A read-only source holding one export in memory: what the relay reads the exported bytes from."""

    name = "export"
    hash_types: frozenset[HashType] = frozenset()
    features = Features()

    def __init__(self, data: bytes) -> None:
        self.data = data

    def open_range(self, entry: Entry, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        yield self.data[start:len(self.data) if end is None else end]



class _KeepsAltered(Relay):
    """A `Relay` whose destination check keeps (and records) a copy the destination rewrote."""

    def __init__(self, src: Provider, dst: Provider, altered: list[AlteredRecord], lock: threading.Lock,
                 extra: frozenset[HashType] = frozenset()) -> None:
        super().__init__(src, dst, extra)
        self.altered = altered
        self._lock = lock

    def _verify_or_delete(self, job: RelayJob, entry: Entry, hashes: Any) -> Any:
        size = job.source.size or 0
        if not altered_by_destination(self.dst.features, job.dest_name, entry, size, hashes):
            return super()._verify_or_delete(job, entry, hashes)
        with self._lock:
            self.altered.append(AlteredRecord(job.dest_name, job.source.id, size, dict(hashes), entry.size,
                                              dict(entry.hashes)))
        # checked as a copy that reports nothing: kept, and unverified (no hash agrees), never proven
        return super()._verify_or_delete(job, replace(entry, size=None, hashes=MappingProxyType({})), hashes)


class MigrationRelay(_KeepsAltered):
    """A `Relay` that exports native documents before relaying them (thread-safe)."""

    def __init__(self, src: Provider, dst: Provider, extra: frozenset[HashType] = frozenset()) -> None:
        self._exports_lock = threading.Lock()
        super().__init__(src, dst, [], self._exports_lock, extra)
        self.exports: list[ExportRecord] = []

    def copy(self, job: RelayJob, checkpoint: Checkpoint, progress: Progress | None = None) -> RelayResult:
        if job.source.kind is not Kind.NATIVE_DOC:
            return super().copy(job, checkpoint, progress)
        return self._copy_export(job, checkpoint, progress)

    def _copy_export(self, job: RelayJob, checkpoint: Checkpoint, progress: Progress | None) -> RelayResult:
        exporter = self.src.features.exporter
        fmt = exporter.format_named(job.dest_name) if exporter is not None else None
        if exporter is None or fmt is None:
            raise UnsupportedError(f"{job.source.path}: {self.src.name} cannot export it as {job.dest_name!r}")
        data = exporter.export(job.source, fmt)
        sha256, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
        exported = replace(job.source, kind=Kind.FILE, size=len(data), mime_type=fmt.mime_type,
                           hashes=MappingProxyType({HashType.SHA256: sha256, HashType.MD5: md5}))
        # a session of an earlier attempt may hold another export's bytes (exports are made anew): start over
        # the relay only reads its source
        inner = _KeepsAltered(cast(Provider, _ExportedBytes(data)), self.dst, self.altered, self._lock, self.extra)
        result = inner.copy(replace(job, source=exported, resume_token=None), checkpoint, progress)
        agrees = any(result.entry.hashes.get(k) == v for k, v in result.hashes.items())
        with self._exports_lock:
            self.exports.append(ExportRecord(job.dest_name, job.source.id, fmt.mime_type, len(data), sha256, agrees))
        return result
