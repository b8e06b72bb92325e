"""`driveferry verify`: prove files equal what a remote holds, from content hashes; optionally fix the remote.

    verify LOCAL_DIR REMOTE:PATH   hash the local tree (in parallel, cached) and compare it with the
                                   hashes the cloud API reports (never through a FUSE view)
    verify SRC:PATH DST:PATH       prove a migration from provenance metadata, downloading nothing
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driveferry.commands.common import add_config_arg, check_output_path, open_remotes
from driveferry.errors import DriveferryError, FailedAfterWritesError, NotFoundError, UserError
from driveferry.globs import check_patterns, matches_any
from driveferry.migrate.settings import DEFAULT_JOURNAL
from driveferry.providers.base import Entry, Kind, Provider
from driveferry.providers.ops import DirCache, resolve
from driveferry.providers.registry import parse_spec
from driveferry.units import parse_size
from driveferry.verify.classify import Finding, Policy
from driveferry.verify.compare import Comparison, compare_local, compare_remotes
from driveferry.verify.fix import Uploaded, apply_fix, chunk_bytes_for, plan_fixes
from driveferry.verify.html import ReportContext
from driveferry.verify.report import format_summary, manifest_line, write_csv, write_html, write_jsonl
from driveferry.verify.scan import LocalFile
from driveferry.verify.sink import FindingSink

EPILOG = """\
examples:
  driveferry verify /content/downloads gdrive:Downloads --report report.html
  driveferry verify /content/downloads gdrive:Downloads --fix            # re-upload bad remote copies
  driveferry verify /content/downloads gdrive:Downloads --fix --dry-run  # show what --fix would do
  driveferry verify onedrive:/Projects gdrive:Archive/Projects           # prove a migration, no download

LOCAL_DIR may be the FUSE mount itself (/content/drive/MyDrive/x): its bytes are read locally, while
the remote side always comes from the cloud API. --report writes JSONL, CSV or a self-contained HTML
page, chosen by the extension (.jsonl, .csv, .html). --manifest writes an md5sum/sha256sum-compatible
checksum file of the local tree (check it with `sha256sum -c` in LOCAL_DIR).

--fix re-uploads zero_filled_remote, stale_remote, content_mismatch, size_mismatch and missing_remote
files from the local copy through the API (verified against the hash the remote reports, then the bad
copy is deleted) and verifies them again. Local problems (zero_filled_local, zero_tail, holes) and
pending_sync are reported, never fixed.

