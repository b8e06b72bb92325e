"""`driveferry status --journal J`: a migration's progress, read from its journal (safe while it runs)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from typing import Any

from driveferry.errors import UserError
from driveferry.units import format_size

EPILOG = """\
examples:
  driveferry status --journal driveferry-journal.sqlite3
  driveferry status --journal postgresql://relay@db/migration --json
  driveferry status --journal j.sqlite3 --failed        # list failed files with their last error

exit codes: 0 shown; 2 the journal cannot be opened."""

STALE_S = 120  # a worker silent for longer is shown as gone


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="show a migration's progress from its journal",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--journal", default=None, metavar="PATH|URL",
                   help="SQLite file or postgresql:// URL (default: ./driveferry-journal.sqlite3)")
    p.add_argument("--failed", action="store_true", help="list failed and unsupported items with reasons")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from driveferry.journal.records import ItemState
    from driveferry.journal.store import Journal
    from driveferry.migrate.settings import DEFAULT_JOURNAL
    location = args.journal or DEFAULT_JOURNAL
    if "://" not in location and not os.path.exists(location):
        raise UserError(f"no journal at {location}; pass --journal with the path 'migrate' used")
    journal = Journal.open(location)
    try:
        jobs = journal.jobs()
        out: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for job in jobs:
            counts = journal.counts(job.id)
            workers = journal.workers(job.id)
            entry: dict[str, Any] = {
                "job": f"{job.source_spec} -> {job.dest_spec}",
                "states": {s.value: {"items": t.items, "bytes": t.size_bytes, "bytes_done": t.bytes_done}
                           for s, t in counts.items() if t.items},
                "workers": [{"worker": w.worker_id, "host": w.host, "pid": w.pid,
                             "alive": (now - w.heartbeat_at).total_seconds() < STALE_S,
                             "current_item": _item_path(journal, w.current_item_id),
                             "bytes": w.bytes_done, "rate_bytes_per_s": round(w.rate_bytes_per_s, 1),
                             "heartbeat": w.heartbeat_at.isoformat()} for w in workers],
            }
            if args.failed:
                entry["problems"] = [{"path": i.path, "state": i.state.value, "reason": i.reason}
                                     for state in (ItemState.FAILED, ItemState.UNSUPPORTED)
                                     for i in journal.iter_items(job.id, state)]
            out.append(entry)
    finally:
        journal.close()
    if args.json:
        print(json.dumps({"jobs": out}, indent=2))
    else:
        _print(out)
    return 0


def _item_path(journal: Any, item_id: int | None) -> str | None:
    if item_id is None:
        return None
    try:
        return str(journal.get_item(item_id).path)
    except Exception:  # the item may have been re-planned away; status must not fail on that
        return None


def _print(jobs: list[dict[str, Any]]) -> None:
    if not jobs:
        print("the journal holds no migration yet")
    for job in jobs:
        states = job["states"]
        total_items = sum(s["items"] for s in states.values())
        total_bytes = sum(s["bytes"] for s in states.values())
        done = states.get("done", {"items": 0, "bytes": 0})
        sent = sum(s["bytes_done"] for k, s in states.items() if k in ("done", "in_progress", "pending"))
        pct = 100.0 * sent / total_bytes if total_bytes else 100.0
        print(f"{job['job']}")
        print(f"  {done['items']}/{total_items} files done, {format_size(sent)} of {format_size(total_bytes)} "
              f"({pct:.1f}%)")
        for name, s in sorted(states.items()):
            print(f"    {name:<12} {s['items']:>8}  {format_size(s['bytes']):>12}")
        for w in job["workers"]:
            state = "active" if w["alive"] else "gone"
            current = f", on {w['current_item']}" if w["current_item"] else ""
            print(f"  worker {w['worker']} ({state}): {format_size(w['bytes'])} sent, "
                  f"{format_size(w['rate_bytes_per_s'])}/s{current}")
        for p in job.get("problems", []):
            print(f"  {p['state']}: {p['path']}: {p['reason']}")
