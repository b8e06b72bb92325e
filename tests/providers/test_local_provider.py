"""LocalProvider specifics the contract suite cannot see: root confinement, symlinks, temp files,
no preallocation, properties as xattrs, modified times, tokens from another root."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from driveferry.errors import (
    AlreadyExistsError,
    IntegrityError,
    PermanentError,
    PermissionDeniedError,
    UnsupportedError,
    UploadSessionLostError,
    UserError,
)
from driveferry.integrity import provenance
from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.providers.base import ContentHasher, Kind, UploadMeta
from driveferry.providers.local import PARTIAL_MARK, LocalProvider
from driveferry.providers.ops import DirCache, ensure_dirs, read_bytes, upload_bytes, walk


@pytest.fixture()
def lp(tmp_path: Path) -> LocalProvider:
    (tmp_path / "root").mkdir()
    return LocalProvider(tmp_path / "root")


def test_paths_cannot_escape_the_root(lp: LocalProvider, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s")
    with pytest.raises(UserError):
        lp.stat("../secret.txt")
    with pytest.raises(UserError):
        lp.stat("a/../../secret.txt")
    assert lp.stat("/").kind is Kind.FOLDER  # a leading slash is the provider root, not the filesystem's
    os.symlink(tmp_path, lp.root_path / "out")
    os.symlink(tmp_path / "secret.txt", lp.root_path / "leak")
    assert lp.stat("out").kind is Kind.SHORTCUT and lp.stat("leak").kind is Kind.SHORTCUT
    with pytest.raises(PermissionDeniedError):
        lp.stat("out/secret.txt")
    with pytest.raises(PermissionDeniedError):
        list(lp.open_range(replace(lp.stat("leak"), kind=Kind.FILE)))
    with pytest.raises(UnsupportedError):
        list(lp.open_range(lp.stat("leak")))
    with pytest.raises(PermissionDeniedError):
        lp.begin_upload(replace(lp.stat("out"), kind=Kind.FOLDER), "x", 1, UploadMeta())
    kinds = {e.name: e.kind for e in lp.list(lp.root())}
    assert kinds == {"out": Kind.SHORTCUT, "leak": Kind.SHORTCUT}


def test_symlink_inside_the_root_is_followed(lp: LocalProvider) -> None:
    (lp.root_path / "real.txt").write_bytes(b"data")
    os.symlink("real.txt", lp.root_path / "alias.txt")
    e = lp.stat("alias.txt")
    assert e.kind is Kind.FILE and read_bytes(lp, e) == b"data"


def test_upload_writes_sequentially_to_a_hidden_temp_file(lp: LocalProvider) -> None:
    size = 1 << 20
    s = lp.begin_upload(lp.root(), "v.bin", size, UploadMeta())
    s.send(0, b"a" * 1000, False)
    temps = [p for p in lp.root_path.iterdir() if PARTIAL_MARK in p.name]
    assert len(temps) == 1 and temps[0].name.startswith(".v.bin")
    st = temps[0].stat()
    assert st.st_size == 1000 and st.st_blocks * 512 < size // 2  # no preallocation to the final size
    assert list(lp.list(lp.root())) == []  # temp files are hidden
    token = json.loads(s.token)
    assert token["size"] == size and token["final"] == "v.bin" and token["root"] == str(lp.root_path)
    with pytest.raises(PermanentError):
        s.send(2000, b"b" * 1000, False)  # a gap
    with pytest.raises(PermanentError):
        s.send(1000, b"b" * 1000, True)  # ends before the declared size
    done = s.send(1000, b"b" * (size - 1000), True)
    expected = hash_bytes(b"a" * 1000 + b"b" * (size - 1000), [HashType.MD5])
    assert done is not None and done.hashes[HashType.MD5] == expected[HashType.MD5]
    assert [p.name for p in lp.root_path.iterdir()] == ["v.bin"]
    assert s.committed() == size and s.send(size, b"", True) is not None  # finished: asking again is fine


def test_resume_rebuilds_hashes_from_the_temp_file(lp: LocalProvider) -> None:
    data = os.urandom(10_000)
    s = lp.begin_upload(lp.root(), "r.bin", len(data), UploadMeta())
    s.send(0, data[:4000], False)
    again = lp.resume_upload(s.token)
    assert again.committed() == 4000
    done = again.send(3000, data[3000:], True)  # overlaps what is held: skipped, not rewritten
    assert done is not None and done.hashes == hash_bytes(data, [HashType.MD5, HashType.SHA256])
    with pytest.raises(UploadSessionLostError):
        lp.resume_upload(json.dumps({**json.loads(s.token), "tmp": ".gone" + PARTIAL_MARK + "x",
                                     "final": "never"}))


def test_tokens_of_other_roots_or_escaping_paths_are_refused(lp: LocalProvider, tmp_path: Path) -> None:
    s = lp.begin_upload(lp.root(), "t.bin", 10, UploadMeta())
    (tmp_path / "other").mkdir()
    with pytest.raises(PermanentError):
        LocalProvider(tmp_path / "other").resume_upload(s.token)
    bad = {**json.loads(s.token), "final": "../escape"}
    with pytest.raises((PermanentError, UserError)):
        lp.resume_upload(json.dumps(bad))
    with pytest.raises(PermanentError):
        lp.resume_upload("not json")


def test_no_clobber_unless_replace(lp: LocalProvider) -> None:
    upload_bytes(lp, lp.root(), "same.txt", b"one")
    with pytest.raises(AlreadyExistsError):
        upload_bytes(lp, lp.root(), "same.txt", b"two")
    upload_bytes(lp, lp.root(), "same.txt", b"two", meta=UploadMeta(replace=True))
    assert (lp.root_path / "same.txt").read_bytes() == b"two"
    s = lp.begin_upload(lp.root(), "race.txt", 1, UploadMeta())
    (lp.root_path / "race.txt").write_bytes(b"someone else")
    with pytest.raises(AlreadyExistsError):
        s.send(0, b"x", True)
    assert (lp.root_path / "race.txt").read_bytes() == b"someone else"


def test_promised_hashes_are_checked_before_the_rename(lp: LocalProvider) -> None:
    meta = UploadMeta(properties={provenance.MD5: "0" * 32})
    s = lp.begin_upload(lp.root(), "bad.bin", 3, meta)
    with pytest.raises(IntegrityError):
        s.send(0, b"abc", True)
    assert list(lp.root_path.iterdir()) == []


def test_properties_modified_time_and_content_hasher(lp: LocalProvider) -> None:
    when = datetime(2021, 5, 4, 3, 2, 1, tzinfo=UTC)
    props = {provenance.SRC_ID: "src-1", provenance.RUN: "run"}
    e = upload_bytes(lp, lp.root(), "p.txt", b"hello", meta=UploadMeta(modified=when, properties=props))
    assert e.modified == when
    assert isinstance(lp.features.content_hasher, ContentHasher)
    assert lp.features.content_hasher.hash_file(e, HashType) == hash_bytes(b"hello", HashType)
    assert lp.stat("p.txt").hashes == {}  # stat stays cheap
    if lp.features.properties is None:
        pytest.skip("this filesystem has no user xattrs")
    assert dict(lp.stat("p.txt").properties) == props
    e = lp.features.properties.set_properties(e, {"df_run": "", "k": "v"})
    assert dict(e.properties) == {provenance.SRC_ID: "src-1", "k": "v"}
    later = datetime(2022, 1, 1, tzinfo=UTC)
    assert lp.set_modified(e, later).modified == later


def test_ops_walk_deep_tree_and_ensure_dirs(lp: LocalProvider) -> None:
    deep = ensure_dirs(lp, "/".join(f"d{i}" for i in range(60)))
    assert deep.path.count("/") == 59
    cache = DirCache(lp)
    assert cache.ensure("x/y").id == cache.ensure("x/y/").id == lp.stat("x/y").id
    upload_bytes(lp, deep, "leaf", b"1")
    walked = [w.rel_path for w in walk(lp, lp.root())]
    assert walked[-1].endswith("d59/leaf") and "x/y" in walked
    (lp.root_path / "file").write_bytes(b"")
    with pytest.raises(AlreadyExistsError):
        ensure_dirs(lp, "file/sub")


def test_special_files_are_skipped_in_listings(lp: LocalProvider) -> None:
    os.mkfifo(lp.root_path / "pipe")
    (lp.root_path / "f").write_bytes(b"1")
    assert [e.name for e in lp.list(lp.root())] == ["f"]
    with pytest.raises(UnsupportedError):
        lp.stat("pipe")
