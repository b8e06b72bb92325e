"""`doctor`: is this directory a FUSE mount, which downloader settings will bite, which files look unfinished.

Findings are values (`Finding(level, topic, message, fix)`), so the CLI prints them and tests assert
on them. Nothing here writes anything.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Mount:
    mountpoint: str
    fstype: str
    source: str

    @property
    def is_fuse(self) -> bool:
        return self.fstype.startswith("fuse") or self.fstype == "fuseblk"


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mounts(text: str | None = None) -> list[Mount]:
    """Mounts from /proc/self/mounts (or the given text)."""
    if text is None:
        try:
            text = Path("/proc/self/mounts").read_text()
        except OSError:
            return []
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            mounts.append(Mount(_unescape(parts[1]), parts[2], _unescape(parts[0])))
    return mounts


def mount_of(path: Path, mounts: Iterable[Mount]) -> Mount | None:
    """The mount holding `path` (longest mountpoint prefix)."""
    target = str(path.resolve())
    best: Mount | None = None
    for m in mounts:
        mp = m.mountpoint.rstrip("/") or "/"
        if (target == mp or target.startswith(mp.rstrip("/") + "/") or mp == "/") and (
                best is None or len(mp) > len(best.mountpoint)):
            best = m
    return best


def describe_mount(m: Mount) -> str:
    name = m.fstype
    if "drive" in m.source.lower() or "drivefs" in m.fstype.lower() or m.mountpoint.startswith("/content/drive"):
        name = f"{m.fstype} (Google Drive FUSE, as on Colab)"
    elif "rclone" in m.source.lower() or "rclone" in m.fstype:
        name = f"{m.fstype} (rclone mount)"
    return name


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
