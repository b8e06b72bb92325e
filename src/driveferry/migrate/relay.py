"""Relay one file: Range download -> one hashing pass -> resumable upload, never committing bad bytes.

The bytes are read once, hashed once (only the hashes the proof needs: `migrate/hash_set.py`), and
written once, through the one streaming upload (`providers/streaming.py`). The final chunk is withheld until the streamed
hashes agree with the hashes the source reports (`integrity/proof.py`); on a difference the upload
session is aborted, so a corrupt copy never appears on the destination. After the destination
commits, its hashes (reported, or computed where it computes rather than reports) are checked against
the streamed ones too; the destination's digests that were not streamed (Drive's MD5 and SHA-1) are
then taken from its answer and recorded as such (`RelayResult.from_dest`, provenance df_dst_*). A
destination that answers with hashes, none of them streamed (Drive without sha256Checksum: api-notes
2.1), has its copy read back and hashed. A copy is `proven` only when a content hash agreed on each
side; one that is committed without that (the destination reports no hash) is kept and counted as
unverified.

Resuming: the caller passes the journal's session token. The committed offset is asked from the server
(never trusted from the journal), the hash state is rebuilt by re-reading the already-sent prefix from
the source (download only, nothing is uploaded twice), and the stream continues from there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from driveferry.errors import IntegrityError, UploadSessionLostError
from driveferry.integrity import proof
from driveferry.integrity.hashes import HashType, MultiHasher
from driveferry.integrity.proof import Outcome, Verdict
from driveferry.integrity.provenance import provenance_properties
from driveferry.migrate.hash_set import CONTENT, stream_kinds, taken_from_dest
from driveferry.providers.base import Entry, Kind, Provider, UploadMeta, UploadSession
from driveferry.providers.streaming import rechunk, stream_upload

__all__ = ["Relay", "RelayJob", "RelayResult", "rechunk"]

log = logging.getLogger(__name__)

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
    # a one-request upload's token the journal already holds for this file (Workers._reserve): the
    # upload takes its id, and needs no checkpoint of its own before the bytes go
    reserved_token: str | None = None


@dataclass(frozen=True)
class RelayResult:
    entry: Entry
    hashes: Mapping[HashType, str]
    bytes_uploaded: int  # bytes sent by this call (a resumed file sends only its tail)
    resumed_from: int
    properties: Mapping[str, str] = field(default_factory=dict)
    proven: bool = True  # False: committed, but no content hash agreed on each side (counted unverified)
    # the destination's digests of the copy that were not streamed, taken from its answer once a
    # streamed hash agreed with it (empty unless proven)
    from_dest: Mapping[HashType, str] = field(default_factory=dict)


def _check_source(job: RelayJob, hashes: Mapping[HashType, str]) -> Verdict:
    """The commit gate: the streamed bytes against every hash the source reports (`proof.compare`).
    Raises IntegrityError when one differs; returns the verdict otherwise (unverifiable when the
    source reports none: then the streamed hash is the source's, read between two fstats)."""
    verdict = proof.compare(job.source.hashes, hashes)
    if verdict.differs:
        raise IntegrityError(f"{job.source.path}: streamed bytes differ from the source",
                             hash_type=verdict.hash_type.value if verdict.hash_type else "size",
                             expected=verdict.expected or "", actual=verdict.actual or "")
    return verdict


def _check_dest(job: RelayJob, entry: Entry, hashes: Mapping[HashType, str]) -> Verdict:
    """The destination as committed against the streamed bytes. Raises IntegrityError on a difference."""
    verdict = proof.compare(hashes, entry.hashes, expected_size=job.source.size, actual_size=entry.size)
    if verdict.differs:
        what = "destination size differs" if verdict.hash_type is None else "destination reports other content"
        raise IntegrityError(f"{job.dest_name}: {what}",
                             hash_type=verdict.hash_type.value if verdict.hash_type else "size",
                             expected=verdict.expected or "", actual=verdict.actual or "")
    return verdict


class Relay:
    """Copies files from `src` to `dst` (one instance per migration; thread-safe: holds no per-file state,
    only a chunk buffer per thread)."""

    def __init__(self, src: Provider, dst: Provider, extra: frozenset[HashType] = frozenset()) -> None:
        """`extra`: hashes streamed for every file on top of what the proof needs (`migrate --hashes`)."""
        self.src = src
        self.dst = dst
        self.extra = extra
        # a source that reports no hash but computes one (the local filesystem) is read between two
        # fstats (providers/local.py open_range), so the streamed hash is the source's own
        self._source_computes = not src.hash_types and src.features.content_hasher is not None
        self._buffers = threading.local()

    def _session(self, job: RelayJob, meta: UploadMeta, size: int) -> tuple[UploadSession, int]:
        if job.resume_token:
            try:
                session = self.dst.resume_upload(job.resume_token)
                return session, session.committed()
            except UploadSessionLostError:
                log.info("%s: upload session expired; restarting the file", job.source.path)
        return self.dst.begin_upload(job.dest_parent, job.dest_name, size, meta), 0

    def kinds_for(self, source: Entry, *, whole: bool) -> frozenset[HashType]:
        """The hashes streamed for `source` (`migrate/hash_set.py`); `whole`: sent in one request."""
        return stream_kinds(source.hashes, self.dst.hash_types, whole=whole, extra=self.extra)

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
        hasher = MultiHasher(self.kinds_for(src_entry, whole=size <= job.chunk_size))
        buf = self._buffer(min(size, job.chunk_size))
        if size <= job.chunk_size:
            return self._copy_small(job, meta, hasher, buf, checkpoint, progress)
        session, committed = self._session(job, meta, size)
        checkpoint(session.token, committed)
        resumed_from = committed
        if committed:
            for block in self.src.open_range(src_entry, 0, committed):
                hasher.update(block)
        gate: list[Verdict] = []

        def sent(n: int, offset: int) -> None:
            if progress:
                progress(n)
            if offset < size:
                checkpoint(session.token, offset)

        result = stream_upload(session, self.src.open_range(src_entry, committed, size), buf, offset=committed,
                               size=size, hasher=hasher, gate=lambda h: gate.append(_check_source(job, h)),
                               label=src_entry.path, sent=sent)
        hashes = hasher.hexdigests()
        return self._finish(job, result, hashes, size - resumed_from, resumed_from, gate[0])

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
        chunks = rechunk(self.src.open_range(job.source, 0, size), buf, hasher)
        data = next(chunks, memoryview(b""))
        extra = next(chunks, None)  # also runs the source's end-of-read check (a local file's fstat)
        if extra is not None or len(data) != size:  # checked before anything is uploaded
            got = f"more than {len(data)}" if extra is not None else str(len(data))
            raise IntegrityError(f"{job.source.path}: the source sent {got} bytes for a size of {size}",
                                 hash_type="size", expected=str(size), actual=got)
        hashes = hasher.hexdigests()  # of `data`, hashed by `rechunk` as it was read
        source_verdict = _check_source(job, hashes)
        props = provenance_properties(job.source, job.run_id, hashes)
        meta = replace(meta, properties=props, one_send=True)  # one send below: Drive makes it one request
        if size and job.reserved_token and not job.resume_token:
            session = self.dst.begin_upload(job.dest_parent, job.dest_name, size,
                                            replace(meta, upload_token=job.reserved_token))
            committed = 0
            if session.token != job.reserved_token:  # the adapter chose another id: record that one
                checkpoint(session.token, committed)
        elif size:
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
        dest_verdict = self._verify_or_delete(job, result, hashes)
        taken = taken_from_dest(result.hashes, hashes) if dest_verdict.proven else {}
        return RelayResult(result, hashes, sent, committed, props, self._proven(source_verdict, dest_verdict),
                           taken)

    def _finish(self, job: RelayJob, entry: Entry, hashes: Mapping[HashType, str], sent: int,
                resumed_from: int, source_verdict: Verdict) -> RelayResult:
        dest_verdict = self._verify_or_delete(job, entry, hashes)
        taken = taken_from_dest(entry.hashes, hashes) if dest_verdict.proven else {}
        props = provenance_properties(job.source, job.run_id, hashes, taken)
        setter = self.dst.features.properties
        if setter is not None:
            entry = setter.set_properties(entry, props)
        return RelayResult(entry, hashes, sent, resumed_from, props, self._proven(source_verdict, dest_verdict),
                           taken)

    def _proven(self, source: Verdict, dest: Verdict) -> bool:
        """Proven only when a content hash agrees on each side (the source's own, or the streamed one
        of a source read between two fstats)."""
        return dest.proven and (source.proven or self._source_computes)

    def _verify_or_delete(self, job: RelayJob, entry: Entry, hashes: Mapping[HashType, str]) -> Verdict:
        """The destination against the streamed hashes; a destination that reports none of them but
        computes hashes (the local filesystem) is asked to, and one that reports only hashes that were
        not streamed (Drive without sha256Checksum) has its copy read back and hashed. A difference
        deletes the copy and raises."""
        try:
            verdict = _check_dest(job, entry, hashes)
            hasher = self.dst.features.content_hasher
            if verdict.outcome is Outcome.UNVERIFIABLE and hasher is not None and entry.kind is Kind.FILE:
                computed = hasher.hash_file(entry, [CONTENT])
                verdict = _check_dest(job, replace(entry, hashes=MappingProxyType(computed)), hashes)
            elif verdict.outcome is Outcome.UNVERIFIABLE and entry.hashes and entry.kind is Kind.FILE:
                verdict = self._read_back(job, entry, hashes)
        except IntegrityError:
            # the destination committed other bytes than we streamed: remove them, never keep them
            self.dst.delete(entry)
            raise
        if not verdict.proven:
            log.warning("%s: copied but unverified: %s", job.source.path, verdict.reason)
        return verdict

    def _read_back(self, job: RelayJob, entry: Entry, hashes: Mapping[HashType, str]) -> Verdict:
        """Prove a copy whose destination reports none of the streamed hashes, but others: read it back,
        hashing what was streamed and what it reports. Proven when the read bytes hash to the streamed
        hashes and to what the destination reports; raises IntegrityError on a difference."""
        log.info("%s: the destination reports no %s for the copy; reading it back to prove it",
                 job.dest_name, "/".join(sorted(k.value for k in hashes)))
        kinds = frozenset(hashes) | frozenset(k for k in entry.hashes if k in self.dst.hash_types)
        computed = MultiHasher(kinds)
        for block in self.dst.open_range(entry, 0, entry.size or 0):
            computed.update(block)
        read = replace(entry, size=computed.length, hashes=MappingProxyType(computed.hexdigests()))
        reported = proof.compare(entry.hashes, read.hashes)
        if reported.differs:
            raise IntegrityError(f"{job.dest_name}: destination reports other content than it serves",
                                 hash_type=reported.hash_type.value if reported.hash_type else "size",
                                 expected=reported.expected or "", actual=reported.actual or "")
        return _check_dest(job, read, hashes)
