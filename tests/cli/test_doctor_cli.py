"""`driveferry doctor DIR`: mount line, unfinished (zero-tailed, sparse, all-zero) files, aria2 advice, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from driveferry.commands.doctor import unfinished_files
from driveferry.emulator.aria2sim import Aria2Writer
from driveferry.verify.doctor import Mount, check_mount, mount_of, read_mounts


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driveferry.cli", "doctor", *args], capture_output=True, text=True,
                          timeout=60)


def test_clean_folder_exits_0_and_prints_safe_settings(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(os.urandom(200_000))
    (tmp_path / "short-tail.tar").write_bytes(os.urandom(5000) + bytes(10240))  # tar padding: normal
    proc = _doctor(str(tmp_path), "--aria2", "aria2c --file-allocation=none -x 8 http://example/x")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mount" in proc.stdout and "file-allocation=none" in proc.stdout
    assert "WARN" not in proc.stdout and "ERROR" not in proc.stdout


def test_unfinished_downloads_and_bad_aria2_exit_1(tmp_path: Path) -> None:
    content = os.urandom(256 * 1024)
    stopped = Aria2Writer(tmp_path / "dl" / "stopped.iso", content, piece_bytes=32 * 1024, allocation="prealloc",
                          seed=3)
    stopped.preallocate()
    stopped.write_pieces(2)  # aria2 stopped early: most of the file is still zeros
    Aria2Writer(tmp_path / "dl" / "never.bin", content, allocation="trunc").preallocate()  # sparse, all zero
    (tmp_path / "ok.bin").write_bytes(content)
    conf = tmp_path / "aria2.conf"
    conf.write_text("dir=/content/drive/MyDrive\nfile-allocation=prealloc\n")
    proc = _doctor(str(tmp_path), "--aria2", str(conf), "--journal", str(tmp_path / "j.sqlite3"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "dl/never.bin: all" in out
    assert "file-allocation=prealloc" in out and "file-allocation=none" in out
    assert "ok.bin" not in out.replace("stopped.iso", "")
    found = {f.message.split(":")[0]: f.level for f in unfinished_files(tmp_path, 64 * 1024)}
    assert found.get("dl/never.bin") == "error"
    assert stopped.written == [0, 5]  # seed 3: pieces 6 and 7 (the last 64 KiB) are still zeros
    assert found.get("dl/stopped.iso") == "warn" and "dl/stopped.iso: ends in 64.0 KiB of zeros" in out


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    for args in ([str(tmp_path / "missing")], [str(tmp_path), "--aria2", "no-such-file-and-no-cmdline"],
                 [str(tmp_path), "--min-zero-tail", "lots"]):
        proc = _doctor(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


def test_fuse_mount_is_named_by_fstype() -> None:
    mounts = read_mounts("drive /content/drive fuse.drive rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"
                         "gdrive: /content/rc fuse.rclone rw 0 0\n")
    m = mount_of(Path("/content/drive/MyDrive/dl"), mounts)
    assert m is not None
    f = check_mount(Path("/content/drive/MyDrive/dl"), m)
    assert f.level == "warn" and "Google DriveFS (Colab)" in f.message and "flush_and_unmount" in f.fix
    rc = mount_of(Path("/content/rc/dl"), mounts)
    assert rc is not None
    r = check_mount(Path("/content/rc/dl"), rc)
    assert r.level == "warn" and "rclone mount" in r.message and "Google" not in r.message
    plain = check_mount(Path("/data"), Mount("/", "ext4", "/dev/sda1"))
    assert plain.level == "ok" and "not a FUSE mount" in plain.message and "local disk" in plain.message
