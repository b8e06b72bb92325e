"""Version history (`--versions N`): a file's last N previous versions become revisions of its copy.

For a file with previous versions on the source (Graph `/versions`), the copy is built oldest first: the
oldest kept version creates the destination file, each later one is uploaded as a new revision of that
same file (Drive `files.update` with media), and the current content goes last, so it is the head
revision. Each upload goes through the relay, which streams the bytes once, hashes them and checks what
the destination then reports. A version has no hash on the source (driveItemVersion carries none), so a
version is proven by the streamed hashes against the destination: the file's MD5/SHA-256 right after
the upload and the new head revision's md5Checksum and size in the revision list. Each copied revision,
the current one included, is marked keepForever; Drive would otherwise purge it after about 30 days
(manage-revisions guide). Every byte of every version counts against the daily upload budget, which
also admits each version before it starts.

Resume: progress is recorded on the destination file itself, in the same upload that makes each
revision (`df_hist` = "k/N": k of the N versions are in; "done" once the current content is the head),
so a run that stops between two versions continues with the next one. The journal needs no new state:
the item's session token is `{"df_hist": <file id>}` between versions, and `{"df_hist": <file id>,
"session": <token>}` while the current content uploads, so a resumed or taken-over item asks for that
file by id and continues the session; without it the file is found by its provenance's source id. A copy whose history is complete and
whose current content is proven is skipped like any other copy.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, cast

from driveferry.errors import IntegrityError
from driveferry.integrity.hashes import HashType
from driveferry.integrity.provenance import SRC_ID
from driveferry.migrate.export import MigrationRelay, _KeepsAltered
from driveferry.migrate.relay import Checkpoint, Progress, RelayJob, RelayResult
from driveferry.providers.base import (
    Entry,
    Features,
    FileVersion,
    Kind,
    Provider,
    RevisionWriter,
    UploadMeta,
    UploadSession,
    VersionReader,
)

log = logging.getLogger(__name__)

HISTORY = "df_hist"  # "k/N": k of the N previous versions to copy are revisions of this file
DONE = "done"  # ... and the current content is the head revision
SESSION = "session"  # in a journal token of ours: the current content's upload session token


@dataclass(frozen=True)
class VersionRecord:
    """The versions copied for one file in this run: how many, their bytes, and each one's proof."""

    path: str
    versions: int
    size_bytes: int
    revision_ids: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "versions": self.versions, "bytes": self.size_bytes,
                "revisions": list(self.revision_ids)}


def previous_versions(src: Provider, entry: Entry, keep: int) -> list[FileVersion]:
    """The last `keep` previous versions of a source file, oldest first (none without the capability)."""
    reader = src.features.versions
    if keep <= 0 or reader is None or entry.kind is not Kind.FILE:
        return []
    found = reader.previous_versions(entry)
    return found[-keep:] if found else []


