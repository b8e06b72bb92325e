"""Scan and hash cache against what FUSE mounts report: 64-bit inode numbers, and an fstat that moves while a
file is open (rclone's VFS cache) although nothing writes it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.verify import scan as scan_mod
from driveferry.verify.cache import FileKey, HashCache, ZeroFacts, to_sqlite_int
from driveferry.verify.scan import scan

SHA = frozenset({HashType.SHA256})
BIG_INODES = (2**63, 2**63 + 12345, 2**64 - 1)  # rclone's inode numbers are 64-bit path hashes


def _with_inode(st: os.stat_result, inode: int) -> os.stat_result:
    """`st` with st_ino replaced (the nanosecond fields carried over, as os.stat fills them)."""
    fields = list(st)
    fields[1] = inode
    extra = {name: getattr(st, name) for name in dir(st) if name.startswith("st_") and name.endswith("_ns")}
    return os.stat_result(fields, extra)


def test_to_sqlite_int_is_one_to_one_over_u64() -> None:
    assert [to_sqlite_int(n) for n in (0, 1, 2**63 - 1)] == [0, 1, 2**63 - 1]
    assert [to_sqlite_int(n) for n in BIG_INODES] == [-(2**63), -(2**63) + 12345, -1]
    for bad in (-1, 2**64):
        with pytest.raises(ValueError):
            to_sqlite_int(bad)


@pytest.mark.parametrize("inode", BIG_INODES)
def test_cache_stores_and_finds_inodes_above_2_63(tmp_path: Path, inode: int) -> None:
    key = FileKey(device=2**64 - 7, inode=inode, size=5, mtime_ns=10**18, ctime_ns=10**18)
    other = FileKey(device=2**64 - 7, inode=inode - 2**63, size=5, mtime_ns=10**18, ctime_ns=10**18)
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        cache.put(key, {HashType.SHA256: "aa"}, ZeroFacts(), recorded_ns=2 * 10**18)
        cache.put(other, {HashType.SHA256: "bb"}, ZeroFacts(), recorded_ns=2 * 10**18)
        hit = cache.get(key, SHA)
        assert hit is not None and hit[0] == {HashType.SHA256: "aa"}
        miss = cache.get(FileKey(key.device, key.inode, 6, key.mtime_ns, key.ctime_ns), SHA)
        assert miss is None
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:  # persisted, and distinct from `other`
        assert len(cache) == 2
        again = cache.get(key, SHA)
        assert again is not None and again[0] == {HashType.SHA256: "aa"}
        assert cache.prune(unseen_for_s=3600) == 0


def test_scan_of_a_tree_with_64_bit_inodes_caches_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FUSE mount's inode numbers (here faked above 2**63) are hashed and cached like any others."""
    root = tmp_path / "mnt"
    root.mkdir()
    contents = {f"f{i}.bin": os.urandom(1000 + i) for i in range(3)}
    for name, body in contents.items():
        (root / name).write_bytes(body)
    real_stat = os.stat

    def fuse_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        st = real_stat(path, *args, **kwargs)
        return _with_inode(st, 2**63 + st.st_ino) if str(path).startswith(str(root)) else st

    monkeypatch.setattr(scan_mod.os, "stat", fuse_stat)
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        first = scan(root, SHA, cache=cache)
        second = scan(root, SHA, cache=cache)
        assert len(cache) == 3
    assert [f.hashes[HashType.SHA256] for f in first.files] == [
        hash_bytes(contents[n], [HashType.SHA256])[HashType.SHA256] for n in sorted(contents)]
    assert first.hashed_files == 3 and second.cached_files == 3 and second.hashed_files == 0


def test_version_1_cache_is_kept(tmp_path: Path) -> None:
    """A cache written before the signed encoding (schema 1, same columns) keeps its rows."""
    db = tmp_path / "c.sqlite3"
    with HashCache(db, racy_window_s=0) as cache:
        cache.put(FileKey(1, 42, 5, 10, 10), {HashType.SHA256: "cc"}, ZeroFacts(), recorded_ns=10**18)
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    with HashCache(db, racy_window_s=0) as cache:
        hit = cache.get(FileKey(1, 42, 5, 10, 10), SHA)
        assert hit is not None and hit[0] == {HashType.SHA256: "cc"}
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    con.close()