exit codes: 0 every file proven ok; 1 problems found (anything not ok, including unverifiable and
pending_sync); 2 bad input (nothing was changed)."""

REPORT_EXTENSIONS = (".jsonl", ".csv", ".html")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="prove local files or a migrated copy equal the remote, by hash",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("first", metavar="LOCAL_DIR|SRC", help="local folder, or the migration source REMOTE:PATH")
    p.add_argument("second", metavar="REMOTE:PATH", help="the remote folder to compare with")
    p.add_argument("--report", metavar="FILE", help="write every finding to FILE (.jsonl, .csv or .html)")
    p.add_argument("--manifest", metavar="FILE", help="write a checksum manifest of the local files")
    p.add_argument("--grace", type=float, default=Policy.grace_s, metavar="SECONDS",
                   help="files modified this recently are pending_sync, not wrong (default %(default)s)")
    p.add_argument("--min-zero-tail", default="64K", metavar="SIZE",
                   help="report a local zero tail or holes from this size on (default 64K)")
    p.add_argument("--fix", action="store_true", help="re-upload bad remote copies from the local files")
    p.add_argument("--dry-run", action="store_true", help="with --fix: show what would be done, change nothing")
    p.add_argument("--download", action="store_true",
                   help="remote vs remote: download the side without a usable hash instead of reporting unverifiable")
    p.add_argument("--workers", type=int, default=None, help="hashing threads (default: CPU count)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the local hash cache")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out matching paths on both sides, as migrate --exclude does (repeatable)")
    p.add_argument("--journal", metavar="PATH|URL",
                   help="remote vs remote: the migration's journal, whose recorded ids find copies a "
                        f"lagging listing misses (default: ./{DEFAULT_JOURNAL} when it exists)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help="JSON lines on stdout: one finding event per file and a verify_summary (the other "
                        "messages go to stderr; docs/events.md)")
    add_config_arg(p)
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    if args.report and Path(args.report).suffix.lower() not in REPORT_EXTENSIONS:
        raise UserError(f"--report {args.report}: use a .jsonl, .csv or .html file name")
    for flag, value in (("--report", args.report), ("--manifest", args.manifest)):
        if value:
            check_output_path(value, flag)  # refused before any hashing, not after it
    if args.dry_run and not args.fix:
        raise UserError("--dry-run only applies to --fix")
    if args.grace < 0:
        raise UserError("--grace must be >= 0 seconds")
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be >= 1")
    check_patterns(args.exclude, "--exclude")


def _folder(provider: Provider, path: str, spec: str) -> Entry:
    try:
        entry = resolve(provider, path)
    except NotFoundError:
        raise UserError(f"{spec}: no such folder") from None
    if entry.kind is not Kind.FOLDER:
        raise UserError(f"{spec} is a {entry.kind.value}, not a folder; verify compares folders")
    return entry


def run(args: argparse.Namespace) -> int:
    """With --json, stdout carries only the JSON lines `_finish` writes: every other message of the run
    goes to stderr."""
    if not getattr(args, "json", False):
        return _run(args)
    import contextlib
    args.json_out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    _check_args(args)
    try:
        min_tail = parse_size(args.min_zero_tail)
    except ValueError as exc:
        raise UserError(f"--min-zero-tail: {exc}") from None
    policy = Policy(grace_s=args.grace, min_zero_tail_bytes=min_tail)
    local_mode = os.path.isdir(args.first)
    if not local_mode and parse_spec(args.first)[0] is None:
        raise UserError(f"LOCAL_DIR {args.first}: no such directory")
    if local_mode and args.download:
        raise UserError("--download applies to remote vs remote; a local tree is always read in full")
    if not local_mode and (args.fix or args.manifest):
        raise UserError("--fix and --manifest need a local folder as the first argument")
    if local_mode and args.journal:
        raise UserError("--journal applies to remote vs remote (a migration's source and destination)")
    remotes = open_remotes(args.config)
    dst, dst_path = remotes.open(args.second)
    if local_mode:
        return _run_local(args, Path(args.first), dst, _folder(dst, dst_path, args.second), policy)
    src, src_path = remotes.open(args.first)
    src_folder = _folder(src, src_path, args.first)
    journal = _open_journal(args)
    try:
        recorded = _recorded(args, journal, dst, dst_path) if journal is not None else None
        root = recorded.root() if recorded is not None else None
        dst_folder = root if root is not None else _folder(dst, dst_path, args.second)
        with _sink(args) as sink:
            comp = compare_remotes(src, src_folder, dst, dst_folder, download=args.download, sink=sink,
                                   fill=recorded.fill if recorded is not None else None)
            if comp.downloaded_bytes:
                print(f"downloaded {comp.downloaded_bytes} bytes to settle files without a usable hash")
            return _finish(args, sink, comp)
    finally:
        if journal is not None:
            journal.close()


def _open_journal(args: argparse.Namespace) -> Any:
    """The --journal given (it must exist), else ./DEFAULT_JOURNAL when it exists, else None; opened
    read-only, as status opens it: a migration may be writing it, and verify changes nothing."""
    from driveferry.statuspage.readonly import open_read_only
    if args.journal is None and not os.path.exists(DEFAULT_JOURNAL):
        return None
    path = args.journal or DEFAULT_JOURNAL
    if "://" not in path and not os.path.exists(path):
        raise UserError(f"--journal {path}: no such file; give the journal the migration wrote")
    return open_read_only(path)


def _recorded(args: argparse.Namespace, journal: Any, dst: Provider, dst_path: str) -> Any:
    """The job's recorded destination ids (verify.recorded), or None without a job for this pair."""
    from driveferry.verify.recorded import RecordedIds
    job = journal.find_job(args.first, args.second)
    if job is None:
        if args.journal:
            raise UserError(f"journal {args.journal} holds no migration from {args.first} to {args.second}; "
                            "give verify the same SOURCE and DESTINATION as migrate")
        return None
    return RecordedIds(journal, job.id, dst, dst_path)


