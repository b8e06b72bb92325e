"""doctor's pure checks: mount table parsing, FUSE detection, aria2 settings, journal on FUSE."""

from __future__ import annotations

from pathlib import Path

from driveferry.verify.doctor import check_aria2, check_journal_location, mount_of, parse_aria2, read_mounts

MOUNTS = """\
overlay / overlay rw 0 0
drive /content/drive fuse.drive rw,nosuid 0 0
/dev/sda1 /data ext4 rw 0 0
gdrive: /mnt/my\\040drive fuse.rclone rw 0 0
"""


def test_mounts_and_fuse_detection() -> None:
    mounts = read_mounts(MOUNTS)
    assert len(mounts) == 4
    m = mount_of(Path("/content/drive/MyDrive/x.bin"), mounts)
    assert m is not None and m.mountpoint == "/content/drive" and m.is_fuse
    d = mount_of(Path("/data/x"), mounts)
    assert d is not None and d.fstype == "ext4" and not d.is_fuse
    spaced = mount_of(Path("/mnt/my drive/a"), mounts)
    assert spaced is not None and spaced.fstype == "fuse.rclone"


def test_aria2_conf_and_command_line() -> None:
    assert parse_aria2("dir=/x\nfile-allocation = falloc # comment\n")["file-allocation"] == "falloc"
    cmd = parse_aria2("aria2c -x 16 --file-allocation none --continue=true http://e/x")
    assert cmd["file-allocation"] == "none" and cmd["continue"] == "true"
    bad = list(check_aria2({}, on_fuse=True))
    assert bad[0].level == "error" and "prealloc" in bad[0].message and "file-allocation=none" in bad[0].fix
    assert [f.level for f in check_aria2({"file-allocation": "none"}, on_fuse=True)] == ["ok"]
    assert [f.level for f in check_aria2({"file-allocation": "trunc"}, on_fuse=False)] == ["warn"]


def test_journal_on_fuse_warns(tmp_path: Path) -> None:
    mounts = read_mounts(MOUNTS.replace("/content/drive", str(tmp_path)))
    found = list(check_journal_location(str(tmp_path / "j.sqlite3"), mounts))
    assert len(found) == 1 and found[0].topic == "journal"
    assert list(check_journal_location("postgresql://h/db", mounts)) == []
