"""`driveferry migrate SRC DST`: verified, resumable copy through this machine (the relay)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driveferry.commands.common import add_config_arg, check_output_path, open_remotes, write_private
from driveferry.commands.progress import DEFAULT_INTERVAL_S, JsonProgress, LineProgress
from driveferry.commands.progress_bars import TerminalProgress
from driveferry.errors import DriveferryError, FailedAfterWritesError, UserError
from driveferry.migrate.hash_set import parse_hashes
from driveferry.migrate.job import PlanProgress, Summary, preflight, run_migration
from driveferry.migrate.settings import DEFAULT_JOURNAL, build_settings, load_job_file
from driveferry.migrate.sharing.run import check_capable, run_sharing, sharing_options
from driveferry.providers.pacing import Pacer, RequestTally, RetryEvent
from driveferry.units import format_size, parse_duration

if TYPE_CHECKING:
    from driveferry.migrate.backup import JournalBackup
    from driveferry.providers.base import Entry

EPILOG = """\
examples:
  driveferry migrate onedrive:/Projects gdrive:Archive/Projects --journal /content/drive/MyDrive/j.sqlite3
  driveferry migrate --job configs/migrate.example.toml --transfers 8
  driveferry migrate onedrive:/ gdrive:Backup --dry-run --include '*.mp4'

Run the same command again after a crash, a kill or a lost VM: every unfinished file continues from
its last committed chunk; finished files are not copied again.

exit codes: 0 all copied or skipped; 1 some files failed (see the summary and --report);
2 bad input, nothing changed; 3 stopped at the daily upload cap or --max-transfer (run again later,
or use --wait-for-quota), or the destination's storage is full ("destination storage full": free
space, then run again); 4 interrupted (run again to resume); 5 failed after the run began changing
things (a provider or journal error mid-run; run the same command again to continue)."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("migrate", help="copy a tree between remotes, verified and resumable",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", help="source, e.g. onedrive:/Projects (a plain path is local)")
    p.add_argument("destination", nargs="?", help="destination folder, e.g. gdrive:Archive/Projects")
    p.add_argument("--job", metavar="FILE", help="job file with a [migrate] table (flags override it)")
    p.add_argument("--journal", metavar="PATH|URL",
                   help=f"SQLite file or postgresql:// URL (default: ./{DEFAULT_JOURNAL})")
    add_config_arg(p)
    p.add_argument("--transfers", type=int, help="files copied at once (default 4)")
    p.add_argument("--checkers", type=int, help="folders listed at once by the first walk (default 8)")
    p.add_argument("--chunk-size", help="upload chunk, a multiple of 1280KiB fits both clouds (default 10MiB)")
    p.add_argument("--include", action="append", metavar="GLOB", help="copy only matching paths (repeatable)")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip matching paths (repeatable)")
    p.add_argument("--min-size", help="skip files smaller than this (e.g. 1M)")
    p.add_argument("--max-size", help="skip files larger than this (e.g. 50G)")
    p.add_argument("--max-transfer", help="stop (exit 3) after uploading this much in this run (e.g. 700G)")
    p.add_argument("--daily-cap", help="destination upload cap per rolling 24 h (default: Drive's 750GB)")
    p.add_argument("--wait-for-quota", action="store_true", default=None,
                   help="at the daily cap, sleep until budget frees up instead of exiting 3")
    p.add_argument("--dry-run", action="store_true", default=None, help="show what would be copied; change nothing")
    p.add_argument("--export", choices=("office", "pdf", "skip"),
                   help="Google Docs/Sheets/Slides: copy their Office export (default), their PDF, or skip "
                        "them (listed as cannot copy)")
    p.add_argument("--versions", type=int, metavar="N",
                   help="also copy up to N previous versions of each file, oldest first, as revisions of its "
                        "copy (kept forever; each counts against the daily upload budget; default 0)")
    p.add_argument("--hashes", metavar="LIST",
                   help="also stream these hashes for every file, e.g. md5,sha1 (default: only what each "
                        "copy's proof needs; see migrate/hash_set.py)")
    p.add_argument("--lease", metavar="DURATION",
                   help="how long a claimed file stays this worker's without renewal (e.g. 30s; default 60s); "
                        "a killed worker's files are continued by another after this")
    p.add_argument("--journal-backup", metavar="REMOTE:PATH",
                   help="upload snapshots of the SQLite journal here; a start without the journal file "
                        "restores the newest one (for relay VMs that can vanish)")
    p.add_argument("--journal-backup-every", metavar="DURATION", default="5m",
                   help="how often to upload a journal snapshot (default 5m; one more at exit)")
    p.add_argument("--report", metavar="FILE", help="write the machine-readable run report (JSON) here")
    p.add_argument("--permissions", choices=("map", "report", "skip"),
                   help="sharing: grant each item's source permissions on its copy as the sharing map says "
                        "(map), only report what map would grant (report, the default), or leave it (skip)")
    p.add_argument("--sharing-map", metavar="CSV", help="source address -> Google account or group, and "
                   "domain rules (see configs/sharing-map.example.csv); needed by --permissions map")
    p.add_argument("--allow-anyone-links", action="store_true",
                   help="with --permissions map: an anonymous link becomes 'anyone with the link' (else reported)")
    p.add_argument("--progress-interval", metavar="DURATION", default=None,
                   help=f"without a terminal (a log file, a notebook, nohup): print a progress line this often "
                        f"(default {DEFAULT_INTERVAL_S:.0f}s; with --json, a progress event)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-q", "--quiet", action="store_true", help="no progress, only errors and the summary line")
    out.add_argument("--json", action="store_true", help="JSON lines of progress events and the summary")
    p.set_defaults(func=run)


