"""`doctor`: which mount holds a directory, which downloader settings will bite, which files look unfinished.

Mount kinds are told apart by the fstype of /proc/self/mountinfo (`MountKind`): rclone, Colab's
DriveFS, google-drive-ocamlfuse, any other FUSE filesystem, local disk. A word in the mount's source
("gdrive:", "drive") names nothing: an rclone remote may be called anything.

Findings are values (`Finding(level, topic, message, fix)`), so the CLI prints them and tests assert
on them. Nothing here writes anything.
"""

from __future__ import annotations

import enum
import os
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SAFE_ARIA2 = {"file-allocation": "none"}
# aria2 settings that matter on a FUSE-synced Drive: preallocation makes the sync upload zeros first.
_ARIA2_ADVICE = {
    "file-allocation": ("none", "preallocation (prealloc/falloc/trunc) creates a full-size file of zeros that "
                        "a FUSE-synced Drive may upload before aria2 fills it"),
}


@dataclass(frozen=True)
class Finding:
    level: str  # "ok" | "warn" | "error"
    topic: str
    message: str
    fix: str = ""


class MountKind(enum.Enum):
    """What sort of filesystem holds a path, told apart by the kernel's fstype, never by the source name."""

    RCLONE = "rclone mount"
    DRIVEFS = "Google DriveFS (Colab)"
    OCAMLFUSE = "google-drive-ocamlfuse"
    OTHER_FUSE = "other FUSE"
    LOCAL = "local disk"


# fstype -> kind. A FUSE filesystem's fstype is "fuse." + the subtype its daemon declares:
#  - rclone: cmd/mount/mount.go passes fuse.Subtype("rclone"), cmd/mount2 sets Name "rclone" (fuse.rclone);
#  - Colab's DriveFS: google.colab.drive.flush_and_unmount() looks for "type fuse.drive" in `mount`'s
#    output (googlecolab/colabtools, google/colab/drive.py);
#  - google-drive-ocamlfuse: libfuse 2 names the subtype after the program (fuse.google-drive-ocamlfuse,
#    the Type= of its systemd mount units).
_FSTYPE_KINDS = {
    "fuse.rclone": MountKind.RCLONE,
    "fuse.drive": MountKind.DRIVEFS,
    "fuse.google-drive-ocamlfuse": MountKind.OCAMLFUSE,
}