class _VersionBytes:
    """A read-only source holding one previous version: what the relay reads its bytes from."""

    name = "version"
    hash_types: frozenset[HashType] = frozenset()
    features = Features()

    def __init__(self, reader: VersionReader, entry: Entry, version: FileVersion) -> None:
        self.reader, self.entry, self.version = reader, entry, version

    def open_range(self, entry: Entry, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        pos, stop = 0, self.version.size if end is None else end
        for block in self.reader.open_version(self.entry, self.version):  # whole: no ranged version reads
            lo, hi = max(start - pos, 0), min(len(block), stop - pos)
            if hi > lo:
                yield block[lo:hi]
            pos += len(block)
            if pos >= stop:
                return


class _Revising:
    """The destination as the relay sees it while it builds one file's history: the first upload makes
    the file, each later one is a new revision of it. `marks` go into each upload's metadata."""

    def __init__(self, dst: Provider, file: Entry | None, marks: dict[str, str]) -> None:
        self._dst, self.file, self.marks = dst, file, marks
        self.name, self.hash_types, self.features = dst.name, dst.hash_types, dst.features

    def begin_upload(self, parent: Entry, name: str, size: int, meta: UploadMeta) -> UploadSession:
        meta = replace(meta, properties={**meta.properties, **self.marks}, replace=False)
        if self.file is None:
            return self._dst.begin_upload(parent, name, size, meta)
        writer = cast(RevisionWriter, self._dst.features.revisions)
        return writer.begin_revision(self.file, size, replace(meta, one_send=False))

    def resume_upload(self, token: str) -> UploadSession:
        return self._dst.resume_upload(token)

    def delete(self, entry: Entry) -> None:
        """A copy that came out wrong: the new head revision goes, the revisions before it stay."""
        writer = cast(RevisionWriter, self._dst.features.revisions)
        if self.file is None:
            self._dst.delete(entry)
            return
        writer.delete_revision(entry, writer.revisions(entry)[-1].id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dst, name)


class VersionsRelay(MigrationRelay):
    """A MigrationRelay that copies up to `keep` previous versions of each file first (thread-safe).

    Only where the source reads versions and the destination writes revisions; elsewhere, and for files
    without previous versions, it is the plain MigrationRelay."""

    def __init__(self, src: Provider, dst: Provider, keep: int, *rest: Any) -> None:
        super().__init__(src, dst, *rest)
        self.keep = keep
        self._rest = rest
        self.budget: Any = None  # the run's UploadBudget: each version is admitted before it starts
        self.histories: list[VersionRecord] = []
        self._hist_lock = threading.Lock()

    def copy(self, job: RelayJob, checkpoint: Checkpoint, progress: Progress | None = None) -> RelayResult:
        writer = self.dst.features.revisions
        versions = previous_versions(self.src, job.source, self.keep) if writer is not None else []
        if not versions or writer is None:
            return super().copy(job, checkpoint, progress)
        job = replace(job, reserved_token=None)  # the first version goes first; the current content last
        file, done = self._progress(job, len(versions))
        revisions: list[str] = []
        sent = 0
        for k in range(done, len(versions)):
            if self.budget is not None:
                self.budget.admit(versions[k].size)
            file, rev_id = self._copy_version(job, file, k, versions, progress)
            checkpoint(json.dumps({HISTORY: file.id}), 0)  # the journal knows the file by id from now on
            revisions.append(rev_id)
            sent += versions[k].size
        target = _Revising(self.dst, file, {HISTORY: DONE})
        inner = _KeepsAltered(self.src, cast(Provider, target), self.altered, self._lock, *self._rest)
        # a session of the current content (started once the versions were in) is resumed; its token goes
        # to the journal wrapped with the file's id, so a resumed item still finds the file by id
        session = _history_token(job.resume_token)[1] if file is not None and done == len(versions) else None
        known = file.id if file is not None else None

        def wrapped(token: str, offset: int) -> None:
            checkpoint(json.dumps({HISTORY: known, SESSION: token}) if known else token, offset)

        result = inner.copy(replace(job, resume_token=session), wrapped, progress)
        head = writer.revisions(result.entry)
        if head:
            writer.keep_revision(result.entry, head[-1].id)
        with self._hist_lock:
            self.histories.append(VersionRecord(job.dest_name, len(revisions), sent, tuple(revisions)))
        return result

    def _progress(self, job: RelayJob, total: int) -> tuple[Entry | None, int]:
        """(the destination file holding part of this history, versions it holds) from its `df_hist`,
        or (None, 0) when there is none, or only a finished history of an older state of the file (then
        the history starts over in a new file; the older copy is removed once the new one is in).

        The file is asked for by the id the journal holds when it holds one (no listing lag: files.get
        sees a new file at once, api-notes Part C §20), else looked for by its provenance's source id."""
        by_id, known = self.dst.features.by_id, _history_token(job.resume_token)[0]
        found: list[Entry] = []
        if known is not None and by_id is not None and hasattr(by_id, "entry"):
            entry = by_id.entry(known, job.dest_parent.path)
            found = [entry] if entry is not None else []
        elif job.resume_token is not None or job.replace:  # tried before, or the name is taken: look
            lookup = self.dst.features.property_lookup
            found = lookup.find_by_property(job.dest_parent, SRC_ID, job.source.id) if lookup is not None else \
                [e for e in self.dst.list(job.dest_parent) if e.name == job.dest_name]
        for entry in found:
            mark = entry.properties.get(HISTORY, "")
            count, _, of = mark.partition("/")
            if entry.name == job.dest_name and entry.properties.get(SRC_ID) == job.source.id and count.isdigit() \
                    and of == str(total) and int(count) <= total:
                return entry, int(count)
        return None, 0

    def _copy_version(self, job: RelayJob, file: Entry | None, k: int, versions: list[FileVersion],
                      progress: Progress | None) -> tuple[Entry, str]:
        """Upload version `k` (the file, or its next revision), prove it and keep it. Returns the file and
        the revision id. Raises IntegrityError when the destination holds other bytes (that revision is
        removed)."""
        version, src = versions[k], job.source
        reader = cast(VersionReader, self.src.features.versions)
        writer = cast(RevisionWriter, self.dst.features.revisions)
        pseudo = replace(src, size=version.size, modified=version.modified or src.modified,
                         hashes=MappingProxyType({}))
        target = _Revising(self.dst, file, {HISTORY: f"{k + 1}/{len(versions)}"})
        # MD5 is streamed whatever the file's own proof needs: the revision list reports md5Checksum only
        extra = frozenset(self._rest[0] if self._rest else ()) | {HashType.MD5, HashType.SHA256}
        inner = _KeepsAltered(cast(Provider, _VersionBytes(reader, src, version)), cast(Provider, target),
                              self.altered, self._lock, extra)
        result = inner.copy(replace(job, source=pseudo, resume_token=None), lambda _t, _o: None, progress)
        entry = result.entry
        head = writer.revisions(entry)[-1]
        md5 = result.hashes.get(HashType.MD5)
        if head.size != version.size or md5 is None or (head.md5 is not None and head.md5 != md5):
            target.delete(entry)
            raise IntegrityError(f"{src.path}: version {version.id} is stored with other content",
                                 hash_type="md5", expected=md5 or "", actual=head.md5 or str(head.size))
        writer.keep_revision(entry, head.id)
        log.info("%s: version %s copied as revision %s (%d bytes)", src.path, version.id, head.id, version.size)
        return entry, head.id


def _history_token(token: str | None) -> tuple[str | None, str | None]:
    """(destination file id, upload session token) from a journal token: ours names the file (and,
    during the current content's upload, wraps its session token); any other is a session token."""
    if not token:
        return None, None
    try:
        data = json.loads(token)
    except ValueError:
        return None, token
    if not isinstance(data, dict) or not isinstance(data.get(HISTORY), str):
        return None, token
    session = data.get(SESSION)
    return str(data[HISTORY]), str(session) if isinstance(session, str) else None


def history_cost(src: Provider, entries: Iterator[Entry], keep: int) -> tuple[int, int]:
    """(files with versions to copy, their versions' bytes) for a plan: the extra upload `--versions`
    adds, counted against the daily budget like the current contents (one version listing per file)."""
    files = nbytes = 0
    for entry in entries:
        found = previous_versions(src, entry, keep)
        if found:
            files += 1
            nbytes += sum(v.size for v in found)
    return files, nbytes