class WaitCounter:
    """Waits and seconds waited per remote during this run, from the remotes' pacers (retry layer)."""

    def __init__(self, providers: list[Any], observer: Callable[[RetryEvent], None] | None) -> None:
        self._pacers: dict[str, Pacer] = {}
        for p in providers:
            pacer = getattr(p, "pacer", None)
            if isinstance(pacer, Pacer) and pacer.remote not in self._pacers:
                self._pacers[pacer.remote] = pacer
                if observer is not None:
                    pacer.observers.append(observer)
        self._start = {name: (p.stats.waits, p.stats.waited_s) for name, p in self._pacers.items()}

    def figures(self) -> dict[str, dict[str, float]]:
        """{remote: {"waits": N, "waited_s": S}} since this counter was made."""
        out: dict[str, dict[str, float]] = {}
        for name, p in self._pacers.items():
            waits0, waited0 = self._start[name]
            out[name] = {"waits": p.stats.waits - waits0, "waited_s": round(p.stats.waited_s - waited0, 3)}
        return out


class CallCounter:
    """HTTP requests per remote during this run, from the adapters' request tallies (`request_tally`)."""

    def __init__(self, providers: list[Any]) -> None:
        self._tallies: dict[str, RequestTally] = {}
        for p in providers:
            tally = getattr(p, "request_tally", None)
            if isinstance(tally, RequestTally) and p.name not in self._tallies:
                self._tallies[p.name] = tally
        self._start = {name: t.snapshot() for name, t in self._tallies.items()}

    def figures(self, files: int) -> dict[str, dict[str, Any]]:
        """{remote: {"requests": N, "per_file": N / files, "by_kind": {...}}} since this counter was made;
        `files` is the number of files copied (folders, listings and retries are all in N)."""
        out: dict[str, dict[str, Any]] = {}
        for name, tally in self._tallies.items():
            now, before = tally.snapshot(), self._start[name]
            kinds = {k: v - before.get(k, 0) for k, v in sorted(now.items()) if v - before.get(k, 0)}
            total = sum(kinds.values())
            out[name] = {"requests": total, "per_file": round(total / files, 3) if files else None,
                         "by_kind": kinds}
        return out