def test_moving_fstat_of_an_open_file_is_not_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rclone shows a file queued for upload with an mtime that moves under fstat while it is open; stat
    before open and after close agree, so the file is stable and its hashes are cached."""
    root = tmp_path / "mnt"
    root.mkdir()
    body = os.urandom(300_000)
    (root / "queued.bin").write_bytes(body)
    real_fstat = os.fstat
    ticks = iter(range(1, 1000))

    def moving_fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        fields = list(st)
        extra = {"st_mtime_ns": st.st_mtime_ns + next(ticks) * 10**9, "st_ctime_ns": st.st_ctime_ns,
                 "st_atime_ns": st.st_atime_ns}
        return os.stat_result(fields, extra)

    monkeypatch.setattr(scan_mod.os, "fstat", moving_fstat)
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        first = scan(root, SHA, cache=cache, block_size=64 * 1024)
        second = scan(root, SHA, cache=cache)
    (f,) = first.files
    assert not f.changed_during_scan
    assert f.hashes[HashType.SHA256] == hash_bytes(body, [HashType.SHA256])[HashType.SHA256]
    assert second.cached_files == 1


@pytest.mark.parametrize("poisoned_call", [0, 1])
def test_attributes_of_an_open_handle_seen_once_are_not_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  poisoned_call: int) -> None:
    """The kernel keeps a FUSE file's attributes for the mount's attr timeout, so one stat may still show
    what rclone reported while a handle was open: the one before open (0: after someone else's close)
    or the one after our close (1). Looked at again after settling, the file is stable."""
    root = tmp_path / "mnt"
    root.mkdir()
    body = os.urandom(100_000)
    target = root / "queued.bin"
    target.write_bytes(body)
    real_stat = os.stat
    calls = {"n": 0}
    reads: list[str] = []
    real_hash = scan_mod._hash_file

    def flickering_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        st = real_stat(path, *args, **kwargs)
        if str(path) != str(target):
            return st
        calls["n"] += 1
        if calls["n"] - 1 != poisoned_call:
            return st
        return os.stat_result(list(st), {"st_mtime_ns": st.st_mtime_ns + 5 * 10**9, "st_ctime_ns": st.st_ctime_ns,
                                         "st_atime_ns": st.st_atime_ns})

    def spy(path: str, *args: Any) -> Any:
        reads.append(path)
        return real_hash(path, *args)

    monkeypatch.setattr(scan_mod.os, "stat", flickering_stat)
    monkeypatch.setattr(scan_mod, "_hash_file", spy)
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        (f,) = scan(root, SHA, cache=cache, settle_s=0.01).files
        again = scan(root, SHA, cache=cache, settle_s=0.01)
    assert not f.changed_during_scan
    assert f.hashes[HashType.SHA256] == hash_bytes(body, [HashType.SHA256])[HashType.SHA256]
    assert f.mtime.timestamp() == pytest.approx(real_stat(target).st_mtime)
    assert len(reads) == (2 if poisoned_call == 0 else 1)  # a stale "before" needs a second read
    assert again.cached_files == 1


def test_write_between_open_and_close_is_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that rewrites the file (same size) whenever it is read: changed after every look, not cached."""
    root = tmp_path / "mnt"
    root.mkdir()
    target = root / "busy.bin"
    target.write_bytes(os.urandom(200_000))
    real_open = open

    def open_then_rewrite(path: Any, *args: Any, **kwargs: Any) -> Any:
        fh = real_open(path, *args, **kwargs)
        if str(path) == str(target):
            st = os.stat(target)
            with real_open(target, "r+b") as w:
                w.write(os.urandom(200_000))
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 3 * 10**9))
        return fh

    monkeypatch.setattr(scan_mod, "open", open_then_rewrite, raising=False)  # scan's own `open` only
    with HashCache(tmp_path / "c.sqlite3", racy_window_s=0) as cache:
        result = scan(root, SHA, cache=cache, workers=1, settle_s=0.01)
        assert result.files[0].changed_during_scan
        assert len(cache) == 0
