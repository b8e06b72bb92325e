"""Verify orchestration: a local tree against a remote folder, and a remote folder against its copy.

Both stream: `verify.merge` walks the two trees folder by folder in sorted path order, so memory is
bounded by the open folders' listings and the hashing window, whatever the tree's size; each finding
goes to a `FindingSink` as it is decided (exact counts, a spill file in path order).

`compare_local(root, provider, folder, ...)` hashes the local files (hash cache, threads, `Scanner`)
with the one hash `choose_hash` picks for the remote (the hash cache keeps that choice for later
runs), lists the remote folder through the API (never a FUSE view), and classifies every pair. `compare_remotes(src, dst, ...)` proves a migration from
metadata and provenance (`classify_copy`, the one proof of `integrity/proof.py`; a local side is
hashed first); with `download=True`, pairs left unverifiable for want of a usable hash are settled by
downloading the side that lacks it and hashing it with a type the other side reports.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from driveferry.errors import DriveferryError, UnsupportedError, UserError
from driveferry.integrity.hashes import HashType, MultiHasher
from driveferry.integrity.provenance import Provenance
from driveferry.integrity.zeros import is_zero_content
from driveferry.providers.base import Entry, Kind, Provider
from driveferry.providers.hashing import with_computed
from driveferry.verify.cache import HashCache
from driveferry.verify.classify import Finding, Policy, Status, classify, classify_copy
from driveferry.verify.listing import LocalLister, RemoteLister
from driveferry.verify.merge import Group, Held, merged
from driveferry.verify.scan import LocalFile, Scanner, choose_hash
from driveferry.verify.sink import FindingSink

__all__ = ["Comparison", "Fill", "compare_local", "compare_remotes"]


@dataclass
class Comparison:
    """What one verify run found. The findings themselves are in `sink` (counted exactly, spilled to
    disk in path order); `entries` and `local` hold the problems' remote entries and local files when
    the sink keeps problems (`--fix`). `peak_held` is the most listed-but-unfinished items held at once
    (the merge's open folders plus the hashing window): bounded by a folder, not by the tree."""

    sink: FindingSink
    hash_type: HashType | None
    unlisted: tuple[tuple[str, str], ...] = ()
    downloaded_bytes: int = 0
    hashed_files: int = 0
    cached_files: int = 0
    hashed_bytes: int = 0
    peak_held: int = 0
    peak_ahead: int = 0  # remote listings started ahead and not yet consumed, at most (verify.listing)

    @property
    def entries(self) -> dict[str, Entry]:
        return self.sink.entries

    @property
    def local(self) -> dict[str, LocalFile]:
        return self.sink.local

    @property
    def findings(self) -> list[Finding]:
        """Every finding, read back from the spill (for small trees and tests; holds them all)."""
        return list(self.sink.findings())


Fill = Callable[[str, bool], tuple[list[Entry], list[Entry]]]


def compare_local(root: Path, provider: Provider, folder: Entry, *, now: datetime, policy: Policy,
                  cache: HashCache | None, workers: int | None = None,
                  progress: Callable[[int], None] | None = None, only: Iterable[str] | None = None,
                  sink: FindingSink | None = None, on_local: Callable[[LocalFile], None] | None = None,
                  held: Held | None = None, checkers: int = 8, fill: Fill | None = None) -> Comparison:
    """Local tree under `root` vs the remote `folder`, streamed (module doc). `only`: restrict to these
    relative paths (re-verify). `on_local` sees every local file scanned, in path order (--manifest).
    `checkers`: remote folders listed ahead at once (verify.listing). `fill(rel, is_folder)`: remote
    items a listing lacks (the re-verify after --fix asks for what it just uploaded by id, verify.fix).

    Raises UnsupportedError when the remote neither reports nor computes a content hash, UserError when
    `root` is not a folder.
    """
    if not root.is_dir():
        raise UserError(f"not a directory: {root}")
    # a remote that reports no hash but computes any (a local folder) is hashed with SHA-256
    computes = not provider.hash_types and provider.features.content_hasher is not None
    # the cache keeps the hash chosen by an earlier run, whose rows then answer this one (verify.cache)
    kind = HashType.SHA256 if computes else (
        choose_hash(provider.hash_types) if cache is None else cache.choice(provider.hash_types, choose_hash))
    wanted = set(only) if only is not None else None
    out = Comparison(sink if sink is not None else FindingSink(), kind)
    count = held if held is not None else Held()
    local_lister = LocalLister()
    window: deque[tuple[Group[str, Entry], Callable[[], LocalFile | None] | None]] = deque()

    def emit(group: Group[str, Entry], resolve: Callable[[], LocalFile | None] | None) -> None:
        local = resolve() if resolve is not None else None
        count.add(-1 - len(group.right))
        remotes = sorted((_computed(provider, e, kind) for e in group.right), key=lambda e: e.id)
        if local is None and not remotes:
            return  # a local special file with nothing remote: not verify's business
        if local is not None and on_local is not None:
            on_local(local)
        pairs: list[Entry | None] = list(remotes) or [None]
        for e in pairs:
            out.sink.add(classify(local, e, now=now, policy=policy, path=group.rel), local, e)

    with Scanner({kind}, cache=cache, workers=workers, progress=progress) as scanner, \
            RemoteLister(provider, checkers) as remote_lister:
        for group in merged([str(root)], [folder], local_lister, remote_lister, fill=fill, held=count):
            if wanted is not None and group.rel not in wanted:
                continue
            count.add(1 + len(group.right))
            window.append((group, scanner.start(group.rel, group.left[0]) if group.left else None))
            while len(window) >= scanner.window:
                emit(*window.popleft())
        while window:
            emit(*window.popleft())
    out.unlisted = tuple(local_lister.unlisted)
    out.peak_ahead = remote_lister.peak_ahead
    out.hashed_files, out.cached_files = scanner.hashed_files, scanner.cached_files
    out.hashed_bytes, out.peak_held = scanner.hashed_bytes, count.peak
    return out


def _computed(provider: Provider, e: Entry, kind: HashType) -> Entry:
    """`e` with a `kind` hash computed by a provider whose listing carries none but which can compute
    one (the local filesystem): otherwise nothing could ever be proven against it."""
    hasher = provider.features.content_hasher
    if hasher is not None and e.kind is Kind.FILE and kind not in e.hashes:
        return dataclasses.replace(e, hashes={**e.hashes, **hasher.hash_file(e, [kind])})
    return e


def compare_remotes(src: Provider, src_folder: Entry, dst: Provider, dst_folder: Entry, *,
                    download: bool = False, sink: FindingSink | None = None, fill: Fill | None = None,
                    held: Held | None = None, checkers: int = 8) -> Comparison:
    """A migration source vs its destination, from metadata and provenance (see module doc), streamed
    folder by folder. `fill(rel, is_folder)` supplies destination items a listing lacks (the journal's
    recorded ids, verify.recorded)."""
    out = Comparison(sink if sink is not None else FindingSink(), None)
    count = held if held is not None else Held()
    with RemoteLister(src, checkers) as list_src, RemoteLister(dst, checkers) as list_dst:
        _pair_copies(src, dst, merged([src_folder], [dst_folder], list_src, list_dst, fill=fill, held=count),
                     download, out)
        out.peak_ahead = max(list_src.peak_ahead, list_dst.peak_ahead)
    out.peak_held = count.peak
    return out


def _pair_copies(src: Provider, dst: Provider, groups: Iterable[Group[Entry, Entry]], download: bool,
                 out: Comparison) -> None:
    for group in groups:
        found: list[tuple[Finding, Entry | None]] = []
        sources: list[Entry | None] = list(group.left) or [None]
        for i, source in enumerate(sources):
            # the first source of a name pairs with every destination item of it, as a walk by path does
            dests: list[Entry | None] = list(group.right) if i == 0 and group.right else [None]
            for d in dests:
                s, d2 = _hashed(src, source, dst, d)
                f = dataclasses.replace(classify_copy(s, d2), path=group.rel)
                if download and f.status is Status.UNVERIFIABLE and s is not None and d2 is not None:
                    f = _by_download(f, src, s, dst, d2, out)
                found.append((f, d2))
        for f, d in sorted(found, key=lambda x: x[0].remote_id or ""):
            out.sink.add(f, None, d)


def _hashed(src: Provider, s: Entry | None, dst: Provider, d: Entry | None) -> tuple[Entry | None, Entry | None]:
    """The pair with a hash computed on a side that computes rather than reports (a local folder), of
    a type the destination's provenance records: so the proof compares bytes, not metadata alone."""
    p = Provenance.read(d.properties) if d is not None else None
    if p is None or s is None or d is None or p.src_id != s.id:
        return s, d
    try:
        return with_computed(src, s, p.source_hashes()), with_computed(dst, d, p.content_hashes())
    except (OSError, DriveferryError):
        return s, d  # unreadable: left without the hash, so the pair is reported unverifiable


def _by_download(f: Finding, src: Provider, s: Entry, dst: Provider, d: Entry, out: Comparison) -> Finding:
    """Settle an unverifiable pair by hashing one side's bytes with a type the other side reports."""
    if s.kind is not Kind.FILE or d.kind is not Kind.FILE:
        return f  # a native doc or a package has no bytes to download
    common = [k for k in (HashType.SHA256, HashType.SHA1, HashType.MD5, HashType.QUICKXOR)
              if k in s.hashes or k in d.hashes]
    if not common:  # neither side reports a hash: both must be read (same type for both)
        kind, known, reader, entry = HashType.SHA256, None, src, s
    else:
        kind = common[0]
        known, reader, entry = (s.hashes[kind], dst, d) if kind in s.hashes else (d.hashes[kind], src, s)
    try:
        digest = _download_hash(reader, entry, kind, out)
        if known is None:
            known = _download_hash(dst, d, kind, out)
    except (UnsupportedError, DriveferryError) as exc:
        return dataclasses.replace(f, reason=f"{f.reason}; download failed: {exc}")
    size = d.size if d.size is not None else 0
    if digest == known:
        status, reason = Status.OK, f"downloaded and hashed ({kind.value}): equal"
    elif size and is_zero_content(size, kind, d.hashes.get(kind, digest if reader is dst else "")):
        status, reason = Status.ZERO_FILLED_REMOTE, f"downloaded ({kind.value}): destination is all zeros"
    else:
        status, reason = Status.CONTENT_MISMATCH, f"downloaded and hashed ({kind.value}): different"
    local_hash, remote_hash = (known, digest) if reader is dst else (digest, known)
    return dataclasses.replace(f, status=status, reason=reason, hash_type=kind, local_hash=local_hash,
                               remote_hash=remote_hash)


def _download_hash(provider: Provider, entry: Entry, kind: HashType, out: Comparison) -> str:
    hasher = MultiHasher([kind])
    for chunk in provider.open_range(entry, 0, entry.size):
        hasher.update(chunk)
        out.downloaded_bytes += len(chunk)
    return hasher.hexdigests()[kind]