def run(args: argparse.Namespace) -> int:
    values: dict[str, Any] = load_job_file(args.job) if args.job else {}
    flags = {"source": args.source, "destination": args.destination, "journal": args.journal,
             "config": args.config, "transfers": args.transfers,
             "checkers": args.checkers, "chunk_size": args.chunk_size,
             "include": args.include, "exclude": args.exclude, "min_size": args.min_size,
             "max_size": args.max_size, "max_transfer": args.max_transfer, "daily_cap": args.daily_cap,
             "wait_for_quota": args.wait_for_quota, "dry_run": args.dry_run, "lease_s": args.lease,
             "export": args.export, "versions": args.versions}
    values.update({k: v for k, v in flags.items() if v is not None})
    job_sharing = {k: values.pop(k, None) for k in ("permissions", "sharing_map", "allow_anyone_links")}
    job_hashes = values.pop("hashes", None)
    settings = build_settings(values, restoring=bool(args.journal_backup))
    sharing = sharing_options(args.permissions or job_sharing["permissions"],
                              args.sharing_map or job_sharing["sharing_map"],
                              args.allow_anyone_links or bool(job_sharing["allow_anyone_links"]))
    interval_s = _interval(args.progress_interval)
    wanted = args.hashes if args.hashes is not None else job_hashes
    hashes = parse_hashes(wanted) if wanted is not None else frozenset()
    if args.report:
        check_output_path(args.report, "--report")  # else it fails after the whole migration
    remotes = open_remotes(settings.config)
    src, src_path = remotes.open(settings.source)
    dst, dst_path = remotes.open(settings.destination)
    if settings.versions and (src.features.versions is None or dst.features.revisions is None):
        lacking = src.name if src.features.versions is None else dst.name
        raise UserError(f"--versions {settings.versions}: {lacking} keeps no file versions driveferry can "
                        f"{'read' if lacking == src.name else 'write'} (a OneDrive or SharePoint source and a "
                        "Google Drive destination can); drop --versions")
    multiple = dst.features.chunk_multiple
    if settings.chunk_size % multiple:
        raise UserError(f"--chunk-size {settings.chunk_size} is not a multiple of {multiple} bytes, which "
                        f"{dst.name} requires; try {max(1, settings.chunk_size // multiple) * multiple}")
    daily_cap = settings.daily_cap if settings.daily_cap is not None else dst.features.daily_upload_cap_bytes
    # bad paths or credentials: exit 2 before a journal is made
    checked: Entry | None = preflight(src, src_path, dst, dst_path)
    check_capable(sharing, src, dst)  # --permissions map with an end that cannot: exit 2 here
    from driveferry.journal.store import Journal
    backup = None if settings.dry_run else _journal_backup(args, settings.journal, remotes)
    if backup is not None:
        backup.restore_if_missing()
    # a dry run writes nothing: it reads an existing journal and never creates one
    exists = "://" in settings.journal or os.path.exists(settings.journal)
    journal = Journal.open(settings.journal) if (exists or not settings.dry_run) else None
    progress = _progress(args, interval_s)
    migration: dict[str, Any] | None = None
    waits = WaitCounter([src, dst], progress.retry if isinstance(progress, JsonProgress) else None)
    calls = CallCounter([src, dst])
    if backup is not None:
        backup.start()
    # What exists now (modules, SQLAlchemy's and the clients' caches, about 80,000 objects) lives as
    # long as the run: out of the collector's sight, each full collection of the transfer's garbage no
    # longer walks it again (perf: the collector was ~4.6 % of a large-file relay's CPU, 3 % without
    # the journal's modules loaded; one full collection of them takes ~50 ms here). They are handed
    # back to the collector when the run ends, for a caller that goes on in the same process (tests).
    gc.freeze()
    try:
        while True:
            summary = run_migration(settings, src, src_path, dst, dst_path, journal, progress, daily_cap,
                                    hashes=hashes, checked_root=checked)
            checked = None  # after a wait for the quota, both ends are checked again
            if not (summary.stopped_for_quota and settings.wait_for_quota and summary.resets_at):
                break
            _sleep_until(summary.resets_at, args.json)
        sharing_report = None if journal is None or settings.dry_run else run_sharing(
            sharing, src, src_path, dst, dst_path, journal, settings.source, settings.destination,
            workers=settings.checkers)  # items read at once, as folders are listed by the walk
        if journal is not None and not settings.dry_run:
            migration = _migration_totals(journal, settings)
    except UserError:
        raise
    except DriveferryError as exc:
        if settings.dry_run:  # a dry run changes nothing: still exit 2
            raise
        raise FailedAfterWritesError(f"{exc} (the run had begun: the journal, and maybe the destination, "
                                     "changed; run the same command again to continue)", cause=exc) from exc
    finally:
        gc.unfreeze()
        progress.close()
        if journal is not None:
            journal.close()
        if backup is not None:
            _final_backup(backup)
    wait_figures = waits.figures()
    call_figures = calls.figures(summary.copied)
    report = {"settings": settings.redacted(),
              "summary": {**summary.to_json(), "waits": wait_figures, "api_calls": call_figures},
              **({"migration": migration} if migration else {})}
    if sharing_report is not None:
        report["sharing"] = sharing_report
    if args.report:
        write_private(Path(args.report), json.dumps(report, indent=2, default=str))
    from driveferry.commands.sharing_out import print_sharing
    if args.json:  # the summary stays the last JSON line (docs/events.md), as readers take it
        print_sharing(sharing_report, args.json)
    _print_summary(summary, args.json, wait_figures, call_figures, migration)
    if not args.json:
        print_sharing(sharing_report, args.json)
    if summary.stopped_for_quota:
        return 3
    return 1 if summary.failed else 0


