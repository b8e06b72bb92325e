"""`driveferry ls REMOTE:PATH`: list a folder (or one file) with kind, size and modified time."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from driveferry.commands.common import add_config_arg, open_remotes
from driveferry.errors import NotFoundError, UserError
from driveferry.providers.base import Entry, Kind, Provider
from driveferry.providers.ops import Walked, resolve, walk

EPILOG = """\
examples:
  driveferry ls gdrive:Backup/Videos
  driveferry ls -R --json onedrive:/Documents > listing.jsonl
  driveferry ls ./photos

Paths are shown relative to the listed folder. Without -R one folder is listed, sorted by name;
with -R the tree is streamed depth-first as it is read (not sorted)."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ls", help="list a folder on a remote or a local path", description=__doc__,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="REMOTE:PATH", help="what to list, e.g. gdrive:Backup (a plain path is local)")
    p.add_argument("-R", "--recursive", action="store_true", help="list everything below, depth-first")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    add_config_arg(p)
    p.set_defaults(func=run)


def open_target(spec: str, config_path: str | None) -> tuple[Provider, Entry]:
    """The provider and entry a spec names. Raises UserError when the path does not exist."""
    provider, path = open_remotes(config_path).open(spec)
    try:
        return provider, resolve(provider, path)
    except NotFoundError:
        raise UserError(f"{spec}: no such file or folder") from None


def to_json(entry: Entry, rel_path: str) -> dict[str, Any]:
    return {"path": rel_path, "name": entry.name, "kind": entry.kind.value, "size": entry.size,
            "modified": entry.modified.isoformat() if entry.modified else None, "id": entry.id,
            "mime_type": entry.mime_type, "hashes": {k.value: v for k, v in entry.hashes.items()}}


def format_line(entry: Entry, rel_path: str) -> str:
    size = "-" if entry.size is None else str(entry.size)
    when = entry.modified.strftime("%Y-%m-%d %H:%M:%S") if entry.modified else "-"
    name = rel_path + ("/" if entry.kind is Kind.FOLDER else "")
    return f"{entry.kind.value:<10} {size:>14}  {when}  {name}"


def run(args: argparse.Namespace) -> int:
    provider, target = open_target(args.target, args.config)
    items: Any
    if target.kind is not Kind.FOLDER:
        items = [Walked(target, target.name, 0)]
    elif args.recursive:
        items = walk(provider, target)
    else:
        items = (Walked(e, e.name, 1) for e in sorted(provider.list(target), key=lambda e: e.name))
    out = sys.stdout
    for item in items:
        if args.json:
            out.write(json.dumps(to_json(item.entry, item.rel_path)) + "\n")
        else:
            out.write(format_line(item.entry, item.rel_path) + "\n")
    out.flush()
    return 0