def _run_local(args: argparse.Namespace, root: Path, dst: Provider, folder: Entry, policy: Policy) -> int:
    from tqdm import tqdm

    from driveferry.verify.cache import HashCache
    cache = None if args.no_cache else HashCache()
    # a bar only on a terminal: redirected stderr (a log, a notebook) would fill with \r updates
    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="hashing",
               disable=args.quiet or not sys.stderr.isatty(), file=sys.stderr, dynamic_ncols=True)
    manifest = _Manifest(Path(args.manifest)) if args.manifest else None
    with _sink(args, keep_problems=args.fix) as sink:
        try:
            comp = compare_local(root, dst, folder, now=datetime.now(UTC), policy=policy, cache=cache,
                                 workers=args.workers, progress=bar.update, sink=sink,
                                 on_local=_unless_excluded(manifest.add, args) if manifest is not None else None)
            bar.close()
            for rel, why in comp.unlisted:
                print(f"warning: could not list local folder {rel}: {why}", file=sys.stderr)
            final = _fix(args, root, dst, folder, comp, policy, cache) if args.fix else sink
        finally:
            bar.close()
            if cache is not None:
                cache.close()
            if manifest is not None:
                manifest.close()
        if manifest is not None and comp.hash_type is not None:
            print(f"manifest: {manifest.lines} {comp.hash_type.value} lines in {args.manifest}")
        try:
            return _finish(args, final, comp, before=sink if final is not sink else None)
        finally:
            if final is not sink:
                final.close()


class _ExcludingSink(FindingSink):
    """A FindingSink that drops the findings of paths an --exclude pattern matches (globs.py: the rules
    migrate --exclude uses), so a tree migrated with --exclude verifies clean with the same patterns."""

    def __init__(self, exclude: tuple[str, ...], **kw: Any) -> None:
        super().__init__(**kw)
        self.exclude = exclude

    def add(self, finding: Finding, local: LocalFile | None = None, remote: Entry | None = None) -> None:
        if not matches_any(finding.path, self.exclude):
            super().add(finding, local, remote)


def _sink(args: argparse.Namespace, **kw: Any) -> FindingSink:
    return _ExcludingSink(tuple(args.exclude), **kw) if args.exclude else FindingSink(**kw)


def _unless_excluded(add: Callable[[LocalFile], None], args: argparse.Namespace) -> Callable[[LocalFile], None]:
    def added(f: LocalFile) -> None:
        if not matches_any(f.path, args.exclude):
            add(f)
    return added