@dataclass(frozen=True)
class Mount:
    """One line of the mount table. device: "major:minor" (mountinfo only, else "")."""

    mountpoint: str
    fstype: str
    source: str
    device: str = ""

    @property
    def is_fuse(self) -> bool:
        return self.fstype in ("fuse", "fuseblk") or self.fstype.startswith("fuse.")

    @property
    def kind(self) -> MountKind:
        known = _FSTYPE_KINDS.get(self.fstype)
        if known is not None:
            return known
        return MountKind.OTHER_FUSE if self.is_fuse else MountKind.LOCAL


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Mounts from /proc/self/mountinfo text (proc(5)): "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS
    [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". Malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if "-" not in parts[6:]:
            continue
        sep = parts.index("-", 6)
        if len(parts) < sep + 3:
            continue
        mounts.append(Mount(_unescape(parts[4]), parts[sep + 1], _unescape(parts[sep + 2]), parts[2]))
    return mounts


def parse_mounts(text: str) -> list[Mount]:
    """Mounts from /proc/self/mounts (fstab format: "SOURCE MOUNTPOINT FSTYPE OPTS 0 0")."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            mounts.append(Mount(_unescape(parts[1]), parts[2], _unescape(parts[0])))
    return mounts


def read_mounts(text: str | None = None) -> list[Mount]:
    """The mount table: the given text (mountinfo or mounts format, told apart by its first line), else
    /proc/self/mountinfo, else /proc/self/mounts; [] when neither can be read."""
    if text is not None:
        first = text.split("\n", 1)[0].split()
        return parse_mountinfo(text) if "-" in first[6:] else parse_mounts(text)
    for name, parse in (("/proc/self/mountinfo", parse_mountinfo), ("/proc/self/mounts", parse_mounts)):
        try:
            return parse(Path(name).read_text())
        except OSError:
            continue
    return []


def mount_of(path: Path, mounts: Iterable[Mount]) -> Mount | None:
    """The mount holding `path`: the longest mountpoint that prefixes it, and of mounts stacked on the
    same mountpoint the last in the table (the one on top)."""
    target = str(path.resolve())
    best: Mount | None = None
    for m in mounts:
        mp = m.mountpoint.rstrip("/") or "/"
        if (target == mp or target.startswith(mp.rstrip("/") + "/") or mp == "/") and (
                best is None or len(mp) >= len(best.mountpoint.rstrip("/") or "/")):
            best = m
    return best


def describe_mount(m: Mount) -> str:
    """E.g. "rclone mount (fuse.rclone, emudrive:dl at /mnt/dl)"."""
    return f"{m.kind.value} ({m.fstype}, {m.source} at {m.mountpoint})"


def check_mount(path: Path, m: Mount | None) -> Finding:
    """What the mount holding `path` means for downloads written into it: a warning for every FUSE kind
    (each syncs on rules of its own, and verify must read Drive through the API), ok for local disk."""
    if m is None:
        return Finding("ok", "mount", f"{path}: mount unknown (no /proc/self/mountinfo)")
    where = f"{describe_mount(m)} holds {path}"
    kind = m.kind
    if kind is MountKind.LOCAL:
        return Finding("ok", "mount", f"{path} is not a FUSE mount: {m.kind.value} ({m.fstype} at {m.mountpoint})")
    if kind is MountKind.DRIVEFS:
        # DriveFS uploads in the background from its own cache; flush_and_unmount() "flush[es] any
        # outstanding writes" (google/colab/drive.py).
        return Finding("warn", "mount", f"{where}: it uploads files in the background, possibly while a "
                       "download is still preallocated zeros, and a later same-size rewrite may never reach Drive",
                       "download to local disk and `driveferry migrate`; or call "
                       "google.colab.drive.flush_and_unmount() and then `driveferry verify` against the Drive remote")
    if kind is MountKind.RCLONE:
        # rclone vfs/vfs.md: with a VFS cache, "files are written back to the remote only when they are
        # closed and if they haven't been accessed for --vfs-write-back seconds"; failed uploads are
        # retried, and files not yet uploaded when rclone quits are uploaded by its next run.
        return Finding("warn", "mount", f"{where}: with a VFS cache it uploads a file --vfs-write-back "
                       "(default 5s) after its last close, retrying failures; what the mount shows may not "
                       "be on Drive yet (with --vfs-cache-mode off writes stream to Drive and cannot be retried)",
                       "keep --vfs-cache-mode writes, let its upload queue drain, then `driveferry verify` "
                       "against the remote")
    if kind is MountKind.OCAMLFUSE:
        # "Upload starts only after calling flush(), release() or fsync() on the specific file"
        # (astrada/google-drive-ocamlfuse#261); uploads are asynchronous by default (#291).
        return Finding("warn", "mount", f"{where}: it uploads a file when it is flushed, closed or fsynced, "
                       "in the background; a downloader that flushes a preallocated file uploads its zeros",
                       "download to local disk and `driveferry migrate`, or `driveferry verify` after its "
                       "uploads finish")
    return Finding("warn", "mount", f"{where}: when and what this FUSE filesystem uploads is unknown",
                   "download to local disk, or `driveferry verify` the files against the remote's API")


def parse_aria2(text: str) -> dict[str, str]:
    """Options from an aria2.conf (`key=value` lines) or an aria2c command line (`--key=value`/`--key value`)."""
    opts: dict[str, str] = {}
    if "aria2c" in text or text.strip().startswith("--"):
        tokens = shlex.split(text, comments=True)
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.startswith("--"):
                key, _, value = tok[2:].partition("=")
                if not _ and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                    value = tokens[i + 1]
                    i += 1
                opts[key] = value or "true"
            i += 1
        return opts
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            opts[key.strip()] = value.strip()
    return opts


def check_aria2(opts: dict[str, str], on_fuse: bool) -> Iterator[Finding]:
    alloc = opts.get("file-allocation", "prealloc")  # aria2's default is prealloc
    if alloc != "none":
        level = "error" if on_fuse else "warn"
        yield Finding(level, "aria2", f"file-allocation={alloc}: {_ARIA2_ADVICE['file-allocation'][1]}",
                      "set file-allocation=none (and download to local disk, then `driveferry migrate`)")
    else:
        yield Finding("ok", "aria2", "file-allocation=none: no preallocated zeros")


def check_journal_location(journal: str, mounts: Iterable[Mount]) -> Iterator[Finding]:
    """SQLite locking is not safe on FUSE mounts: warn when the journal file sits on one."""
    if "://" in journal and not journal.startswith("sqlite"):
        return
    path = Path(journal.removeprefix("sqlite:///"))
    m = mount_of(path.parent if path.parent.exists() else Path(os.getcwd()), mounts)
    if m is not None and m.is_fuse:
        yield Finding("warn", "journal", f"the SQLite journal {journal} is on a FUSE mount ({m.fstype}); "
                      "file locking there is not reliable",
                      "keep the journal on local disk and use --journal-backup REMOTE:PATH, or PostgreSQL")
