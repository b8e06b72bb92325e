"""`driveferry doctor DIR`: is DIR a FUSE mount, which files look unfinished, which aria2 settings bite.

Reads only: nothing is written or changed. Checks, each printed as one line:
  mount    which mount holds DIR, by its fstype: rclone mount, Colab's DriveFS, google-drive-ocamlfuse,
           another FUSE filesystem (each a warning: it uploads on rules of its own) or local disk
  files    files under DIR whose zero tail or sparse holes reach --min-zero-tail (unfinished downloads)
  aria2    with --aria2: the file-allocation setting of an aria2.conf or an aria2c command line
  journal  with --journal: whether the SQLite journal would sit on a FUSE mount
and then the aria2 settings that are safe with a FUSE-synced Drive.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from driveferry.errors import UserError
from driveferry.integrity.zeros import scan_zeros
from driveferry.units import format_size, parse_size
from driveferry.verify.doctor import (
    Finding,
    check_aria2,
    check_journal_location,
    check_mount,
    mount_of,
    parse_aria2,
    read_mounts,
)
from driveferry.verify.scan import iter_tree

EPILOG = """\
examples:
  driveferry doctor /content/drive/MyDrive/downloads
  driveferry doctor /content/downloads --aria2 ~/.aria2/aria2.conf --journal /content/j.sqlite3
  driveferry doctor . --aria2 "aria2c -x16 --file-allocation=falloc URL"

exit codes: 0 nothing found; 1 problems found (a warning or an error line); 2 bad input."""

SAFE_SETTINGS = """\
safe aria2 settings for a FUSE-synced Drive (aria2.conf):
  file-allocation=none      # no full-size file of zeros for the sync to upload early
  continue=true             # resume partial downloads instead of starting over
  dir=/content/downloads    # download to local disk, then `driveferry migrate` or `verify --fix` it up"""

_MARK = {"ok": "ok   ", "warn": "WARN ", "error": "ERROR"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check a download folder: FUSE mount, unfinished files, aria2 settings",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", metavar="DIR", help="the folder to check (e.g. the FUSE-mounted Drive folder)")
    p.add_argument("--aria2", metavar="CONF_OR_CMDLINE", help="an aria2.conf path or an aria2c command line")
    p.add_argument("--journal", metavar="PATH", help="where the migrate journal will live")
    p.add_argument("--min-zero-tail", default="64K", metavar="SIZE",
                   help="report zero tails and holes from this size on (default 64K)")
    p.set_defaults(func=run)


def _aria2_text(value: str) -> str:
    path = Path(value).expanduser()
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UserError(f"--aria2 {value}: cannot read: {exc.strerror}") from None
    if "=" not in value and "aria2c" not in value and not value.lstrip().startswith("--"):
        raise UserError(f"--aria2 {value}: neither a readable file nor an aria2c command line")
    return value


def unfinished_files(root: Path, min_bytes: int) -> Iterator[Finding]:
    """A finding per file whose zero tail or holes reach `min_bytes` (and per unreadable file/folder)."""
    errors: list[tuple[str, str]] = []
    for rel, entry in iter_tree(root, errors):
        try:
            rep = scan_zeros(entry.path)
        except OSError as exc:
            yield Finding("warn", "files", f"{rel}: cannot read ({exc.strerror})")
            continue
        hole_bytes = sum(end - start for start, end in rep.holes)
        if rep.all_zero:
            yield Finding("error", "files", f"{rel}: all {format_size(rep.size)} are zero bytes",
                          "download it again; never let a sync upload it")
        elif rep.zero_tail_bytes >= min_bytes:
            yield Finding("warn", "files", f"{rel}: ends in {format_size(rep.zero_tail_bytes)} of zeros "
                          f"(of {format_size(rep.size)})", "resume or re-download it, then verify")
        elif hole_bytes >= min_bytes:
            yield Finding("warn", "files", f"{rel}: {format_size(hole_bytes)} of sparse holes",
                          "resume the download unless the file is sparse by design")
    for rel, why in errors:
        yield Finding("warn", "files", f"{rel}/: cannot list ({why})")


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.is_dir():
        raise UserError(f"{args.dir}: no such directory")
    try:
        min_bytes = max(1, parse_size(args.min_zero_tail))
    except ValueError as exc:
        raise UserError(f"--min-zero-tail: {exc}") from None
    aria2 = parse_aria2(_aria2_text(args.aria2)) if args.aria2 else None
    mounts = read_mounts()
    mount = mount_of(root, mounts)
    findings = [check_mount(root, mount)]
    scanned = list(unfinished_files(root, min_bytes))
    findings.extend(scanned or [Finding("ok", "files", f"no file with a zero tail or holes of {format_size(min_bytes)}+")])
    if aria2 is not None:
        findings.extend(check_aria2(aria2, on_fuse=mount is not None and mount.is_fuse))
    if args.journal:
        findings.extend(list(check_journal_location(args.journal, mounts))
                        or [Finding("ok", "journal", f"{args.journal} is not on a FUSE mount")])
    for f in findings:
        print(f"{_MARK.get(f.level, f.level)} {f.topic:<8} {f.message}")
        if f.fix and f.level != "ok":
            print(f"{'':5} {'':<8} fix: {f.fix}")
    print()
    print(SAFE_SETTINGS)
    sys.stdout.flush()
    return 1 if any(f.level in ("warn", "error") for f in findings) else 0