class _Manifest:
    """--manifest written as the scan goes, in path order (owner-only; `write_private`'s mode)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.out = os.fdopen(fd, "w", encoding="utf-8")
        self.lines = 0

    def add(self, f: LocalFile) -> None:
        # one hash type per scan (compare_local); an unreadable file is left out, not guessed
        for digest in f.hashes.values():
            if f.error is None:
                self.out.write(manifest_line(digest, f.path))
                self.lines += 1

    def close(self) -> None:
        self.out.close()


def _fix(args: argparse.Namespace, root: Path, dst: Provider, folder: Entry, comp: Comparison,
         policy: Policy, cache: Any) -> FindingSink:
    """Apply (or, with --dry-run, list) the fixes; returns the findings after re-verifying fixed paths
    (the first pass's sink when nothing was re-uploaded, else a new one the caller closes)."""
    actions, held = plan_fixes(comp.sink.problems, comp.local, min_zero_tail_bytes=policy.min_zero_tail_bytes)
    for path, why in held:
        print(f"not fixed: {path}: {why}")
    kind = comp.hash_type
    if not actions or kind is None:
        print("fix: nothing to re-upload")
        return comp.sink
    if args.dry_run:
        for a in actions:
            print(f"would {a.describe()}")
        print(f"dry run: {len(actions)} file(s) would be re-uploaded; nothing was changed")
        return comp.sink
    print(format_summary(comp.sink.summary()))
    dirs = DirCache(dst, folder)
    step = chunk_bytes_for(dst)
    uploaded = Uploaded(dst, dirs)
    try:  # apply_fix reports a file's provider errors; what escapes (re-verify listings) comes after writes
        for a in actions:
            res = apply_fix(a, root, dst, dirs, kind, comp.local[a.path].hashes[kind], comp.entries, step)
            uploaded.add(res)
            print(f"{'fixed' if res.ok else 'uploaded' if res.uploaded else 'FAILED'}: {a.path}: {res.message}")
        again = compare_local(root, dst, folder, now=datetime.now(UTC), policy=policy, cache=cache,
                              workers=args.workers, only=[a.path for a in actions], sink=FindingSink(),
                              fill=uploaded.fill)
    except UserError:
        raise
    except DriveferryError as exc:  # the remote may already hold re-uploads: not "nothing changed" (exit 2)
        raise FailedAfterWritesError(f"{exc} (--fix had begun re-uploading; run it again to continue)",
                                     cause=exc) from exc
    fixed = {a.path for a in actions}
    print(f"re-verified {len(fixed)} file(s) after --fix:")
    final = FindingSink()  # both streams are in path order: merged, so counts and report stay exact
    with again.sink:
        for f in heapq.merge((f for f in comp.sink.findings() if f.path not in fixed), again.sink.findings(),
                             key=_order):
            final.add(f)
    return final


def _order(f: Finding) -> tuple[str, str]:
    return f.path, f.remote_id or ""


def _finish(args: argparse.Namespace, sink: FindingSink, comp: Comparison,
            before: FindingSink | None = None) -> int:
    """Print the summary and write --report; after a --fix that re-uploaded, `before` holds the first
    pass's findings: the report shows the state after the fix, and FILE.before-fix.EXT the one before."""
    summary = sink.summary()
    print(format_summary(summary))
    for f in sink.first_problems:
        print(f"  {f.status.value:<18} {f.path}: {f.reason}")
    if summary.problems > len(sink.first_problems):
        print(f"  ... and {summary.problems - len(sink.first_problems)} more (see --report)")
    if getattr(args, "json_out", None) is not None:
        _json_lines(args.json_out, sink, args.report, comp)
    if args.report:
        report = Path(args.report)
        before_path = report.with_name(f"{report.stem}.before-fix{report.suffix}") if before else None
        if before is not None and before_path is not None:
            _write_report(before_path, before, _context(args, "before --fix"))
        _write_report(report, sink, _context(args, "after --fix" if before else "",
                                             before.summary().as_dict() if before else None,
                                             before_path.name if before_path else None))
        print(f"report: {args.report}" + (f" (after --fix; before it: {before_path})" if before_path else ""))
    return 1 if summary.problems or comp.unlisted else 0


def _json_lines(out: Any, sink: FindingSink, report: str | None, comp: Comparison) -> None:
    """verify --json: a `finding` event per file (the JSONL report's record) and a `verify_summary`
    (events.schema.json)."""
    import json

    from driveferry.verify.report import finding_record
    for f in sink.findings():
        out.write(json.dumps({"event": "finding", **finding_record(f)}, ensure_ascii=False) + "\n")
    summary = sink.summary()
    counts = {s.value: {"files": n, "bytes": b} for s, n, b in summary.counts}
    out.write(json.dumps({"event": "verify_summary", "files": summary.total_files, "bytes": summary.total_bytes,
                          "problems": summary.problems, "unlisted_folders": len(comp.unlisted),
                          "counts": counts, "report": report}) + "\n")
    out.flush()


def _context(args: argparse.Namespace, stage: str, before_counts: Any = None,
             before_report: str | None = None) -> ReportContext:
    """Both sides as the user named them, how each was read, and this run (command, time)."""
    from driveferry import __version__
    local = os.path.isdir(args.first)
    command = f"driveferry {__version__} verify {args.first} {args.second}" + (" --fix" if args.fix else "")
    when = datetime.now(UTC).isoformat(timespec="seconds")
    return ReportContext(
        source=args.first, destination=args.second,
        source_kind="local folder, read and hashed here" if local else "remote, hashes from its API",
        destination_kind="remote, hashes from its API", run=f"{command} at {when}" + (f" ({stage})" if stage else ""),
        before_counts=before_counts, before_report=before_report)


def _write_report(path: Path, sink: FindingSink, context: ReportContext | None = None) -> None:
    """The report, written finding by finding from the sink's spill (owner-only, as write_private)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
        ext = path.suffix.lower()
        if ext == ".jsonl":
            write_jsonl(sink.findings(), out)
        elif ext == ".csv":
            write_csv(sink.findings(), out)
        else:
            write_html(sink.findings(), out, generated_at=datetime.now(UTC), summary=sink.summary(),
                       context=context)
