"""doctor's pure checks: mount table parsing, mount kinds by fstype, aria2 settings, journal on FUSE."""

from __future__ import annotations

from pathlib import Path

import pytest

from driveferry.verify.doctor import (
    Mount,
    MountKind,
    check_aria2,
    check_journal_location,
    check_mount,
    mount_of,
    parse_aria2,
    read_mounts,
)

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


# /proc/self/mountinfo (proc(5)): optional fields before " - ", escaped spaces, a mount stacked on another.
# The rclone remote is called "gdrive:" and mounted under /content/drive: neither makes it DriveFS.
MOUNTINFO = """\
27 1 0:31 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
40 27 0:45 / /content/drive rw,nosuid,nodev,relatime shared:20 - fuse.drive drive rw,user_id=0,group_id=0
41 27 0:46 / /content/drive/rc rw,nosuid,nodev,relatime shared:21 - fuse.rclone gdrive: rw,user_id=0
42 27 8:1 / /data rw,relatime shared:2 master:7 - ext4 /dev/sda1 rw
43 27 0:47 / /mnt/my\\040drive rw,nosuid,nodev - fuse.google-drive-ocamlfuse google-drive-ocamlfuse rw
44 27 0:48 / /mnt/ssh rw,nosuid,nodev - fuse.sshfs me@host:/ rw
45 27 0:49 / /mnt/blk rw - fuseblk /dev/sdb1 rw
46 27 0:50 / /mnt/stack rw - ext4 /dev/sdc1 rw
47 27 0:51 / /mnt/stack rw - fuse.rclone emudrive:top rw
"""


@pytest.mark.parametrize(("path", "kind", "fstype"), [
    ("/content/drive/MyDrive/x.iso", MountKind.DRIVEFS, "fuse.drive"),
    ("/content/drive/rc/dl/x.iso", MountKind.RCLONE, "fuse.rclone"),
    ("/data/x", MountKind.LOCAL, "ext4"),
    ("/mnt/my drive/a", MountKind.OCAMLFUSE, "fuse.google-drive-ocamlfuse"),
    ("/mnt/ssh/a", MountKind.OTHER_FUSE, "fuse.sshfs"),
    ("/mnt/blk/a", MountKind.OTHER_FUSE, "fuseblk"),
    ("/mnt/stack/a", MountKind.RCLONE, "fuse.rclone"),  # the later of two mounts on one mountpoint
    ("/etc/passwd", MountKind.LOCAL, "overlay"),
])
def test_mountinfo_kinds_by_fstype(path: str, kind: MountKind, fstype: str) -> None:
    mounts = read_mounts(MOUNTINFO)
    assert len(mounts) == 9
    m = mount_of(Path(path), mounts)
    assert m is not None and m.kind is kind and m.fstype == fstype
    finding = check_mount(Path(path), m)
    assert kind.value in finding.message
    assert finding.level == ("ok" if kind is MountKind.LOCAL else "warn")
    assert ("Colab" in finding.message) == (kind is MountKind.DRIVEFS)


def test_mountinfo_fields() -> None:
    by_point = {m.mountpoint: m for m in read_mounts(MOUNTINFO)}
    rc = by_point["/content/drive/rc"]
    assert (rc.source, rc.device, rc.is_fuse) == ("gdrive:", "0:46", True)
    assert "/mnt/my drive" in by_point and by_point["/data"].device == "8:1"


def test_source_names_do_not_make_a_kind() -> None:
    """Only the fstype names the kind: a remote called gdrive: under /content/drive is still rclone."""
    for m in (Mount("/content/drive", "fuse.rclone", "gdrive:"), Mount("/content/drive", "fuse", "drive"),
              Mount("/x", "ext4", "/dev/drive0")):
        assert m.kind is not MountKind.DRIVEFS
        assert "Google" not in check_mount(Path(m.mountpoint), m).message
    assert Mount("/x", "fuse.drive", "whatever").kind is MountKind.DRIVEFS


@pytest.mark.skipif(not Path("/proc/self/mountinfo").exists(), reason="no /proc/self/mountinfo (not Linux)")
def test_this_machine_mount_table_is_read() -> None:
    mounts = read_mounts()
    root = mount_of(Path("/"), mounts)
    assert mounts and root is not None and root.device  # mountinfo, with major:minor


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
