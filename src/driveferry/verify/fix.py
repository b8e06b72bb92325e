"""`verify --fix`: re-upload bad remote copies from the local files, through the API, verified.

Only remote-side damage is fixed (`FIXABLE`): the local file is the good copy. Local problems
(zero_filled_local, zero_tail, holes), pending_sync and unverifiable are reported, never "fixed": a
re-upload would copy the damage, or race a download that is still running.

One fix, `apply_fix`: the relay's streaming upload (`providers/streaming.stream_upload`) of the local
file, read between two fstats that must match the scan's, which withholds the final chunk unless the
bytes hash to what the scan found (a file that changed since the scan is not uploaded), then the one
proof (`integrity/proof.compare`) of the hash the remote reports for the new file against the local
hash. Only then is the bad copy removed: on a remote
with duplicate names (Drive) the new file is uploaded beside it and the old one deleted; elsewhere
the upload replaces it in place. A failed check deletes the new upload and leaves the old one.

The re-verify after the fix lists the remote again, and a listing may not show yet what was just
uploaded or created (Drive's listing by parent is eventually consistent; files.get by id sees an item
at once: api-notes Part C §20, rclone#2485). `Uploaded.fill` answers for those paths by id, as
`verify.recorded` does after a migration, so a file just fixed is not reported missing_remote.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from driveferry.errors import DriveferryError, IntegrityError
from driveferry.integrity.hashes import HashType, MultiHasher
from driveferry.integrity.proof import compare
from driveferry.providers import streaming
from driveferry.providers.base import Entry, ItemById, Provider, UploadMeta, UploadSession
from driveferry.providers.ops import DirCache
from driveferry.providers.streaming import CHUNK_TARGET_BYTES, stream_upload
from driveferry.verify.classify import Finding, Status
from driveferry.verify.scan import LocalFile

__all__ = ["FIXABLE", "FixAction", "FixResult", "Uploaded", "plan_fixes", "apply_fix", "chunk_bytes_for"]

READ_BLOCK_BYTES = 1 << 20

FIXABLE = frozenset({Status.ZERO_FILLED_REMOTE, Status.STALE_REMOTE, Status.CONTENT_MISMATCH,
                     Status.SIZE_MISMATCH, Status.MISSING_REMOTE})


@dataclass(frozen=True)
class FixAction:
    """Upload `path` (relative) and then remove the remote copies `old_ids` (empty: missing_remote)."""

    path: str
    status: Status
    size: int
    old_ids: tuple[str, ...]

    def describe(self) -> str:
        verb = "upload" if not self.old_ids else f"replace {len(self.old_ids)} remote cop{'y' if len(self.old_ids) == 1 else 'ies'}"
        return f"{verb} ({self.status.value}, {self.size} bytes): {self.path}"


@dataclass(frozen=True)
class FixResult:
    path: str
    ok: bool
    message: str
    new_id: str | None = None
    uploaded: bool = False  # the new copy is on the remote (and the bad one removed)
    new_parent: str = ""  # the new copy's folder, as a provider path (for a read by id)


class Uploaded:
    """The copies --fix put on the remote and the folders it made (`dirs`), by path relative to the
    verified folder: `fill` for the re-verify's merge (module doc). A copy read back by id that is gone
    or trashed is not used: it is then reported missing, as it is."""

    def __init__(self, provider: Provider, dirs: DirCache) -> None:
        self.by_id: ItemById | None = provider.features.by_id
        self.dirs = dirs
        self.files: dict[str, tuple[str, str]] = {}  # path -> (id, parent provider path)
        self.looked_up = 0

    def add(self, res: FixResult) -> None:
        if res.uploaded and res.new_id:
            self.files[res.path] = (res.new_id, res.new_parent)

    def fill(self, rel: str, is_folder: bool) -> tuple[list[Entry], list[Entry]]:
        if is_folder:
            made = self.dirs.known(rel)
            return [], [made] if made is not None else []
        if self.by_id is None or rel not in self.files:
            return [], []
        item_id, parent = self.files[rel]
        self.looked_up += 1
        entry = self.by_id.entry(item_id, parent)
        return ([entry] if entry is not None else []), []


def plan_fixes(findings: Iterable[Finding], local: Mapping[str, LocalFile], *,
               min_zero_tail_bytes: int) -> tuple[list[FixAction], list[tuple[str, str]]]:
    """(actions, held): one action per path with a fixable finding and a readable local file, sorted by path;
    and (path, why) for fixable findings whose local copy looks unfinished, which are not uploaded.

    A remote of zeros outranks a local zero tail in the classification (it names the remote's damage),
    but the local file may be a download still in progress: uploading it would copy its zeros.
    """
    bad: dict[str, list[Finding]] = {}
    held: dict[str, str] = {}
    limit = max(1, min_zero_tail_bytes)
    for f in findings:
        lf = local.get(f.path)
        if f.status not in FIXABLE or lf is None or lf.error is not None:
            continue
        why = _unfinished(lf, limit)
        if why:
            held[f.path] = f"the local copy {why} (an unfinished download?); finish it, then verify --fix again"
            continue
        bad.setdefault(f.path, []).append(f)
    actions = [FixAction(path, group[0].status, local[path].size,
                         tuple(f.remote_id for f in group if f.remote_id and f.status is not Status.MISSING_REMOTE))
               for path, group in sorted(bad.items())]
    return actions, sorted(held.items())


def _unfinished(lf: LocalFile, limit: int) -> str:
    z = lf.zeros
    if z.all_zero:
        return "is all zero bytes"
    if z.zero_tail_bytes >= limit:
        return f"ends in {z.zero_tail_bytes} zero bytes"
    if z.hole_bytes >= limit:
        return f"has {z.hole_bytes} bytes of sparse holes"
    return ""


def chunk_bytes_for(provider: Provider, target: int = CHUNK_TARGET_BYTES) -> int:
    """The destination's upload chunk size (`providers/streaming.chunk_bytes_for`, the one place)."""
    return streaming.chunk_bytes_for(provider.features, target)


def apply_fix(action: FixAction, root: Path, provider: Provider, dirs: DirCache, kind: HashType,
              expected: str, entries: Mapping[str, Entry], chunk_bytes: int) -> FixResult:
    """Carry out one action (see module doc). Never raises for a provider error: returns ok=False."""
    local = root / action.path
    folder, name = posixpath.split(action.path)
    try:
        st = os.stat(local)
        if st.st_size != action.size:
            return FixResult(action.path, False, "local file changed size since the scan; not uploaded")
        in_place = bool(action.old_ids) and not provider.features.duplicate_names
        parent = dirs.ensure(folder)
        meta = UploadMeta(modified=_mtime(st), replace=in_place)
        session = provider.begin_upload(parent, name, st.st_size, meta)
        try:
            new = _stream(session, local, st, kind, expected, chunk_bytes)
        except IntegrityError as exc:
            return FixResult(action.path, False, f"local bytes no longer hash to the scanned value; not uploaded ({exc})")
        hasher = provider.features.content_hasher
        reported = dict(new.hashes)
        if kind not in reported and hasher is not None:  # a remote that computes rather than reports (local)
            reported.update(hasher.hash_file(new, [kind]))
        verdict = compare({kind: expected}, reported)
        if verdict.differs:
            if not in_place:
                provider.delete(new)
            return FixResult(action.path, False, f"remote reports {kind.value} {verdict.actual} after upload, "
                             f"expected {expected}; the new copy was removed", new.id)
        for old_id in action.old_ids:
            old = entries.get(old_id)
            if old is not None and old.id != new.id:
                provider.delete(old)
        where = posixpath.dirname(new.path)
        if not verdict.proven:  # not proven here; the re-verify after --fix reports it as unverifiable
            return FixResult(action.path, False, f"uploaded, unverified: the remote reports no {kind.value}",
                             new.id, uploaded=True, new_parent=where)
        return FixResult(action.path, True, f"uploaded and verified ({kind.value})", new.id, uploaded=True,
                         new_parent=where)
    except (OSError, DriveferryError) as exc:
        return FixResult(action.path, False, f"{type(exc).__name__}: {exc}")


def _stream(session: UploadSession, path: Path, planned: os.stat_result, kind: HashType, expected: str,
            chunk_bytes: int) -> Entry:
    """Send the file through the one streaming upload; the last chunk goes only when the bytes, read
    between two fstats that agree with the scan's size and mtime, hash to `expected`. Raises
    IntegrityError (session aborted) otherwise; the retry layer (providers/retrying.py) retries each
    send in place at the committed offset."""
    size = planned.st_size

    def gate(hashes: Mapping[HashType, str]) -> None:
        verdict = compare({kind: expected}, hashes)
        if not verdict.proven:
            raise IntegrityError(f"{path.name}: bytes read differ from the scan", hash_type=kind.value,
                                 expected=expected, actual=hashes.get(kind, ""))

    buf = memoryview(bytearray(min(size, chunk_bytes)))
    return stream_upload(session, _stable_read(path, planned), buf, offset=0, size=size,
                         hasher=MultiHasher([kind]), gate=gate, label=path.name)


def _stable_read(path: Path, planned: os.stat_result) -> Iterator[bytes]:
    """The file's bytes, bracketed by two fstats that must both equal `planned` (size, mtime, ctime,
    inode: ctime moves even when a rewrite puts the old mtime back)."""
    def ident(st: os.stat_result) -> tuple[int, int, int, int]:
        return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino

    with open(path, "rb", buffering=0) as fh:
        if ident(os.fstat(fh.fileno())) != ident(planned):
            raise IntegrityError(f"{path.name}: the file changed since the scan", hash_type="fstat",
                                 expected=str(ident(planned)), actual=str(ident(os.fstat(fh.fileno()))))
        while block := fh.read(READ_BLOCK_BYTES):
            yield block
        if ident(os.fstat(fh.fileno())) != ident(planned):
            raise IntegrityError(f"{path.name}: the file changed while it was read", hash_type="fstat",
                                 expected=str(ident(planned)), actual=str(ident(os.fstat(fh.fileno()))))


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
