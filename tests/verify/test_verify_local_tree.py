"""End to end without an emulator: a download folder against a "Drive mirror" read through LocalProvider.

The mirror plays the FUSE-synced Drive: the provider's content hasher stands in for the checksums the
cloud API reports. It holds the damage the lazy sync leaves: a zero-filled placeholder, a stale copy
after a same-size rewrite, a missing file, and a copy of an unfinished download.
"""

from __future__ import annotations

import dataclasses
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driveferry.integrity.hashes import HashType
from driveferry.providers.base import Entry
from driveferry.providers.local import LocalProvider
from driveferry.providers.ops import walk_files
from driveferry.verify.classify import Status, classify_tree
from driveferry.verify.report import summarize, write_html
from driveferry.verify.scan import choose_hash, scan


def _write(path: Path, content: bytes, mtime: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    ts = mtime.timestamp()
    os.utime(path, (ts, ts))


def test_download_folder_against_mirror(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    day_ago, hour_ago, two_hours_ago = now - timedelta(days=1), now - timedelta(hours=1), now - timedelta(hours=2)
    local, mirror = tmp_path / "downloads", tmp_path / "drive" / "mirror"
    good, placeholder, new, old = (os.urandom(300_000) for _ in range(4))
    partial = os.urandom(50_000) + bytes(250_000)
    for rel, content, mtime in [("good.bin", good, day_ago), ("sub/placeholder.iso", placeholder, day_ago),
                                ("rewritten.bin", new, hour_ago), ("only_local.bin", good, day_ago),
                                ("partial.part", partial, day_ago), ("fresh.bin", good, now)]:
        _write(local / rel, content, mtime)
    for rel, content, mtime in [("good.bin", good, day_ago), ("sub/placeholder.iso", bytes(300_000), day_ago),
                                ("rewritten.bin", old, two_hours_ago), ("partial.part", partial, day_ago),
                                ("only_remote.txt", b"notes", day_ago)]:
        _write(mirror / rel, content, mtime)

    provider = LocalProvider(tmp_path / "drive")
    kind = choose_hash({HashType.MD5, HashType.SHA1, HashType.SHA256})
    rel_of: dict[str, str] = {}
    entries: list[Entry] = []
    assert provider.features.content_hasher is not None
    for w in walk_files(provider, provider.stat("mirror")):
        hashed = dataclasses.replace(w.entry, hashes=provider.features.content_hasher.hash_file(w.entry, [kind]))
        rel_of[hashed.id] = w.rel_path
        entries.append(hashed)

    files = scan(local, {kind}).files
    found = {f.path: f.status for f in classify_tree(files, entries, now=now, key=lambda e: rel_of[e.id])}
    assert found == {
        "good.bin": Status.OK,
        "sub/placeholder.iso": Status.ZERO_FILLED_REMOTE,
        "rewritten.bin": Status.STALE_REMOTE,
        "only_local.bin": Status.MISSING_REMOTE,
        "partial.part": Status.ZERO_TAIL,
        "fresh.bin": Status.PENDING_SYNC,
        "only_remote.txt": Status.MISSING_LOCAL,
    }
    findings = classify_tree(files, entries, now=now, key=lambda e: rel_of[e.id])
    summary = summarize(findings)
    assert summary.files_of(Status.OK) == 1 and summary.problems == 6
    page = io.StringIO()
    write_html(findings, page, generated_at=now)
    assert 'data-status-count="zero_filled_remote">1<' in page.getvalue()
