"""Verify orchestration: a local tree against a remote folder, and a remote folder against its copy.

`compare_local(root, provider, folder, ...)` scans the local tree (hash cache, threads) with the one
hash `choose_hash` picks for the remote, lists the remote folder through the API (never a FUSE view),
and classifies every pair. `compare_remotes(src, dst, ...)` proves a migration from metadata and
provenance (`classify_copy`, the one proof of `integrity/proof.py`; a local side is hashed first); with `download=True`, pairs left unverifiable for want of a usable hash
are settled by downloading the side that lacks it and hashing it with a type the other side reports.

Both return a `Comparison`: the findings (sorted by path) and what was needed to get them (the
remote entries by id and the local files by path, which `--fix` uses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from driveferry.errors import DriveferryError, UnsupportedError
from driveferry.integrity.hashes import HashType, MultiHasher
from driveferry.integrity.provenance import Provenance
from driveferry.integrity.zeros import is_zero_content
from driveferry.providers.base import Entry, Kind, Provider
from driveferry.providers.hashing import with_computed
from driveferry.providers.ops import walk_files
from driveferry.verify.cache import HashCache
from driveferry.verify.classify import Finding, Policy, Status, classify_copy, classify_tree
from driveferry.verify.scan import LocalFile, ScanResult, choose_hash, scan

__all__ = ["Comparison", "compare_local", "compare_remotes", "remote_files"]


@dataclass
class Comparison:
    findings: list[Finding]
    hash_type: HashType | None
    entries: dict[str, Entry] = field(default_factory=dict)  # remote (destination) entries by id
    rel_of: dict[str, str] = field(default_factory=dict)  # remote id -> path relative to the folder
    local: dict[str, LocalFile] = field(default_factory=dict)  # local files by relative path
    scanned: ScanResult | None = None
    unlisted: tuple[tuple[str, str], ...] = ()
    downloaded_bytes: int = 0


def remote_files(provider: Provider, folder: Entry, kind: HashType | None = None) -> tuple[list[Entry], dict[str, str]]:
    """Every non-folder item under `folder`, and id -> path relative to it.

    A provider whose listing carries no hashes but which can compute them (the local filesystem) is
    asked to, for `kind`: otherwise nothing could ever be proven against it.
    """
    hasher = provider.features.content_hasher
    entries: list[Entry] = []
    rel_of: dict[str, str] = {}
    for w in walk_files(provider, folder):
        e = w.entry
        if hasher is not None and kind is not None and e.kind is Kind.FILE and kind not in e.hashes:
            e = dataclasses.replace(e, hashes={**e.hashes, **hasher.hash_file(e, [kind])})
        entries.append(e)
        rel_of[e.id] = w.rel_path
    return entries, rel_of


def compare_local(root: Path, provider: Provider, folder: Entry, *, now: datetime, policy: Policy,
                  cache: HashCache | None, workers: int | None = None,
                  progress: Callable[[int], None] | None = None, only: Iterable[str] | None = None) -> Comparison:
    """Local tree under `root` vs the remote `folder`. `only`: restrict to these relative paths (re-verify).

    Raises UnsupportedError when the remote neither reports nor computes a content hash, UserError when
    `root` is not a folder.
    """
    # a remote that reports no hash but computes any (a local folder) is hashed with SHA-256
    computes = not provider.hash_types and provider.features.content_hasher is not None
    kind = HashType.SHA256 if computes else choose_hash(provider.hash_types)
    wanted = set(only) if only is not None else None
    files = None if wanted is None else sorted(p for p in wanted if (root / p).is_file())
    result = scan(root, {kind}, cache=cache, workers=workers, progress=progress, files=files)
    entries, rel_of = remote_files(provider, folder, kind)
    if wanted is not None:
        entries = [e for e in entries if rel_of[e.id] in wanted]
    findings = classify_tree(result.files, entries, now=now, policy=policy, key=lambda e: rel_of[e.id])
    return Comparison(findings, kind, {e.id: e for e in entries}, rel_of, {f.path: f for f in result.files},
                      result, result.unlisted)


def compare_remotes(src: Provider, src_folder: Entry, dst: Provider, dst_folder: Entry, *,
                    download: bool = False) -> Comparison:
    """A migration source vs its destination, from metadata and provenance (see module doc)."""
    src_entries, src_rel = remote_files(src, src_folder)
    dst_entries, dst_rel = remote_files(dst, dst_folder)
    by_path: dict[str, list[Entry]] = {}
    for e in dst_entries:
        by_path.setdefault(dst_rel[e.id], []).append(e)
    pairs: list[tuple[str, Entry | None, Entry | None]] = []
    for source in src_entries:
        rel = src_rel[source.id]
        group: list[Entry | None] = list(by_path.pop(rel, [])) or [None]
        pairs.extend((rel, source, d) for d in group)
    pairs.extend((rel, None, d) for rel, dests in by_path.items() for d in dests)
    out = Comparison([], None, {e.id: e for e in dst_entries}, dst_rel)
    for rel, s, d in pairs:
        s, d = _hashed(src, s, dst, d)
        f = dataclasses.replace(classify_copy(s, d), path=rel)
        if download and f.status is Status.UNVERIFIABLE and s is not None and d is not None:
            f = _by_download(f, src, s, dst, d, out)
        out.findings.append(f)
    out.findings.sort(key=lambda x: (x.path, x.remote_id or ""))
    return out


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
