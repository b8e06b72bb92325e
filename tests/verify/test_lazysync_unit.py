"""The lazy-sync simulator's rules one at a time, and the aria2-like writer."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from driveferry.emulator.aria2sim import Aria2Writer
from driveferry.emulator.drive.models import DriveModel
from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.lazysync import LazySync
from driveferry.emulator.server import Emulator

NOW = 1_700_000_000.0


@pytest.fixture()
def model(emulator: Emulator) -> DriveModel:
    return drive_model(emulator)


def _only(model: DriveModel, path: str) -> tuple[str, int | None, str | None]:
    [f] = model.find_by_path(path)
    return f.id, f.size, f.md5


def _write(path: Path, data: bytes, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def test_preallocated_file_is_uploaded_as_zeros_and_same_size_rewrite_ignored(model: DriveModel, tmp_path: Path) -> None:
    root = f"ls-{tmp_path.name}"
    sync = LazySync(tmp_path / "m", model, root)
    content = os.urandom(20_000)
    w = Aria2Writer(tmp_path / "m" / "sub" / "x.bin", content, piece_bytes=4096, seed=1)
    w.preallocate()
    os.utime(w.path, (NOW - 100, NOW - 100))
    assert sync.sync_once(NOW).uploaded == ["sub/x.bin"]
    fid, size, md5 = _only(model, f"{root}/sub/x.bin")
    assert size == 20_000 and md5 == hashlib.md5(bytes(20_000)).hexdigest()
    w.finish()
    assert w.path.read_bytes() == content
    report = sync.sync_once(NOW + 10)
    assert report.ignored == ["sub/x.bin"] and not report.uploaded and not report.reuploaded
    assert _only(model, f"{root}/sub/x.bin") == (fid, 20_000, md5)  # still zeros on "Drive"
    assert sync.sync_once(NOW + 20).ignored == []  # reported once per change


def test_size_change_is_uploaded_again_as_a_new_revision(model: DriveModel, tmp_path: Path) -> None:
    root = f"ls-{tmp_path.name}"
    sync = LazySync(tmp_path / "m", model, root)
    _write(tmp_path / "m" / "a.txt", b"short", NOW - 50)
    sync.sync_once(NOW)
    fid, _, _ = _only(model, f"{root}/a.txt")
    _write(tmp_path / "m" / "a.txt", b"longer content", NOW - 10)
    assert sync.sync_once(NOW).reuploaded == ["a.txt"]
    assert _only(model, f"{root}/a.txt") == (fid, 14, hashlib.md5(b"longer content").hexdigest())
    [f] = model.find_by_path(f"{root}/a.txt")
    assert f.modified.startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(NOW - 10)))


def test_delay_defers_recent_files(model: DriveModel, tmp_path: Path) -> None:
    root = f"ls-{tmp_path.name}"
    sync = LazySync(tmp_path / "m", model, root, delay_s=60)
    _write(tmp_path / "m" / "new.bin", b"x" * 10, NOW - 5)
    assert sync.sync_once(NOW).deferred == ["new.bin"]
    assert model.find_by_path(f"{root}/new.bin") == []
    assert sync.sync_once(NOW + 60).uploaded == ["new.bin"]
    assert sync.remote_id("new.bin") == model.find_by_path(f"{root}/new.bin")[0].id


def test_quota_leaves_zero_byte_files_and_never_retries(model: DriveModel, tmp_path: Path) -> None:
    root = f"ls-{tmp_path.name}"
    sync = LazySync(tmp_path / "m", model, root, quota_bytes=1500)
    _write(tmp_path / "m" / "a.bin", b"a" * 1000, NOW - 50)
    _write(tmp_path / "m" / "b.bin", b"b" * 1000, NOW - 50)
    report = sync.sync_once(NOW)
    assert report.uploaded == ["a.bin", "b.bin"] and report.quota_failed == ["b.bin"]
    assert _only(model, f"{root}/a.bin")[1] == 1000 and _only(model, f"{root}/b.bin")[1] == 0
    sync.quota_bytes = None
    assert sync.sync_once(NOW + 100).uploaded == [] and _only(model, f"{root}/b.bin")[1] == 0


def test_polling_thread_syncs_with_the_wall_clock(model: DriveModel, tmp_path: Path) -> None:
    root = f"ls-{tmp_path.name}"
    sync = LazySync(tmp_path / "m", model, root).start(interval_s=0.05)
    try:
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "t.txt").write_bytes(b"polled")
        deadline = time.monotonic() + 10
        while not model.find_by_path(f"{root}/t.txt") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sync.stop()
    assert _only(model, f"{root}/t.txt")[1] == 6


@pytest.mark.parametrize("allocation", ["prealloc", "falloc", "trunc", "none"])
def test_aria2_writer_fills_out_of_order_and_can_stop(tmp_path: Path, allocation: str) -> None:
    content = os.urandom(10 * 4096 + 123)
    w = Aria2Writer(tmp_path / "f.bin", content, piece_bytes=4096, allocation=allocation, seed=7)
    w.preallocate()
    assert w.path.stat().st_size == (0 if allocation == "none" else len(content))
    assert w.write_pieces(3) == 3 and not w.done
    data = w.path.read_bytes()
    if allocation != "none":
        assert len(data) == len(content) and w.written != sorted(w.written)  # out of order
        for i in range(11):  # written pieces hold the content, the rest are still zeros
            piece = slice(i * 4096, (i + 1) * 4096)
            assert data[piece] == (content[piece] if i in w.written else bytes(len(content[piece])))
    else:
        assert w.written == [0, 1, 2] and data == content[:3 * 4096]
    w.finish()
    assert w.done and w.path.read_bytes() == content
    with pytest.raises(ValueError):
        Aria2Writer(tmp_path / "g", b"", allocation="bogus")
