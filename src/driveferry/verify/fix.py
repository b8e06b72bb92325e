"""`verify --fix`: re-upload bad remote copies from the local files, through the API, verified.

Only remote-side damage is fixed (`FIXABLE`): the local file is the good copy. Local problems
(zero_filled_local, zero_tail, holes), pending_sync and unverifiable are reported, never "fixed": a
re-upload would copy the damage, or race a download that is still running.

One fix, `apply_fix`: a resumable upload (`begin_upload` + `send` in chunks of the destination's chunk
multiple) that hashes the bytes as it streams them and withholds the final chunk unless they hash to
what the scan found (a file that changed since the scan is not uploaded), then compares the hash the
remote reports for the new file with the local hash. Only then is the bad copy removed: on a remote
with duplicate names (Drive) the new file is uploaded beside it and the old one deleted; elsewhere
the upload replaces it in place. A failed check deletes the new upload and leaves the old one.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from driveferry.errors import DriveferryError
from driveferry.integrity.hashes import HashType, MultiHasher
from driveferry.providers.base import Entry, Provider, UploadMeta, UploadSession
from driveferry.providers.ops import DirCache
from driveferry.verify.classify import Finding, Status
from driveferry.verify.scan import LocalFile

__all__ = ["FIXABLE", "FixAction", "FixResult", "plan_fixes", "apply_fix", "chunk_bytes_for"]

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


def chunk_bytes_for(provider: Provider, target: int = 8 << 20) -> int:
    """The largest multiple of the provider's chunk multiple not above `target` (at least one multiple)."""
    multiple = max(1, provider.features.chunk_multiple)
    return max(multiple, target // multiple * multiple)


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
        new = _stream(session, local, st.st_size, kind, expected, chunk_bytes)
        if new is None:
            return FixResult(action.path, False, "local bytes no longer hash to the scanned value; not uploaded")
        reported = new.hashes.get(kind)
        hasher = provider.features.content_hasher
        if reported is None and hasher is not None:  # a remote that computes rather than reports (local)
            reported = hasher.hash_file(new, [kind]).get(kind)
        if reported is not None and reported != expected:
            if not in_place:
                provider.delete(new)
            return FixResult(action.path, False, f"remote reports {kind.value} {reported} after upload, "
                             f"expected {expected}; the new copy was removed", new.id)
        for old_id in action.old_ids:
            old = entries.get(old_id)
            if old is not None and old.id != new.id:
                provider.delete(old)
        if reported is None:  # not proven here; the re-verify after --fix reports it as unverifiable
            return FixResult(action.path, False, f"uploaded, unverified: the remote reports no {kind.value}",
                             new.id, uploaded=True)
        return FixResult(action.path, True, f"uploaded and verified ({kind.value})", new.id, uploaded=True)
    except (OSError, DriveferryError) as exc:
        return FixResult(action.path, False, f"{type(exc).__name__}: {exc}")


def _stream(session: UploadSession, path: Path, size: int, kind: HashType, expected: str,
            chunk_bytes: int) -> Entry | None:
    """Send the file; None (and the session aborted) when the bytes do not hash to `expected`."""
    hasher = MultiHasher([kind])
    offset = 0
    with open(path, "rb") as fh:
        chunk = fh.read(chunk_bytes)
        while True:
            nxt = fh.read(chunk_bytes) if offset + len(chunk) < size else b""
            last = not nxt
            hasher.update(chunk)
            if last and (offset + len(chunk) != size or fh.read(1) or hasher.hexdigests()[kind] != expected):
                session.abort()  # the file changed under us: withhold the last chunk, commit nothing
                return None
            # the retry layer (providers/retrying.py) retries each send in place at the committed offset
            done = session.send(offset, chunk, last)
            if last:
                return done if done is not None else session.send(size, b"", True)
            offset += len(chunk)
            chunk = nxt


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
