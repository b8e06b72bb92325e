"""Local scan and hash cache on a real temporary tree: hashes, zero facts, re-hash only what changed."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driveferry.errors import UnsupportedError, UserError
from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.verify import scan as scan_mod
from driveferry.verify.cache import HashCache, default_cache_path
from driveferry.verify.scan import choose_hash, scan

SHA = frozenset({HashType.SHA256})


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.bin").write_bytes(os.urandom(3_000_000))
    (root / "sub" / "b.txt").write_bytes(b"hello\n")
    (root / "sub" / "deeper" / "tail.part").write_bytes(os.urandom(5000) + bytes(200_000))
    (root / "zeros.img").write_bytes(bytes(70_000))
    (root / "empty").write_bytes(b"")
    return root


@pytest.fixture()
def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every file whose bytes the scanner reads."""
    calls: list[str] = []
    real: Callable[..., Any] = scan_mod._hash_file

    def spy(path: str, *args: Any) -> Any:
        calls.append(path)
        return real(path, *args)

    monkeypatch.setattr(scan_mod, "_hash_file", spy)
    return calls


def test_hashes_match_hashlib_and_paths_are_relative(tree: Path) -> None:
    result = scan(tree, {HashType.SHA256, HashType.MD5}, workers=3, block_size=1 << 20)
    paths = [f.path for f in result.files]
    assert paths == sorted(["a.bin", "empty", "sub/b.txt", "sub/deeper/tail.part", "zeros.img"])
    for f in result.files:
        content = (tree / f.path).read_bytes()
        assert f.hashes[HashType.SHA256] == hashlib.sha256(content).hexdigest()
        assert f.hashes[HashType.MD5] == hashlib.md5(content).hexdigest()
        assert f.size == len(content) and f.error is None and not f.cached
    assert result.hashed_files == 5 and result.hashed_bytes == sum(f.size for f in result.files)


def test_quickxor_in_blocks_matches_one_shot(tree: Path) -> None:
    by = {f.path: f for f in scan(tree, {HashType.QUICKXOR}, block_size=4096 + 1).files}
    for path, f in by.items():
        assert f.hashes == hash_bytes((tree / path).read_bytes(), [HashType.QUICKXOR])


def test_zero_facts(tree: Path) -> None:
    by = {f.path: f for f in scan(tree, SHA, block_size=64 * 1024).files}
    assert by["sub/deeper/tail.part"].zeros.zero_tail_bytes == 200_000
    assert not by["sub/deeper/tail.part"].zeros.all_zero
    assert by["zeros.img"].zeros.all_zero and by["zeros.img"].zeros.zero_tail_bytes == 70_000
    assert not by["empty"].zeros.all_zero  # an empty file is not "all zero"
    assert by["a.bin"].zeros.zero_tail_bytes < 64  # random bytes: at most a few trailing zeros by chance


def test_zero_tail_across_block_boundaries(tmp_path: Path) -> None:
    # Non-zero byte just before a block boundary, then zeros spanning several blocks and a partial one.
    (tmp_path / "f").write_bytes(b"x" * 4095 + b"\1" + bytes(3 * 4096 + 17))
    (f,) = scan(tmp_path, SHA, block_size=4096).files
    assert f.zeros.zero_tail_bytes == 3 * 4096 + 17


