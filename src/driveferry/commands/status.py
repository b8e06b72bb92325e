"""`driveferry status --journal J`: a migration's progress, read from its journal (safe while it runs).

The journal is opened read-only: status never writes to it. Totals count the whole migration across
runs, resumes, take-overs and workers; each run's own share is listed beside them. `--serve` serves
the same figures as a live web page (loopback only unless told otherwise).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from driveferry.errors import UserError
from driveferry.units import format_size

EPILOG = """\
examples:
  driveferry status --journal driveferry-journal.sqlite3
  driveferry status --journal postgresql://relay@db/migration --json
  driveferry status --journal j.sqlite3 --failed        # list failed files with their last error
  driveferry status --journal j.sqlite3 --files --filter in_flight
  driveferry status --journal j.sqlite3 --serve         # live page on http://127.0.0.1:8765/
  ssh -L 8765:127.0.0.1:8765 relay-vm                   # then open http://127.0.0.1:8765/ locally

file filters: all, in_flight, pending, waiting_for_quota, failed, unverified, done, skipped, unsupported

exit codes: 0 shown; 2 the journal cannot be opened or a bad argument."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="show a migration's progress from its journal",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--journal", default=None, metavar="PATH|URL",
                   help="SQLite file or postgresql:// URL (default: ./driveferry-journal.sqlite3)")
    p.add_argument("--failed", action="store_true", help="list failed and unsupported items with reasons")
    p.add_argument("--files", action="store_true",
                   help="list files with state, committed offset, attempts and last error (see --filter)")
    p.add_argument("--filter", default="all", metavar="STATE", help="which files --files lists (default all)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="list at most N files per job")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--serve", nargs="?", const="127.0.0.1:8765", default=None, metavar="[HOST:]PORT",
                   help="serve a live read-only status page (default 127.0.0.1:8765; port 0 picks one)")
    p.add_argument("--allow-remote", action="store_true",
                   help="with --serve PORT: listen on all interfaces, not only loopback")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from driveferry.migrate.settings import DEFAULT_JOURNAL
    from driveferry.statuspage.readonly import open_read_only
    from driveferry.statuspage.snapshot import FILTERS
    if args.filter not in FILTERS:
        raise UserError(f"--filter must be one of {', '.join(FILTERS)}, not {args.filter!r}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    address = None
    if args.serve is not None:
        from driveferry.statuspage.server import parse_address
        address = parse_address(args.serve, args.allow_remote)  # checked before anything is opened
    elif args.allow_remote:
        raise UserError("--allow-remote goes with --serve")
    journal = open_read_only(args.journal or DEFAULT_JOURNAL)
    try:
        if address is not None:
            from driveferry.statuspage.server import serve
            return serve(journal, *address)
        out = _collect(journal, args)
    finally:
        journal.close()
    backup = _backup_cost(args.journal or DEFAULT_JOURNAL)
    if args.json:
        print(json.dumps({"jobs": out, **({"journal_backup": backup} if backup else {})}, indent=2))
    else:
        _print(out)
        if backup:  # 750 GB: Drive's daily upload cap (providers/gdrive/provider.py, api-notes 5.2)
            print(f"journal backup: {format_size(backup['bytes_24h'])} in {backup['uploads_24h']} uploads in the "
                  f"last 24 h ({100 * backup['bytes_24h'] / 750e9:.3f} % of Drive's 750 GB daily cap)")
    return 0


def _backup_cost(location: str) -> dict[str, int] | None:
    """What --journal-backup uploaded in the last 24 h (logged beside an SQLite journal), or None."""
    from driveferry.journal.backup import daily_cost, sqlite_path
    path = sqlite_path(location)
    cost = daily_cost(path, datetime.now(UTC)) if path is not None else None
    return None if cost is None else {"bytes_24h": cost[0], "uploads_24h": cost[1]}


def _collect(journal: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from driveferry.journal.records import ItemState
    from driveferry.statuspage.snapshot import file_rows, job_snapshot
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for job in journal.jobs():
        entry = job_snapshot(journal, job, now)
        if args.failed:
            entry["problems"] = [{"path": i.path, "state": i.state.value, "reason": i.reason}
                                 for state in (ItemState.FAILED, ItemState.UNSUPPORTED)
                                 for i in journal.iter_items(job.id, state)]
        if args.files:
            entry["files"] = file_rows(journal, job.id, args.filter, quota_stopped=entry["quota_stopped"],
                                       dead_workers=frozenset(entry["dead_workers"]), limit=args.limit)
        out.append(entry)
    return out


def _print(jobs: list[dict[str, Any]]) -> None:
    if not jobs:
        print("the journal holds no migration yet")
    for job in jobs:
        t = job["totals"]
        print(f"{job['job']}")
        eta = "" if t["eta_s"] is None or t["eta_s"] == 0 else f", ETA {_duration(t['eta_s'])}"
        print(f"  {t['files_done']}/{t['files']} files done, {format_size(t['bytes_done'])} of "
              f"{format_size(t['goal_bytes'])} ({t['percent']:.1f}%), "
              f"{format_size(t['rate_bytes_per_s'])}/s{eta}")
        extra = [f"{t[k]} {label}" for k, label in (("files_in_flight", "in flight"), ("files_failed", "failed"),
                                                    ("unverified", "unverified"),
                                                    ("waiting_for_quota", "waiting for quota"),
                                                    ("files_unsupported", "unsupported")) if t[k]]
        if extra:
            print(f"  {', '.join(extra)}")
        for name, s in sorted(job["states"].items()):
            print(f"    {name:<12} {s['items']:>8}  {format_size(s['bytes']):>12}")
        for r in job["runs"]:
            sent = "-" if r["bytes_uploaded"] is None else format_size(r["bytes_uploaded"])
            counts = "" if r["copied"] is None else f", copied {r['copied']}, skipped {r['skipped']}, failed {r['failed']}"
            print(f"  run {r['run'][:8]} ({r['state']}, {r['worker']}): {sent} sent{counts}")
        for w in job["workers"]:
            current = f", on {w['current_item']}" if w["current_item"] else ""
            print(f"  worker {w['worker']} ({w['state']}: {w['why']}): {format_size(w['bytes'])} sent, "
                  f"{format_size(w['rate_bytes_per_s'])}/s{current}")
        for b in job["budget"]:
            cap = f" of {format_size(b['limit_bytes'])}" if b["limit_bytes"] else ""
            print(f"  uploaded as {b['user']} in the last 24 h: {format_size(b['bytes_24h'])}{cap}")
        for p in job.get("problems", []):
            print(f"  {p['state']}: {p['path']}: {p['reason']}")
        for f in job.get("files", []):
            error = f"  {f['error']}" if f["error"] else ""
            print(f"  {f['state']:<17} {f['path']}  {format_size(f['offset'] or 0)}/{format_size(f['size'] or 0)}"
                  f"  attempts {f['attempts']}{error}")


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return (f"{d}d " if d else "") + (f"{h}h " if d or h else "") + f"{m}m {s % 60}s"
