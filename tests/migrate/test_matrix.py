"""The proof over every pair of providers: each ordered pair of (local, gdrive, onedrive), source !=
destination, plus local -> local, through the real CLI against the emulator.

Per pair: the copy is byte-identical with its modified time; two source files are then rewritten in
place at the same size with their modified time restored (local: os.utime; clouds: a new revision
uploaded through the provider with the old modified time), so only a content hash can tell; verify
flags exactly those two before the re-run; the re-run (same journal) copies exactly those two again
and leaves the rest alone; verify then calls every file ok.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from world import World, make_world, summary_of

from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.providers.base import Entry, Kind, UploadMeta
from driveferry.providers.ops import upload_bytes, walk
from realism_run import Profile

CHUNK = 1280 * 1024  # a multiple of both clouds' chunk rules
WHEN = datetime(2024, 3, 1, 12, 30, 15, tzinfo=UTC)
FILES = {  # rel path -> (size, seed byte); sub/big.bin takes the relay's multi-chunk path
    "a.txt": 2_000,
    "sub/big.bin": CHUNK + 333,
    "sub/c.bin": 5_000,
    "sub/deeper/d.bin": 70_000,
}
CHANGED = ("a.txt", "sub/big.bin")  # rewritten in place at the same size
PAIRS = [("local", "gdrive"), ("local", "onedrive"), ("gdrive", "local"), ("gdrive", "onedrive"),
         ("onedrive", "local"), ("onedrive", "gdrive"), ("local", "local")]


def _content(rel: str, size: int, generation: int) -> bytes:
    seed = f"{rel}:{generation}".encode()
    block = (seed * (4096 // len(seed) + 1))[:4096]
    return (block * (size // 4096 + 1))[:size]


class Side:
    """One end of a pair: where its files live and how to read, write and name them."""

    def __init__(self, world: World, kind: str, tag: str) -> None:
        self.world, self.kind = world, kind
        self.dir = world.dir / tag
        self.root = f"M-{tag}"
        self.provider: Any = None if kind == "local" else world.provider(kind)

    @property
    def spec(self) -> str:
        return {"local": str(self.dir), "gdrive": f"emu-gdrive:{self.root}",
                "onedrive": f"emu-onedrive:/{self.root}"}[self.kind]

    def write(self, rel: str, data: bytes, replace: bool = False) -> None:
        if self.kind == "local":
            path = self.dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            ns = int(WHEN.timestamp()) * 1_000_000_000
            os.utime(path, ns=(ns, ns))  # the modified time restored: size and mtime say "unchanged"
            return
        parent = self.provider.root()
        for part in [self.root, *posixpath.dirname(rel).split("/")]:
            if part:
                parent = self.provider.mkdir(parent, part)
        upload_bytes(self.provider, parent, posixpath.basename(rel), data, CHUNK,
                     UploadMeta(modified=WHEN, replace=replace))

    def files(self) -> dict[str, Entry]:
        if self.kind == "local":
            from driveferry.providers.local import LocalProvider
            provider: Any = LocalProvider(self.dir)
            top = provider.root()
        else:
            provider = self.provider
            top = provider.stat(self.root)
        self._reader = provider
        out: dict[str, Entry] = {}
        for found in walk(provider, top, include_folders=False):
            if found.entry.kind is Kind.FILE:
                assert found.rel_path not in out, f"{found.rel_path} twice on {self.kind}"
                out[found.rel_path] = found.entry
        return out

    def settle(self, generation: dict[str, int]) -> None:
        """Wait until this side's listing reports every file with its current content (Drive hides new
        files from listings for a while and Graph may serve the old metadata after a rewrite under the
        realism profile: api-notes Part C §20), as files that existed long before a run would be."""
        if self.kind == "local":
            return
        kind = HashType.QUICKXOR if self.kind == "onedrive" else HashType.MD5
        want = {rel: hash_bytes(_content(rel, size, generation[rel]), [kind])[kind] for rel, size in FILES.items()}
        seen: dict[str, str | None] = {}
        for _ in range(600):
            seen = {rel: e.hashes.get(kind) for rel, e in self.files().items()}
            if seen == want:
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.kind} listing never settled: {seen} != {want}")

    def read(self, entry: Entry) -> bytes:
        return b"".join(self._reader.open_range(entry, 0, entry.size))


@pytest.fixture()
def world(tmp_path: Path, emu_profile: Profile) -> Iterator[World]:
    yield from make_world(tmp_path, {"seed": 1}, emu_profile)


def _needs_download(src: Side, dst: Side) -> bool:
    """Cloud -> OneDrive: OneDrive keeps no provenance properties and reports only quickXorHash, which
    Drive does not report, so no metadata-only proof exists; verify must read one side (--download)."""
    return src.kind != "local" and dst.kind == "onedrive"


def _verify(world: World, src: Side, dst: Side, download: bool | None = None) -> tuple[int, dict[str, str]]:
    report = world.dir / "verify.jsonl"
    extra = ["--download"] if (_needs_download(src, dst) if download is None else download) else []
    proc = world.cli("verify", src.spec, dst.spec, "-q", "--no-cache", "--grace", "0", "--report", str(report),
                     *extra)
    statuses = {}
    for line in report.read_text().splitlines():
        rec = json.loads(line)
        statuses[rec["path"]] = rec["status"]
    return proc.returncode, statuses


def _migrate(world: World, src: Side, dst: Side) -> dict[str, Any]:
    proc = world.cli("migrate", src.spec, dst.spec, "--journal", str(world.journal), "--json",
                     "--chunk-size", str(CHUNK))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return summary_of(proc)


def _assert_copied(src: Side, dst: Side, generation: dict[str, int]) -> None:
    have = dst.files()
    assert sorted(have) == sorted(FILES)
    for rel, size in FILES.items():
        assert dst.read(have[rel]) == _content(rel, size, generation[rel]), rel
        modified = have[rel].modified
        assert modified is not None and abs(modified - WHEN) < timedelta(seconds=1), (rel, modified)


@pytest.mark.parametrize(("src_kind", "dst_kind"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_pair_copies_proves_and_catches_same_size_rewrites(world: World, src_kind: str, dst_kind: str) -> None:
    _round_trip(world, src_kind, dst_kind)


def _round_trip(world: World, src_kind: str, dst_kind: str) -> None:
    src, dst = Side(world, src_kind, "src"), Side(world, dst_kind, "dst")
    generation = dict.fromkeys(FILES, 0)
    for rel, size in FILES.items():
        src.write(rel, _content(rel, size, 0))

    src.settle(generation)
    first = _migrate(world, src, dst)
    assert (first["copied"], first["failed"], first["unverified"]) == (len(FILES), 0, 0), first
    _assert_copied(src, dst, generation)
    code, statuses = _verify(world, src, dst)
    assert statuses == dict.fromkeys(FILES, "ok") and code == 0
    if _needs_download(src, dst):  # from metadata alone such a copy is never called ok
        code, statuses = _verify(world, src, dst, download=False)
        assert statuses == dict.fromkeys(FILES, "unverifiable") and code == 1

    for rel in CHANGED:  # same size, same modified time, other bytes
        generation[rel] = 1
        src.write(rel, _content(rel, FILES[rel], 1), replace=True)
    src.settle(generation)
    assert sorted(src.files()) == sorted(FILES)  # rewritten in place, not twinned
    code, statuses = _verify(world, src, dst)
    stale = {p for p, s in statuses.items() if s != "ok"}
    assert stale == set(CHANGED) and code == 1, statuses
    assert all(statuses[p] in ("stale_remote", "content_mismatch") for p in CHANGED), statuses

    before = {rel: e.id for rel, e in dst.files().items()}
    second = _migrate(world, src, dst)
    assert (second["copied"], second["failed"], second["unverified"]) == (len(CHANGED), 0, 0), second
    _assert_copied(src, dst, generation)
    after = {rel: e.id for rel, e in dst.files().items()}
    untouched = [rel for rel in FILES if rel not in CHANGED]
    assert all(after[rel] == before[rel] for rel in untouched)  # unchanged files left alone
    code, statuses = _verify(world, src, dst)
    assert statuses == dict.fromkeys(FILES, "ok") and code == 0
