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
the provenance the relay wrote (keys in `driveferry.integrity.provenance`) by the one proof
(`integrity/proof.prove_copy`), downloading nothing (a side that computes rather than reports hashes,
the local filesystem, is hashed by the caller first):

    #  status              when
    1  missing_local       the source item is gone (nothing to prove the copy against)
    2  unverifiable        the source item has no bytes to copy (OneNote notebook, Google Doc): migrate
                           reports it as not copyable, so no destination item is expected
    3  missing_remote      the destination item is missing
    4  unverifiable        the source or the destination has no bytes (native doc, package)
    5  size_mismatch       both sizes are known and differ
    6  unverifiable        the destination carries no provenance
    7  content_mismatch    provenance names a different source item
    8  unverifiable        no destination hash of a type the provenance records
    9  zero_filled_remote  a destination hash is the hash of `size` zeros; the recorded content is not
    10 content_mismatch    a destination hash differs from the recorded content hash
    11 unverifiable        no current source hash of a type recorded when it was copied
    12 stale_remote        the source's current hash differs from the one recorded (changed since)
    13 ok                  destination hash equals the recorded content, source hash equals the recorded

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
from driveferry.integrity.proof import Outcome, Side, Verdict, prove_copy
from driveferry.integrity.proof import compare as compare_hashes
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
            equal = compare_hashes(local.hashes, remote.hashes).proven  # the one proof
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
    verdict: Verdict  # the one proof's decision on the pair
    dest_zero_filled: bool

    def decided(self, side: Side, outcome: Outcome) -> bool:
        return self.verdict.side is side and self.verdict.outcome is outcome

    @classmethod
    def of(cls, source: Entry | None, dest: Entry | None, *, oracle: ZeroOracle) -> CopyFacts:
        has_bytes = (source is not None and dest is not None and source.kind is Kind.FILE
                     and dest.kind is Kind.FILE)
        size_differs = (has_bytes and source is not None and dest is not None and source.size is not None
                        and dest.size is not None and source.size != dest.size)
        p = prov.Provenance.read(dest.properties) if dest is not None else None
        verdict = Verdict(Outcome.UNVERIFIABLE, "nothing to compare")
        if source is not None and dest is not None:
            verdict = prove_copy(source_id=source.id, source_size=source.size, source_hashes=source.hashes,
                                 dest_size=dest.size, dest_hashes=dest.hashes,
                                 record_src_id=p.src_id if p else None,
                                 record_source=p.source_hashes() if p else {},
                                 record_content=p.content_hashes() if p else {})
        zero_filled = False
        size = dest.size if dest is not None else None
        if (verdict.side is Side.DEST and verdict.differs and verdict.hash_type is not None
                and verdict.expected and verdict.actual and size):
            # the recorded content is not zeros; the destination's hash says it now is
            zero_filled = (not oracle(size, verdict.hash_type, verdict.expected)
                           and oracle(size, verdict.hash_type, verdict.actual))
        return cls(
            has_source=source is not None, has_dest=dest is not None,
            source_without_bytes=source is not None and source.kind in (Kind.PACKAGE, Kind.NATIVE_DOC),
            both_have_bytes=has_bytes, size_differs=size_differs, verdict=verdict,
            dest_zero_filled=zero_filled)


COPY_RULES: tuple[Rule[CopyFacts], ...] = (
    Rule(Status.MISSING_LOCAL, "source item is gone", lambda f: not f.has_source),
    Rule(Status.UNVERIFIABLE, "source item has no bytes to copy (OneNote notebook or Google Doc)",
         lambda f: f.source_without_bytes),
    Rule(Status.MISSING_REMOTE, "no destination item", lambda f: not f.has_dest),
    Rule(Status.UNVERIFIABLE, "source or destination has no bytes", lambda f: not f.both_have_bytes),
    Rule(Status.SIZE_MISMATCH, "sizes differ", lambda f: f.size_differs),
    Rule(Status.UNVERIFIABLE, "destination carries no provenance",
         lambda f: f.decided(Side.RECORD, Outcome.UNVERIFIABLE)),
    Rule(Status.CONTENT_MISMATCH, "provenance names another source item",
         lambda f: f.decided(Side.RECORD, Outcome.DIFFERS)),
    Rule(Status.UNVERIFIABLE, "no destination hash of a type the provenance records",
         lambda f: f.decided(Side.DEST, Outcome.UNVERIFIABLE)),
    Rule(Status.ZERO_FILLED_REMOTE, "destination hash is the hash of that many zero bytes",
         lambda f: f.dest_zero_filled),
    Rule(Status.CONTENT_MISMATCH, "destination hash differs from provenance",
         lambda f: f.decided(Side.DEST, Outcome.DIFFERS)),
    Rule(Status.UNVERIFIABLE, "no current source hash of a type recorded at copy time",
         lambda f: f.decided(Side.SOURCE, Outcome.UNVERIFIABLE)),
    Rule(Status.STALE_REMOTE, "source changed since the copy was made",
         lambda f: f.decided(Side.SOURCE, Outcome.DIFFERS)),
    Rule(Status.OK, "destination hash equals provenance; source unchanged", lambda f: f.verdict.proven),
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

    ok needs both halves of `prove_copy`: a destination hash equals the recorded content hash, and a
    current source hash equals the recorded source hash. For a source-side decision the finding's
    local/remote hash are the recorded and the current source hash. Raises ValueError on (None, None).
    """
    if source is None and dest is None:
        raise ValueError("classify_copy needs a source or a destination item")
    facts = CopyFacts.of(source, dest, oracle=oracle)
    rule = _first(COPY_RULES, facts)
    v = facts.verdict
    kind = v.hash_type if v.side is not Side.RECORD else None
    return Finding(
        path=dest.path if dest is not None else source.path if source is not None else "",
        status=rule.status, reason=rule.reason,
        local_size=source.size if source is not None else None,
        remote_size=dest.size if dest is not None else None, hash_type=kind,
        local_hash=v.expected if kind else None, remote_hash=v.actual if kind else None,
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
