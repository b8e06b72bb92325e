"""Verify statuses: one table of rules, evaluated in order, the first that holds names a pair's status.

Local vs remote (`classify`): a local file (from `scan`) and the remote `Entry` at the same path.
The rules, in precedence order (the first true predicate wins; `RULES` below is this table as data):

    #  status              when
    1  missing_local       there is no local file (the remote item exists only remotely)
    2  pending_sync        the local file changed while it was being hashed
    3  pending_sync        local mtime is within the grace period and the pair is not already proven ok
    4  missing_remote      there is no remote item
    5  unverifiable        the remote item has no bytes (Google Doc, OneNote package, shortcut)
    6  unverifiable        the local file could not be read (its size may be unknown too)
    7  size_mismatch       both sizes are known and differ
    8  zero_filled_local   the local file is all 0x00 bytes (size > 0)
    9  zero_filled_remote  a remote hash equals the hash of `size` zero bytes; the local file is not zeros
    10 zero_tail           the local file ends in >= min_zero_tail_bytes zero bytes (unfinished download)
    11 holes               the local file has >= min_zero_tail_bytes of sparse holes
    12 unverifiable        no hash type both sides have (e.g. OneDrive reports none for empty files)
    13 stale_remote        hashes differ and the remote is older than the local file (a missed rewrite)
    14 content_mismatch    hashes differ
    15 ok                  every hash type both sides have agrees

Why pending_sync outranks missing/size/content: a file modified within the grace period is still
being written or uploaded (aria2, the FUSE sync); any difference is expected until it settles. A
fresh file whose hashes already agree is ok. `ok` needs a hash: sizes alone never make a file ok.
The zero-content statuses outrank content_mismatch because they name the cause (a placeholder or an
unfinished download) and the fix; zero_tail/holes are reported even when the remote matches, because
then both copies are the same unfinished download.

Remote vs remote (`classify_copy`): a migration source and its destination, proven from metadata and
the provenance the relay wrote (keys in `driveferry.integrity.provenance`), downloading nothing:

    #  status              when
    1  missing_local       the source item is gone (nothing to prove the copy against)
    2  unverifiable        the source item has no bytes to copy (OneNote notebook, Google Doc): migrate
                           reports it as not copyable, so no destination item is expected
    3  missing_remote      the destination item is missing
    4  unverifiable        the source or the destination has no bytes (native doc, package)
    5  size_mismatch       both sizes are known and differ
    6  unverifiable        the destination carries no provenance
    7  unverifiable        no MD5/SHA-256 that the destination reports and the provenance records
    8  content_mismatch    provenance names a different source item
    9  zero_filled_remote  a destination hash is the hash of `size` zeros; the source qxh is not
    10 content_mismatch    the destination's MD5/SHA-256 differ from the provenance hashes
    11 unverifiable        the source or the provenance lacks a quickXorHash
    12 stale_remote        the source's quickXorHash changed since the copy was made
    13 ok                  destination hashes equal provenance, provenance qxh equals source's current qxh

`STATUS_INFO` holds, per status, its meaning and the one line of advice the reports show.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from driveferry.integrity import provenance as prov
from driveferry.integrity.hashes import HashType
from driveferry.integrity.zeros import is_zero_content
from driveferry.providers.base import Entry, Kind
from driveferry.verify.scan import LocalFile

__all__ = ["Status", "StatusInfo", "STATUS_INFO", "Policy", "Finding", "ZeroOracle", "Facts", "CopyFacts",
           "RULES", "COPY_RULES", "classify", "classify_copy", "classify_tree", "pair"]

ZeroOracle = Callable[[int, HashType, str], bool]  # (size, hash type, hex) -> is the hash of size zeros


class Status(enum.StrEnum):
    OK = "ok"
    MISSING_REMOTE = "missing_remote"
    MISSING_LOCAL = "missing_local"
    SIZE_MISMATCH = "size_mismatch"
    ZERO_FILLED_REMOTE = "zero_filled_remote"
    ZERO_FILLED_LOCAL = "zero_filled_local"
    ZERO_TAIL = "zero_tail"
    HOLES = "holes"
    STALE_REMOTE = "stale_remote"
    CONTENT_MISMATCH = "content_mismatch"
    PENDING_SYNC = "pending_sync"
    UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True)
class StatusInfo:
    severity: str  # "ok", "info" (nothing wrong yet), "warning" (look at it), "error" (wrong bytes)
    meaning: str
    advice: str


STATUS_INFO: Mapping[Status, StatusInfo] = {
    Status.OK: StatusInfo("ok", "content hashes agree", "Nothing to do."),
    Status.MISSING_REMOTE: StatusInfo(
        "error", "no remote copy", "Upload it again (or wait for the sync client, then re-run verify)."),
    Status.MISSING_LOCAL: StatusInfo(
        "info", "only on the remote", "Download it if you need a local copy; otherwise nothing to do."),
    Status.SIZE_MISMATCH: StatusInfo(
        "error", "sizes differ", "Re-upload the local file; the remote copy is truncated or different."),
    Status.ZERO_FILLED_REMOTE: StatusInfo(
        "error", "remote holds only zero bytes",
        "The sync uploaded a preallocated placeholder: delete the remote copy and upload the file again."),
    Status.ZERO_FILLED_LOCAL: StatusInfo(
        "error", "local file is all zero bytes",
        "The download never wrote data: download it again before trusting either copy."),
    Status.ZERO_TAIL: StatusInfo(
        "warning", "local file ends in a long run of zero bytes",
        "Likely an unfinished preallocated download: resume or re-download it, then verify again."),
    Status.HOLES: StatusInfo(
        "warning", "local file has sparse holes",
        "Likely an unfinished download (never-written ranges); resume it unless the file is sparse by design."),
    Status.STALE_REMOTE: StatusInfo(
        "error", "same file, older content on the remote",
        "The remote missed a later rewrite: copy the file again (on a FUSE mount, touching it is not enough)."),
    Status.CONTENT_MISMATCH: StatusInfo(
        "error", "content hashes differ", "Compare both copies; re-upload the one you trust."),
    Status.PENDING_SYNC: StatusInfo(
        "info", "changed recently, not yet in sync", "Wait for the download/sync to settle, then verify again."),
    Status.UNVERIFIABLE: StatusInfo(
        "warning", "no usable hash to compare",
        "Not proven either way: export/download it and compare by hand, or accept the risk."),
}


@dataclass(frozen=True)
class Policy:
    """Thresholds of the local-vs-remote rules. grace_s: how recent a local mtime counts as pending.

    min_zero_tail_bytes: shorter zero tails are normal (tar pads with up to 10 KiB of zeros), so they
    are not reported. clock_skew_s: a remote is "older" only by more than this (FUSE and Drive round).
    """

    grace_s: float = 900.0
    min_zero_tail_bytes: int = 64 * 1024
    clock_skew_s: float = 2.0


@dataclass(frozen=True)
class Finding:
    """One classified pair. For `classify_copy`, "local" means the source and "remote" the destination.

    hash_type/local_hash/remote_hash: the comparison that decided (None when no hash was compared).
    """

    path: str
    status: Status
    reason: str
    local_size: int | None = None
    remote_size: int | None = None
    hash_type: HashType | None = None
    local_hash: str | None = None
    remote_hash: str | None = None
    local_mtime: datetime | None = None
    remote_modified: datetime | None = None
    remote_id: str | None = None
    zero_tail_bytes: int = 0
    hole_bytes: int = 0

    @property
    def size(self) -> int:
        """The bytes this finding is about (local size, else remote size, else 0)."""
        return self.local_size if self.local_size is not None else (self.remote_size or 0)


@dataclass(frozen=True)
class Facts:
    """Everything the local-vs-remote rules test, computed once per pair by `Facts.of`."""

    has_local: bool
    has_remote: bool
    remote_has_bytes: bool
    changed_during_scan: bool
    recent: bool
    size_differs: bool
    local_unreadable: bool
    local_all_zero: bool
    remote_zero_filled: bool
    zero_tail: bool
    holes: bool
    compared: tuple[HashType, ...]  # hash types both sides have
    hashes_equal: bool  # compared is non-empty and every one agrees
    remote_older: bool

    @property
    def proven_ok(self) -> bool:
        return (self.has_remote and self.remote_has_bytes and not self.size_differs and self.hashes_equal
                and not (self.local_unreadable or self.local_all_zero or self.zero_tail or self.holes))

    @classmethod
    def of(cls, local: LocalFile | None, remote: Entry | None, *, oracle: ZeroOracle, policy: Policy,
           now: datetime) -> Facts:
        has_bytes = remote is not None and remote.kind is Kind.FILE
        size_differs = (local is not None and remote is not None and has_bytes and remote.size is not None
                        and remote.size != local.size)
        compared: tuple[HashType, ...] = ()
        equal = False
        if local is not None and remote is not None and has_bytes:
            compared = tuple(sorted(k for k in local.hashes if k in remote.hashes))
            equal = bool(compared) and all(local.hashes[k] == remote.hashes[k] for k in compared)
        all_zero = local is not None and local.zeros.all_zero
        zero_filled = False
        # The oracle hashes `size` zero bytes (slow for big files), so ask only when it can matter:
        # a readable, non-zero local file whose remote copy of equal size does not already match.
        if (local is not None and remote is not None and has_bytes and not size_differs and not equal
                and not all_zero and local.error is None and local.size > 0):
            zero_filled = _remote_is_zeros(remote, local.size, oracle)
        recent = local is not None and (now - local.mtime) < timedelta(seconds=policy.grace_s)
        older = (local is not None and remote is not None and remote.modified is not None
                 and remote.modified + timedelta(seconds=policy.clock_skew_s) < local.mtime)
        return cls(
            has_local=local is not None, has_remote=remote is not None, remote_has_bytes=has_bytes,
            changed_during_scan=local is not None and local.changed_during_scan, recent=recent,
            size_differs=size_differs, local_unreadable=local is not None and local.error is not None,
            local_all_zero=all_zero, remote_zero_filled=zero_filled,
            zero_tail=local is not None and not all_zero and local.zeros.zero_tail_bytes >= max(
                1, policy.min_zero_tail_bytes),
            holes=local is not None and local.zeros.hole_bytes >= max(1, policy.min_zero_tail_bytes),
            compared=compared, hashes_equal=equal, remote_older=older)


def _remote_is_zeros(remote: Entry, size: int, oracle: ZeroOracle) -> bool:
    # One hash type is enough (a collision with the zero hash is not a practical risk); pick the
    # cheapest: quickXorHash of zeros is O(1), the others cost one pass over `size` zero bytes.
    for kind in (HashType.QUICKXOR, HashType.SHA1, HashType.SHA256, HashType.MD5):
        if kind in remote.hashes:
            return oracle(size, kind, remote.hashes[kind])
    return False


F = TypeVar("F")


@dataclass(frozen=True)
class Rule(Generic[F]):
    status: Status
    reason: str
    when: Callable[[F], bool]


RULES: tuple[Rule[Facts], ...] = (
    Rule(Status.MISSING_LOCAL, "no local file", lambda f: not f.has_local),
    Rule(Status.PENDING_SYNC, "changed while it was hashed", lambda f: f.changed_during_scan),
    Rule(Status.PENDING_SYNC, "modified within the grace period",
         lambda f: f.recent and not f.proven_ok and (not f.has_remote or f.remote_has_bytes)),
    Rule(Status.MISSING_REMOTE, "no remote item at this path", lambda f: not f.has_remote),
    Rule(Status.UNVERIFIABLE, "remote item has no bytes to hash", lambda f: not f.remote_has_bytes),
    Rule(Status.UNVERIFIABLE, "local file unreadable", lambda f: f.local_unreadable),
    Rule(Status.SIZE_MISMATCH, "sizes differ", lambda f: f.size_differs),
    Rule(Status.ZERO_FILLED_LOCAL, "local file is all zero bytes", lambda f: f.local_all_zero),
    Rule(Status.ZERO_FILLED_REMOTE, "remote hash is the hash of that many zero bytes",
         lambda f: f.remote_zero_filled),
    Rule(Status.ZERO_TAIL, "local file ends in zero bytes", lambda f: f.zero_tail),
    Rule(Status.HOLES, "local file has sparse holes", lambda f: f.holes),
    Rule(Status.UNVERIFIABLE, "no hash type reported by both sides", lambda f: not f.compared),
    Rule(Status.STALE_REMOTE, "hashes differ; remote older than local",
         lambda f: not f.hashes_equal and f.remote_older),
    Rule(Status.CONTENT_MISMATCH, "hashes differ", lambda f: not f.hashes_equal),
    Rule(Status.OK, "hashes agree", lambda f: f.hashes_equal),
)


@dataclass(frozen=True)
class CopyFacts:
    """Everything the remote-vs-remote rules test, computed once per pair by `CopyFacts.of`."""

    has_source: bool
    has_dest: bool
    source_without_bytes: bool  # a package or native doc: nothing a migration can copy
    both_have_bytes: bool
    size_differs: bool
    has_provenance: bool
    proven: tuple[HashType, ...]  # MD5/SHA-256 the destination reports and the provenance records
    same_source: bool
    dest_hashes_equal: bool  # proven is non-empty and every one agrees
    dest_zero_filled: bool
    qxh_known: bool
    qxh_equal: bool

    @classmethod
    def of(cls, source: Entry | None, dest: Entry | None, *, oracle: ZeroOracle) -> CopyFacts:
        has_bytes = (source is not None and dest is not None and source.kind is Kind.FILE
                     and dest.kind is Kind.FILE)
        size_differs = (has_bytes and source is not None and dest is not None and source.size is not None
                        and dest.size is not None and source.size != dest.size)
        p = prov.Provenance.read(dest.properties) if dest is not None else None
        recorded = _provenance_hashes(p)
        proven = tuple(k for k in (HashType.MD5, HashType.SHA256)
                       if dest is not None and k in dest.hashes and k in recorded)
        equal = bool(proven) and dest is not None and all(dest.hashes[k] == recorded[k] for k in proven)
        src_qxh = source.hashes.get(HashType.QUICKXOR) if source is not None else None
        zero_filled = False
        size = (dest.size if dest is not None and dest.size is not None
                else source.size if source is not None else None)
        if proven and not equal and dest is not None and src_qxh and size:
            # The source's own quickXorHash says it is not zeros; the destination's hash says it is.
            k = HashType.SHA256 if HashType.SHA256 in proven else proven[0]
            zero_filled = (not oracle(size, HashType.QUICKXOR, src_qxh)
                           and oracle(size, k, dest.hashes[k]))
        return cls(
            has_source=source is not None, has_dest=dest is not None,
            source_without_bytes=source is not None and source.kind in (Kind.PACKAGE, Kind.NATIVE_DOC),
            both_have_bytes=has_bytes,
            size_differs=size_differs, has_provenance=p is not None, proven=proven,
            same_source=p is not None and source is not None and p.src_id == source.id,
            dest_hashes_equal=equal, dest_zero_filled=zero_filled,
            qxh_known=bool(src_qxh) and p is not None and bool(p.src_quickxor),
            qxh_equal=bool(src_qxh) and p is not None and p.src_quickxor == src_qxh)


def _provenance_hashes(p: prov.Provenance | None) -> dict[HashType, str]:
    if p is None:
        return {}
    found = {HashType.MD5: p.md5, HashType.SHA256: p.sha256}
    return {k: v.lower() for k, v in found.items() if v}


COPY_RULES: tuple[Rule[CopyFacts], ...] = (
    Rule(Status.MISSING_LOCAL, "source item is gone", lambda f: not f.has_source),
    Rule(Status.UNVERIFIABLE, "source item has no bytes to copy (OneNote notebook or Google Doc)",
         lambda f: f.source_without_bytes),
    Rule(Status.MISSING_REMOTE, "no destination item", lambda f: not f.has_dest),
    Rule(Status.UNVERIFIABLE, "source or destination has no bytes", lambda f: not f.both_have_bytes),
    Rule(Status.SIZE_MISMATCH, "sizes differ", lambda f: f.size_differs),
    Rule(Status.UNVERIFIABLE, "destination carries no provenance", lambda f: not f.has_provenance),
    Rule(Status.UNVERIFIABLE, "no MD5/SHA-256 both reported and recorded", lambda f: not f.proven),
    Rule(Status.CONTENT_MISMATCH, "provenance names another source item", lambda f: not f.same_source),
    Rule(Status.ZERO_FILLED_REMOTE, "destination hash is the hash of that many zero bytes",
         lambda f: f.dest_zero_filled),
    Rule(Status.CONTENT_MISMATCH, "destination hash differs from provenance",
         lambda f: not f.dest_hashes_equal),
    Rule(Status.UNVERIFIABLE, "no source quickXorHash to compare", lambda f: not f.qxh_known),
    Rule(Status.STALE_REMOTE, "source changed since the copy was made", lambda f: not f.qxh_equal),
    Rule(Status.OK, "destination hashes equal provenance; source unchanged",
         lambda f: f.dest_hashes_equal and f.qxh_equal),
)


def _first(rules: tuple[Rule[F], ...], facts: F) -> Rule[F]:
    for rule in rules:
        if rule.when(facts):
            return rule
    raise AssertionError(f"no rule matched {facts!r}")  # the last rule is total over reachable facts


def classify(local: LocalFile | None, remote: Entry | None, *, now: datetime,
             policy: Policy = Policy(), oracle: ZeroOracle = is_zero_content, path: str | None = None) -> Finding:
    """The status of one local file against the remote item at the same path (see the table above).

    `remote` must be a non-folder item or None; at least one side must be given. `now` is timezone-aware
    UTC (the grace period is measured from it). `path` names the finding (default: the local path, else
    the remote's). Raises ValueError on a folder or on (None, None).
    """
    if local is None and remote is None:
        raise ValueError("classify needs a local file or a remote item")
    if remote is not None and remote.kind is Kind.FOLDER:
        raise ValueError(f"classify compares files, not folders: {remote.path}")
    facts = Facts.of(local, remote, oracle=oracle, policy=policy, now=now)
    rule = _first(RULES, facts)
    kind = next((k for k in facts.compared if local and remote and local.hashes[k] != remote.hashes[k]),
                facts.compared[0] if facts.compared else None)
    return Finding(
        path=path if path is not None else local.path if local is not None else remote.path if remote else "",
        status=rule.status, reason=rule.reason,
        local_size=local.size if local is not None else None,
        remote_size=remote.size if remote is not None else None, hash_type=kind,
        local_hash=local.hashes.get(kind) if local is not None and kind else None,
        remote_hash=remote.hashes.get(kind) if remote is not None and kind else None,
        local_mtime=local.mtime if local is not None else None,
        remote_modified=remote.modified if remote is not None else None,
        remote_id=remote.id if remote is not None else None,
        zero_tail_bytes=local.zeros.zero_tail_bytes if local is not None else 0,
        hole_bytes=local.zeros.hole_bytes if local is not None else 0)


def classify_copy(source: Entry | None, dest: Entry | None, *,
                  oracle: ZeroOracle = is_zero_content) -> Finding:
    """The status of a migrated copy, from the source's metadata, the destination's metadata and the
    destination's provenance properties only (nothing is downloaded). "local" fields describe the source.

    ok needs both: the destination's own MD5/SHA-256 equal the provenance hashes, and the provenance's
    source quickXorHash equals the source's current one. Raises ValueError on (None, None).
    """
    if source is None and dest is None:
        raise ValueError("classify_copy needs a source or a destination item")
    facts = CopyFacts.of(source, dest, oracle=oracle)
    rule = _first(COPY_RULES, facts)
    p = prov.Provenance.read(dest.properties) if dest is not None else None
    recorded = _provenance_hashes(p)
    kind = facts.proven[0] if facts.proven else None
    if dest is not None and facts.proven:
        kind = next((k for k in facts.proven if dest.hashes[k] != recorded[k]), kind)
    return Finding(
        path=dest.path if dest is not None else source.path if source is not None else "",
        status=rule.status, reason=rule.reason,
        local_size=source.size if source is not None else None,
        remote_size=dest.size if dest is not None else None, hash_type=kind,
        local_hash=recorded.get(kind) if kind else None,
        remote_hash=dest.hashes.get(kind) if dest is not None and kind else None,
        local_mtime=source.modified if source is not None else None,
        remote_modified=dest.modified if dest is not None else None,
        remote_id=dest.id if dest is not None else None)


def _entry_path(e: Entry) -> str:
    return e.path


def pair(files: Iterable[LocalFile], entries: Iterable[Entry], *,
         key: Callable[[Entry], str] = _entry_path) -> list[tuple[LocalFile | None, Entry | None]]:
    """Match local files and remote items by path. Folders are skipped.

    `key` gives a remote item's path relative to the same root as `LocalFile.path` (default
    `Entry.path`, which is relative to the provider root; pass the walk's relative path when verifying
    a sub-folder). Drive allows several items with one name: each duplicate is paired with the local
    file and gets its own finding (one may be ok and another a zero-filled placeholder), so none goes
    unreported.
    """
    by_path: dict[str, list[Entry]] = {}
    for e in entries:
        if e.kind is not Kind.FOLDER:
            by_path.setdefault(key(e), []).append(e)
    out: list[tuple[LocalFile | None, Entry | None]] = []
    for f in files:
        candidates = by_path.pop(f.path, [])
        if candidates:
            out.extend((f, e) for e in candidates)
        else:
            out.append((f, None))
    out.extend((None, e) for group in by_path.values() for e in group)
    return out


def classify_tree(files: Iterable[LocalFile], entries: Iterable[Entry], *, now: datetime,
                  policy: Policy = Policy(), oracle: ZeroOracle = is_zero_content,
                  key: Callable[[Entry], str] = _entry_path) -> list[Finding]:
    """`classify` over `pair(files, entries, key=key)`, sorted by path: one finding per pair, none dropped."""
    found = [classify(f, e, now=now, policy=policy, oracle=oracle, path=f.path if f else key(e) if e else None)
             for f, e in pair(files, entries, key=key)]
    return sorted(found, key=lambda x: (x.path, x.remote_id or ""))
