"""Relay one file: Range download -> one hashing pass -> resumable upload, never committing bad bytes.

The bytes are read once, hashed once (every hash either end can check), and written once. The final
chunk is withheld until the streamed hashes equal the hashes the source reports; on a mismatch the
upload session is aborted, so a corrupt copy never appears on the destination. After the destination
commits, the hashes it reports are checked against the streamed ones too.

Resuming: the caller passes the journal's session token. The committed offset is asked from the server
(never trusted from the journal), the hash state is rebuilt by re-reading the already-sent prefix from
the source (download only, nothing is uploaded twice), and the stream continues from there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from driveferry.errors import IntegrityError, UploadSessionLostError
from driveferry.integrity.hashes import Buffer, HashType, MultiHasher
from driveferry.integrity.provenance import provenance_properties
from driveferry.providers.base import Entry, Provider, UploadMeta, UploadSession

log = logging.getLogger(__name__)

# Hashes the relay always computes: MD5 and SHA-256 go into the provenance record; quickXor proves
# the copy against a OneDrive source without downloading either side again.
ALWAYS = frozenset({HashType.MD5, HashType.SHA256, HashType.QUICKXOR})
_CHECKABLE = frozenset({HashType.MD5, HashType.SHA1, HashType.SHA256, HashType.QUICKXOR})

Checkpoint = Callable[[str, int], None]  # (session token, committed offset)
Progress = Callable[[int], None]  # bytes newly committed on the destination


@dataclass(frozen=True)
class RelayJob:
    """What to copy and where."""

    source: Entry
    dest_parent: Entry
    dest_name: str
    run_id: str
    chunk_size: int
    resume_token: str | None = None
    replace: bool = False


@dataclass(frozen=True)
class RelayResult:
    entry: Entry
    hashes: Mapping[HashType, str]
    bytes_uploaded: int  # bytes sent by this call (a resumed file sends only its tail)
    resumed_from: int
    properties: Mapping[str, str] = field(default_factory=dict)


def rechunk(blocks: Iterable[Buffer], buf: bytearray | memoryview) -> Iterator[memoryview]:
    """Regroup a stream of arbitrary blocks into chunks of exactly `len(buf)` bytes (the last may be short).

    Each chunk is copied into `buf` and handed out as a view of it, valid until the next chunk is asked
    for: one buffer per transfer, reused for every chunk of every file, so memory stays at one chunk per
    transfer (plus the block in hand) and nothing is allocated per chunk. The consumer must be done with
    a chunk (sent, hashed) before it asks for the next; the adapters' `send` keeps no reference to it.
    """
    size = len(buf)
    if not size:  # nothing is expected: bytes that come anyway are handed out as they are
        yield from (memoryview(b) for b in blocks if memoryview(b).nbytes)
        return
    view = memoryview(buf)
    held = 0
    for block in blocks:
        data = memoryview(block).cast("B")
        pos, n = 0, len(data)
        while pos < n:
            take = min(n - pos, size - held)
            view[held:held + take] = data[pos:pos + take]
            held += take
            pos += take
            if held == size:
                yield view
                held = 0
    if held:
        yield view[:held]


def _check_source(job: RelayJob, hashes: Mapping[HashType, str]) -> None:
    for kind, expected in job.source.hashes.items():
        actual = hashes.get(kind)
        if actual is not None and actual != expected:
            raise IntegrityError(f"{job.source.path}: streamed bytes differ from the source",
                                 hash_type=kind.value, expected=expected, actual=actual)


def _check_dest(job: RelayJob, entry: Entry, hashes: Mapping[HashType, str]) -> None:
    if entry.size is not None and job.source.size is not None and entry.size != job.source.size:
        raise IntegrityError(f"{job.dest_name}: destination size differs", hash_type="size",
                             expected=str(job.source.size), actual=str(entry.size))
    for kind, reported in entry.hashes.items():
        streamed = hashes.get(kind)
        if streamed is not None and streamed != reported:
            raise IntegrityError(f"{job.dest_name}: destination reports other content",
                                 hash_type=kind.value, expected=streamed, actual=reported)


class Relay:
    """Copies files from `src` to `dst` (one instance per migration; thread-safe: holds no per-file state,
    only a chunk buffer per thread)."""

    def __init__(self, src: Provider, dst: Provider) -> None:
        self.src = src
        self.dst = dst
        # what the source reports is checked before commit; MD5/SHA-256 cover every destination
        # (Drive reports both, local computes them) and quickXor covers OneDrive
        self.kinds = frozenset(ALWAYS | (src.hash_types & _CHECKABLE))
        self._buffers = threading.local()

    def _session(self, job: RelayJob, meta: UploadMeta, size: int) -> tuple[UploadSession, int]:
        if job.resume_token:
            try:
                session = self.dst.resume_upload(job.resume_token)
                return session, session.committed()
            except UploadSessionLostError:
                log.info("%s: upload session expired; restarting the file", job.source.path)
        return self.dst.begin_upload(job.dest_parent, job.dest_name, size, meta), 0

    def copy(self, job: RelayJob, checkpoint: Checkpoint, progress: Progress | None = None) -> RelayResult:
        """Copy one file. Raises IntegrityError (nothing committed), provider errors, or returns the result.

        `checkpoint(token, offset)` is called once the session exists (offset 0) and after every chunk
        the destination confirmed, so a crash loses at most the chunk in flight.
        """
        src_entry = job.source
        size = src_entry.size or 0
        base_props = provenance_properties(src_entry, job.run_id, None)
        meta = UploadMeta(modified=src_entry.modified, created=src_entry.created, mime_type=src_entry.mime_type,
                          properties=base_props, replace=job.replace)
        hasher = MultiHasher(self.kinds)
        buf = self._buffer(min(size, job.chunk_size))
        if size <= job.chunk_size:
            return self._copy_small(job, meta, hasher, buf, checkpoint, progress)
        session, committed = self._session(job, meta, size)
        checkpoint(session.token, committed)
        resumed_from = committed
        if committed:
            for block in self.src.open_range(src_entry, 0, committed):
                hasher.update(block)
        offset = committed
        result: Entry | None = None
        for chunk in rechunk(self.src.open_range(src_entry, offset, size), buf):
            hasher.update(chunk)
            last = offset + len(chunk) >= size
            if last:
                try:
                    _check_source(job, hasher.hexdigests())
                except IntegrityError:
                    session.abort()
                    raise
            result = session.send(offset, chunk, last)
            sent = len(chunk)
            offset += sent
            if progress:
                progress(sent)
            if not last:
                checkpoint(session.token, offset)
        if result is None:  # the server may have finished the file on a status query
            result = session.send(size, b"", True)
        if result is None:
            raise IntegrityError(f"{src_entry.path}: upload did not finish", hash_type="size",
                                 expected=str(size), actual=str(offset))
        hashes = hasher.hexdigests()
        return self._finish(job, result, hashes, size - resumed_from, resumed_from)

    def _buffer(self, nbytes: int) -> memoryview:
        """`nbytes` of this thread's buffer: one per transfer thread, kept for the run and grown only
        as far as a file needs (at most a chunk), so small files never cost a whole chunk of memory."""
        buf: bytearray | None = getattr(self._buffers, "buf", None)
        if buf is None or len(buf) < nbytes:
            self._buffers.buf = None  # drop the old one before the new one exists
            buf = self._buffers.buf = bytearray(nbytes)
        return memoryview(buf)[:nbytes]

    def _copy_small(self, job: RelayJob, meta: UploadMeta, hasher: MultiHasher, buf: memoryview,
                    checkpoint: Checkpoint, progress: Progress | None) -> RelayResult:
        """One chunk: read and check it whole before the upload starts, with full provenance up front.

        The session is checkpointed before its bytes go, so a worker that takes the file over after a
        crash finds the finished upload through the session (a status query answers with the file),
        not through a listing, which lags behind new files on Drive (api-notes Part C §20)."""
        size = job.source.size or 0
        chunks = rechunk(self.src.open_range(job.source, 0, size), buf)
        data = next(chunks, memoryview(b""))
        extra = next(chunks, None)
        if extra is not None or len(data) != size:  # checked before anything is uploaded
            got = f"more than {len(data)}" if extra is not None else str(len(data))
            raise IntegrityError(f"{job.source.path}: the source sent {got} bytes for a size of {size}",
                                 hash_type="size", expected=str(size), actual=got)
        hasher.update(data)
        hashes = hasher.hexdigests()
        _check_source(job, hashes)
        props = provenance_properties(job.source, job.run_id, hashes)
        meta = replace(meta, properties=props)
        if size:
            session, committed = self._session(job, meta, size)
            checkpoint(session.token, committed)
        else:  # nothing to resume: a zero-byte upload is a single request on every destination
            session, committed = self.dst.begin_upload(job.dest_parent, job.dest_name, 0, meta), 0
        result = session.send(size, b"", True) if size and committed >= size else session.send(0, data, True)
        if result is None:
            result = session.send(len(data), b"", True)
        if result is None:
            raise IntegrityError(f"{job.source.path}: upload did not finish", hash_type="size",
                                 expected=str(len(data)), actual="0")
        sent = len(data) - min(committed, len(data))
        if progress and sent:
            progress(sent)
        self._verify_or_delete(job, result, hashes)
        return RelayResult(result, hashes, sent, committed, props)

    def _finish(self, job: RelayJob, entry: Entry, hashes: Mapping[HashType, str], sent: int,
                resumed_from: int) -> RelayResult:
        self._verify_or_delete(job, entry, hashes)
        props = provenance_properties(job.source, job.run_id, hashes)
        setter = self.dst.features.properties
        if setter is not None:
            entry = setter.set_properties(entry, props)
        return RelayResult(entry, hashes, sent, resumed_from, props)

    def _verify_or_delete(self, job: RelayJob, entry: Entry, hashes: Mapping[HashType, str]) -> None:
        try:
            _check_dest(job, entry, hashes)
        except IntegrityError:
            # the destination committed other bytes than we streamed: remove them, never keep them
            self.dst.delete(entry)
            raise
