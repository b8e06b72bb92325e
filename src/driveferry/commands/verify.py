"""`driveferry verify`: prove files equal what a remote holds, from content hashes; optionally fix the remote.

    verify LOCAL_DIR REMOTE:PATH   hash the local tree (in parallel, cached) and compare it with the
                                   hashes the cloud API reports (never through a FUSE view)
    verify SRC:PATH DST:PATH       prove a migration from provenance metadata, downloading nothing
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driveferry.commands.common import add_config_arg, check_output_path, open_remotes, write_private
from driveferry.errors import DriveferryError, FailedAfterWritesError, NotFoundError, UserError
from driveferry.providers.base import Entry, Kind, Provider
from driveferry.providers.ops import DirCache, resolve
from driveferry.providers.registry import parse_spec
from driveferry.units import parse_size
from driveferry.verify.classify import Finding, Policy
from driveferry.verify.compare import Comparison, compare_local, compare_remotes
from driveferry.verify.fix import apply_fix, chunk_bytes_for, plan_fixes
from driveferry.verify.report import (
    format_summary,
    summarize,
    write_csv,
    write_html,
    write_jsonl,
    write_manifest,
)

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
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
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


def _folder(provider: Provider, path: str, spec: str) -> Entry:
    try:
        entry = resolve(provider, path)
    except NotFoundError:
        raise UserError(f"{spec}: no such folder") from None
    if entry.kind is not Kind.FOLDER:
        raise UserError(f"{spec} is a {entry.kind.value}, not a folder; verify compares folders")
    return entry


def run(args: argparse.Namespace) -> int:
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
    remotes = open_remotes(args.config)
    dst, dst_path = remotes.open(args.second)
    dst_folder = _folder(dst, dst_path, args.second)
    if local_mode:
        return _run_local(args, Path(args.first), dst, dst_folder, policy)
    src, src_path = remotes.open(args.first)
    src_folder = _folder(src, src_path, args.first)
    comp = compare_remotes(src, src_folder, dst, dst_folder, download=args.download)
    if comp.downloaded_bytes:
        print(f"downloaded {comp.downloaded_bytes} bytes to settle files without a usable hash")
    return _finish(args, comp.findings, comp)


def _run_local(args: argparse.Namespace, root: Path, dst: Provider, folder: Entry, policy: Policy) -> int:
    from tqdm import tqdm

    from driveferry.verify.cache import HashCache
    cache = None if args.no_cache else HashCache()
    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="hashing", disable=args.quiet,
               file=sys.stderr, dynamic_ncols=True)
    try:
        comp = compare_local(root, dst, folder, now=datetime.now(UTC), policy=policy, cache=cache,
                             workers=args.workers, progress=bar.update)
        bar.close()
        for rel, why in comp.unlisted:
            print(f"warning: could not list local folder {rel}: {why}", file=sys.stderr)
        findings = comp.findings
        if args.fix:
            findings = _fix(args, root, dst, folder, comp, policy, cache)
    finally:
        bar.close()
        if cache is not None:
            cache.close()
    if args.manifest and comp.hash_type is not None and comp.scanned is not None:
        buf = io.StringIO()
        n = write_manifest(comp.scanned.files, comp.hash_type, buf)
        write_private(Path(args.manifest), buf.getvalue())
        print(f"manifest: {n} {comp.hash_type.value} lines in {args.manifest}")
    return _finish(args, findings, comp)


def _fix(args: argparse.Namespace, root: Path, dst: Provider, folder: Entry, comp: Comparison,
         policy: Policy, cache: Any) -> list[Finding]:
    """Apply (or, with --dry-run, list) the fixes; returns the findings after re-verifying fixed paths."""
    actions, held = plan_fixes(comp.findings, comp.local, min_zero_tail_bytes=policy.min_zero_tail_bytes)
    for path, why in held:
        print(f"not fixed: {path}: {why}")
    kind = comp.hash_type
    if not actions or kind is None:
        print("fix: nothing to re-upload")
        return comp.findings
    if args.dry_run:
        for a in actions:
            print(f"would {a.describe()}")
        print(f"dry run: {len(actions)} file(s) would be re-uploaded; nothing was changed")
        return comp.findings
    print(format_summary(summarize(comp.findings)))
    dirs = DirCache(dst, folder)
    step = chunk_bytes_for(dst)
    try:  # apply_fix reports a file's provider errors; what escapes (re-verify listings) comes after writes
        for a in actions:
            res = apply_fix(a, root, dst, dirs, kind, comp.local[a.path].hashes[kind], comp.entries, step)
            print(f"{'fixed' if res.ok else 'uploaded' if res.uploaded else 'FAILED'}: {a.path}: {res.message}")
        again = compare_local(root, dst, folder, now=datetime.now(UTC), policy=policy, cache=cache,
                              workers=args.workers, only=[a.path for a in actions])
    except UserError:
        raise
    except DriveferryError as exc:  # the remote may already hold re-uploads: not "nothing changed" (exit 2)
        raise FailedAfterWritesError(f"{exc} (--fix had begun re-uploading; run it again to continue)",
                                     cause=exc) from exc
    fixed = {a.path for a in actions}
    print(f"re-verified {len(fixed)} file(s) after --fix:")
    return sorted([f for f in comp.findings if f.path not in fixed] + again.findings,
                  key=lambda x: (x.path, x.remote_id or ""))


def _finish(args: argparse.Namespace, findings: list[Finding], comp: Comparison) -> int:
    summary = summarize(findings)
    print(format_summary(summary))
    problems = [f for f in findings if f.status.value != "ok"]
    for f in problems[:20]:
        print(f"  {f.status.value:<18} {f.path}: {f.reason}")
    if len(problems) > 20:
        print(f"  ... and {len(problems) - 20} more (see --report)")
    if args.report:
        _write_report(Path(args.report), findings)
        print(f"report: {args.report}")
    return 1 if summary.problems or comp.unlisted else 0


def _write_report(path: Path, findings: list[Finding]) -> None:
    buf = io.StringIO(newline="")
    ext = path.suffix.lower()
    if ext == ".jsonl":
        write_jsonl(findings, buf)
    elif ext == ".csv":
        write_csv(findings, buf)
    else:
        write_html(findings, buf, generated_at=datetime.now(UTC))
    write_private(path, buf.getvalue())