def _interval(value: str | None) -> float:
    """--progress-interval in seconds (UserError when it is not a positive duration)."""
    if value is None:
        return DEFAULT_INTERVAL_S
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise UserError(f"bad value for --progress-interval: {exc}") from None
    if seconds <= 0:
        raise UserError(f"--progress-interval must be more than 0 seconds, got {value!r}")
    return seconds


def _progress(args: argparse.Namespace, interval_s: float) -> PlanProgress:
    """Bars on a terminal, a line every `interval_s` without one, JSON events with --json."""
    if args.json:
        return JsonProgress(interval_s)
    if not args.quiet and not sys.stderr.isatty():
        return LineProgress(interval_s)
    return TerminalProgress(not args.quiet, quiet=args.quiet)


def _migration_totals(journal: Any, settings: Any) -> dict[str, Any] | None:
    """The whole migration's totals across every run (statuspage.snapshot), or None without a job."""
    from datetime import UTC, datetime

    from driveferry.statuspage.snapshot import job_snapshot
    job = journal.find_job(settings.source, settings.destination)
    if job is None:
        return None
    snap = job_snapshot(journal, job, datetime.now(UTC), errors=0)
    keys = ("files", "files_done", "files_failed", "files_pending", "files_unsupported", "unverified",
            "goal_bytes", "bytes_done", "percent")
    return {"runs": len(snap["runs"]), **{k: snap["totals"][k] for k in keys}}


def _journal_backup(args: argparse.Namespace, journal: str, remotes: Any) -> JournalBackup | None:
    """The --journal-backup of this run, or None. Raises UserError for a journal that is not SQLite."""
    if not args.journal_backup:
        return None
    from driveferry.journal.backup import sqlite_path
    from driveferry.migrate.backup import JournalBackup
    path = sqlite_path(journal)
    if path is None:
        raise UserError("--journal-backup backs up an SQLite journal; a PostgreSQL journal is backed up "
                        "with the server's own tools (pg_dump)")
    try:
        every_s = parse_duration(args.journal_backup_every)
    except ValueError as exc:
        raise UserError(f"bad value for --journal-backup-every: {exc}") from None
    provider, folder = remotes.open(args.journal_backup)
    return JournalBackup(provider, folder, path, every_s)


def _final_backup(backup: JournalBackup) -> None:
    """The snapshot at exit; a failure is reported, not fatal: the local journal is intact."""
    try:
        backup.close()
    except (DriveferryError, OSError) as exc:
        print(f"driveferry: warning: the final journal backup failed: {exc}; the local journal is intact, "
              "keep this machine's copy or run again to back it up", file=sys.stderr)


