"""`driveferry hashsum TYPE REMOTE:PATH`: `<hex>  <path>` lines, as md5sum/sha256sum print them.

A remote's own reported hash is used when it has one; local files are hashed by reading them. Items
without that hash are not guessed at: they are named on stderr as UNVERIFIABLE (exit 1), unless
--download computes the hash from the bytes.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from driveferry.commands.common import add_config_arg
from driveferry.commands.ls import open_target
from driveferry.errors import UserError
from driveferry.integrity.hashes import HashType, MultiHasher
from driveferry.providers.base import Entry, Kind, Provider
from driveferry.providers.ops import Walked, walk

EPILOG = """\
examples:
  driveferry hashsum md5 ./photos > photos.md5 && (cd photos && md5sum -c ../photos.md5)
  driveferry hashsum quickxor onedrive:/Documents
  driveferry hashsum sha256 gdrive:Backup --download

Paths are relative to the folder given (for one file: its name), so `md5sum -c` runs inside that
folder. Types: md5, sha1, sha256, quickxor, xxh3_128.
exit codes: 0 every file hashed; 1 some files UNVERIFIABLE (listed on stderr); 2 bad input."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("hashsum", help="print content hashes of files (md5sum-compatible)", description=__doc__,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hash_type", metavar="TYPE", help="md5, sha1, sha256, quickxor or xxh3_128")
    p.add_argument("target", metavar="REMOTE:PATH", help="a file or folder, e.g. gdrive:Backup (plain path: local)")
    p.add_argument("--download", action="store_true",
                   help="compute hashes the remote does not report by downloading the bytes")
    add_config_arg(p)
    p.set_defaults(func=run)


def _escape(path: str) -> tuple[str, str]:
    """md5sum's escaping: a leading backslash on the line when the name holds '\\' or a newline."""
    if "\\" in path or "\n" in path:
        return "\\", path.replace("\\", "\\\\").replace("\n", "\\n")
    return "", path


def digest_of(provider: Provider, entry: Entry, kind: HashType, download: bool) -> str | None:
    """The hash as reported, else computed locally (content hasher, or --download), else None."""
    reported = entry.hashes.get(kind)
    if reported:
        return reported
    hasher = provider.features.content_hasher
    if hasher is not None:
        return hasher.hash_file(entry, [kind]).get(kind)
    if download and kind in HashType:
        m = MultiHasher([kind])
        for block in provider.open_range(entry, 0, entry.size):
            m.update(block)
        return m.hexdigests()[kind]
    return None


def run(args: argparse.Namespace) -> int:
    try:
        kind = HashType.parse(args.hash_type)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    provider, target = open_target(args.target, args.config)
    items = walk(provider, target, include_folders=False) if target.kind is Kind.FOLDER \
        else iter([Walked(target, target.name, 0)])
    unverifiable = 0
    for item in items:
        entry = item.entry
        digest = digest_of(provider, entry, kind, args.download) if entry.kind is Kind.FILE else None
        if digest is None:
            unverifiable += 1
            why = "no bytes" if entry.kind is not Kind.FILE else f"no {kind.value} reported"
            print(f"UNVERIFIABLE  {item.rel_path}  ({why})", file=sys.stderr)
            continue
        mark, shown = _escape(item.rel_path)
        sys.stdout.write(f"{mark}{digest}  {shown}\n")
    sys.stdout.flush()
    return 1 if unverifiable else 0