def test_sparse_holes(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    with open(path, "wb") as fh:
        fh.write(b"data")
        fh.truncate(64 << 20)
    (f,) = scan(tmp_path, SHA).files
    if f.zeros.hole_count == 0:
        pytest.skip("this filesystem does not report sparse holes")
    assert f.zeros.hole_bytes >= (60 << 20) and f.zeros.zero_tail_bytes == (64 << 20) - 4


def test_second_run_rehashes_nothing_and_touch_rehashes_one(tree: Path, tmp_path: Path,
                                                             counting: list[str]) -> None:
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        first = scan(tree, SHA, cache=cache)
        assert len(counting) == 5 and first.hashed_files == 5
        counting.clear()
        second = scan(tree, SHA, cache=cache)
        assert counting == [] and second.hashed_files == 0 and second.cached_files == 5
        assert [f.hashes for f in second.files] == [f.hashes for f in first.files]
        assert [f.zeros for f in second.files] == [f.zeros for f in first.files]
        assert all(f.cached for f in second.files)
        st = (tree / "sub" / "b.txt").stat()
        os.utime(tree / "sub" / "b.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        third = scan(tree, SHA, cache=cache)
        assert [Path(p).name for p in counting] == ["b.txt"] and third.hashed_files == 1


def test_same_size_rewrite_is_rehashed_with_new_content(tree: Path, tmp_path: Path) -> None:
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        scan(tree, SHA, cache=cache)
        (tree / "sub" / "b.txt").write_bytes(b"HELLO\n")  # same size: only mtime/ctime tell
        by = {f.path: f for f in scan(tree, SHA, cache=cache).files}
    assert by["sub/b.txt"].hashes[HashType.SHA256] == hashlib.sha256(b"HELLO\n").hexdigest()
    assert not by["sub/b.txt"].cached


def test_cache_persists_and_merges_hash_types(tree: Path, tmp_path: Path, counting: list[str]) -> None:
    db = tmp_path / "c.sqlite3"
    with HashCache(db, racy_window_s=0) as cache:
        scan(tree, {HashType.MD5}, cache=cache)
    with HashCache(db, racy_window_s=0) as cache:
        assert len(cache) == 5
        counting.clear()
        scan(tree, {HashType.MD5}, cache=cache)
        assert counting == []
        scan(tree, {HashType.SHA256}, cache=cache)  # a type not yet stored: read again
        assert len(counting) == 5
        counting.clear()
        both = scan(tree, {HashType.MD5, HashType.SHA256}, cache=cache)
        assert counting == [] and all(len(f.hashes) == 2 for f in both.files)


def test_prune_drops_only_unused_rows(tree: Path, tmp_path: Path) -> None:
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        scan(tree, SHA, cache=cache)
        (tree / "a.bin").unlink()
        time.sleep(0.05)
        scan(tree, SHA, cache=cache)  # uses the four remaining rows
        assert len(cache) == 5
        assert cache.prune(unseen_for_s=0.02) == 1 and len(cache) == 4
        assert scan(tree, SHA, cache=cache).cached_files == 4


def test_cache_of_another_schema_version_is_rebuilt(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE files (junk TEXT)")
    con.execute("PRAGMA user_version=99")
    con.commit()
    con.close()
    with HashCache(db) as cache:
        assert len(cache) == 0


def test_racy_entries_are_not_trusted(tree: Path, tmp_path: Path, counting: list[str]) -> None:
    """With the default window, files written just before they were hashed are hashed again."""
    with HashCache(tmp_path / "c.sqlite3") as cache:
        scan(tree, SHA, cache=cache)
        counting.clear()
        again = scan(tree, SHA, cache=cache)
    assert again.cached_files == 0 and len(counting) == 5


def test_progress_reports_every_byte(tree: Path, tmp_path: Path) -> None:
    total = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    seen: list[int] = []
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        scan(tree, SHA, cache=cache, progress=seen.append, block_size=1 << 20)
        assert sum(seen) == total
        seen.clear()
        scan(tree, SHA, cache=cache, progress=seen.append)  # cached files count as done too
        assert sum(seen) == total


def test_changed_during_scan_is_flagged_and_not_cached(tree: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = scan_mod._hash_file

    def writer_races(path: str, *args: Any) -> Any:
        if path.endswith("b.txt"):
            Path(path).write_bytes(b"changed while hashing\n")
        return real(path, *args)

    monkeypatch.setattr(scan_mod, "_hash_file", writer_races)  # a writer that rewrites it at every read
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        by = {f.path: f for f in scan(tree, SHA, cache=cache, settle_s=0.01).files}
        assert by["sub/b.txt"].changed_during_scan
        monkeypatch.setattr(scan_mod, "_hash_file", real)
        assert not {f.path: f for f in scan(tree, SHA, cache=cache).files}["sub/b.txt"].cached


def test_unreadable_file_is_reported_not_skipped(tree: Path) -> None:
    result = scan(tree, SHA, files=["a.bin", "gone.bin"])
    by = {f.path: f for f in result.files}
    assert by["gone.bin"].error and by["gone.bin"].hashes == {}
    assert by["a.bin"].error is None


def test_unlistable_folder_is_reported_and_the_walk_goes_on(tree: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.scandir

    def scandir(path: Any) -> Any:
        if str(path).endswith("deeper"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(scan_mod.os, "scandir", scandir)
    result = scan(tree, SHA)
    assert result.unlisted == (("sub/deeper", "PermissionError: Permission denied"),)
    assert len(result.files) == 4


def test_symlinks_are_not_followed(tree: Path) -> None:
    (tree / "link").symlink_to(tree / "a.bin")
    assert "link" not in {f.path for f in scan(tree, SHA).files}


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        scan(tmp_path / "nope", SHA)


def test_default_cache_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DRIVEFERRY_HASH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / "driveferry" / "hashcache.sqlite3"
    monkeypatch.setenv("DRIVEFERRY_HASH_CACHE", str(tmp_path / "x.db"))
    assert default_cache_path() == tmp_path / "x.db"


DRIVE = {HashType.MD5, HashType.SHA1, HashType.SHA256}


@pytest.mark.parametrize(("speeds", "expected"), [
    ({HashType.SHA256: 1.0, HashType.SHA1: 1.1, HashType.MD5: 0.6}, HashType.SHA256),  # within 25 %
    ({HashType.SHA256: 0.8, HashType.SHA1: 1.0, HashType.MD5: 0.6}, HashType.SHA256),  # SHA-NI under load
    ({HashType.SHA256: 0.7, HashType.SHA1: 1.0, HashType.MD5: 0.6}, HashType.SHA1),
    ({HashType.SHA256: 0.3, HashType.SHA1: 0.9, HashType.MD5: 0.6}, HashType.SHA1),  # no SHA-NI
    ({HashType.SHA256: 0.3, HashType.SHA1: 0.5, HashType.MD5: 0.6}, HashType.MD5),
])
def test_choose_hash_by_speed(speeds: dict[HashType, float], expected: HashType) -> None:
    assert choose_hash(DRIVE, speeds) is expected


def test_choose_hash_by_what_the_remote_reports() -> None:
    assert choose_hash({HashType.QUICKXOR}) is HashType.QUICKXOR
    assert choose_hash({HashType.QUICKXOR, HashType.SHA1}) is HashType.SHA1
    assert choose_hash({HashType.MD5}) is HashType.MD5
    assert choose_hash(DRIVE) in DRIVE  # measured on this CPU, once per process
    with pytest.raises(UnsupportedError):
        choose_hash(set())


def test_the_hash_chosen_for_a_remote_is_kept_by_the_cache(tmp_path: Path) -> None:
    """The first run's choice answers every later run against a remote reporting the same hash types,
    whatever the speeds measured then; another set of hash types is chosen afresh."""
    db = tmp_path / "c.db"
    asked: list[frozenset[HashType]] = []

    def choose(picked: HashType) -> Callable[[Any], HashType]:
        def pick(remote: Any) -> HashType:
            asked.append(frozenset(remote))
            return picked
        return pick

    with HashCache(db) as cache:
        assert cache.choice(DRIVE, choose(HashType.SHA1)) is HashType.SHA1
        with sqlite3.connect(db, timeout=0) as other:  # committed at once: seen, and no write lock held
            assert other.execute("SELECT remote, kind FROM choices").fetchall() == [("md5,sha1,sha256", "sha1")]
            other.execute("CREATE TABLE probe (x)")
    with HashCache(db) as cache:  # a new run, whose timing would pick SHA-256
        assert cache.choice(DRIVE, choose(HashType.SHA256)) is HashType.SHA1
        assert cache.choice({HashType.MD5, HashType.SHA256}, choose(HashType.SHA256)) is HashType.SHA256
    assert asked == [frozenset(DRIVE), frozenset({HashType.MD5, HashType.SHA256})]
    with sqlite3.connect(db) as raw:  # a kind this version does not know (or no longer reported): chosen again
        raw.execute("UPDATE choices SET kind='blake3' WHERE remote='md5,sha1,sha256'")
    with HashCache(db) as cache:
        assert cache.choice(DRIVE, choose(HashType.MD5)) is HashType.MD5
        assert cache.choice(DRIVE, choose(HashType.SHA256)) is HashType.MD5