def _sleep_until(resets_at: str, as_json: bool) -> None:
    import time
    from datetime import UTC, datetime
    wait = max(1.0, (datetime.fromisoformat(resets_at) - datetime.now(UTC)).total_seconds())
    print(f"daily upload budget spent; waiting {wait / 3600:.1f} h until {resets_at}", file=sys.stderr)
    time.sleep(wait)


def _print_summary(s: Summary, as_json: bool, waits: dict[str, dict[str, float]],
                   calls: dict[str, dict[str, Any]] | None = None, migration: dict[str, Any] | None = None
                   ) -> None:
    if as_json:
        print(json.dumps({"event": "summary", **s.to_json(), "waits": waits, "api_calls": calls or {},
                          **({"migration": migration} if migration else {})}), flush=True)
        return
    if s.dry_run:
        print(f"would copy {s.copied} files, {format_size(s.would_copy_bytes)} ({s.would_copy_bytes} bytes); "
              f"cannot copy {s.unsupported}, filtered {s.filtered}; nothing was changed")
    else:
        print(f"this run: copied {s.copied}, skipped {s.skipped} (already there), failed {s.failed}, "
              f"unverified {s.unverified}, cannot copy {s.unsupported}, filtered {s.filtered}; "
              f"{format_size(s.bytes_uploaded)} in "
              f"{s.seconds:.1f}s ({format_size(s.rate_bps)}/s); run {s.run_id}")
    if s.version_files:
        verb = "would add" if s.dry_run else "copied"
        print(f"versions: {verb} {s.versions_copied} previous versions of {s.version_files} files as revisions, "
              f"{format_size(s.version_bytes)} ({s.version_bytes} bytes) on top, counted in the daily upload budget")
    if migration:
        runs = f"{migration['runs']} run{'s' if migration['runs'] != 1 else ''}"
        print(f"whole migration ({runs}): {migration['files_done']}/{migration['files']} files "
              f"done, {format_size(migration['bytes_done'])} of {format_size(migration['goal_bytes'])} "
              f"({migration['percent']:.1f}%), {migration['files_failed']} failed, "
              f"{migration['unverified']} unverified, {migration['files_unsupported']} cannot copy")
    waited = [f"{name}: waits {int(w['waits'])}, waited {w['waited_s']:.1f} s" for name, w in waits.items()
              if w["waits"]]
    if waited:
        print("throttling and retries: " + "; ".join(waited))
    per_file = [f"{name}: {c['requests']}" + (f" ({c['per_file']:.2f} per file copied)" if c["per_file"] is not None
                                              else "") for name, c in (calls or {}).items()]
    if per_file:
        print("API calls: " + "; ".join(per_file))
    for item in s.unsupported_items[:20]:
        print(f"  cannot copy: {item['path']}: {item['reason']}")
    if len(s.unsupported_items) > 20:
        print(f"  ... and {len(s.unsupported_items) - 20} more (see --report)")
    for item in s.renamed_items[:20]:
        print(f"  renamed: {item['source']} -> {item['path']}: {item['why']}")
    if len(s.renamed_items) > 20:
        print(f"  ... and {len(s.renamed_items) - 20} more renamed (see --report)")
    for e in s.exported_items[:20]:
        print(f"  exported: {e['path']} ({e['bytes']} bytes, sha256 {e['sha256'][:12]}...): a converted copy, "
              f"not the document itself")
    for a in s.altered_items[:20]:
        print(f"  altered by the destination: {a['path']}: sent {a['sent_bytes']} bytes (proven against the "
              f"source), it stores {a['stored_bytes']}")
    for f in s.failures[:20]:
        print(f"  FAILED: {f['path']}: {f['error']}", file=sys.stderr)
    if s.stopped_for_quota:
        when = f" (budget frees up at {s.resets_at})" if s.resets_at else ""
        print(f"stopped: {s.stopped_for_quota}{when}; run the same command again to continue", file=sys.stderr)
