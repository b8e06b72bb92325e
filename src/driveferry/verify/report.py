"""Verify reports: a terminal summary, JSON Lines, CSV, a self-contained HTML page, and checksum manifests.

Every format is built from `Finding` values only (paths, sizes, times, hashes, statuses, remote ids), so
no report can carry a credential. JSONL and CSV share one column list, `FIELDS`; times are ISO 8601 UTC
and sizes are bytes. Writers take an open text stream and do not close it; open CSV files with
`newline=""` as the csv module requires.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from driveferry.integrity.hashes import HashType
from driveferry.units import format_size
from driveferry.verify.classify import STATUS_INFO, Finding, Status
from driveferry.verify.html import ReportContext, write_page
from driveferry.verify.scan import LocalFile

__all__ = ["FIELDS", "Summary", "summarize", "format_summary", "finding_record", "write_jsonl", "write_csv",
           "write_html", "write_manifest", "manifest_line"]

FIELDS = ("path", "status", "reason", "local_size", "remote_size", "hash_type", "local_hash", "remote_hash",
          "local_mtime", "remote_modified", "remote_id", "zero_tail_bytes", "hole_bytes")

Record = dict[str, str | int | None]


@dataclass(frozen=True)
class Summary:
    """Files and bytes per status (every status present, zero when absent), and the totals.

    `problems` counts every finding that is not ok (unverifiable and pending included: not proven).
    """

    counts: tuple[tuple[Status, int, int], ...]  # (status, files, bytes) in Status order
    total_files: int
    total_bytes: int

    def files_of(self, status: Status) -> int:
        return next(n for s, n, _ in self.counts if s is status)

    def bytes_of(self, status: Status) -> int:
        return next(b for s, _, b in self.counts if s is status)

    @property
    def problems(self) -> int:
        return self.total_files - self.files_of(Status.OK)

    def as_dict(self) -> dict[Status, tuple[int, int]]:
        return {s: (n, b) for s, n, b in self.counts}


def summarize(findings: Iterable[Finding]) -> Summary:
    files = dict.fromkeys(Status, 0)
    size = dict.fromkeys(Status, 0)
    for f in findings:
        files[f.status] += 1
        size[f.status] += f.size
    return Summary(tuple((s, files[s], size[s]) for s in Status), sum(files.values()), sum(size.values()))


def format_summary(summary: Summary, *, show_empty: bool = False) -> str:
    """A plain-text table (status, files, size, meaning) with a total line; no colour, no terminal codes."""
    rows = [(s.value, str(n), format_size(b), STATUS_INFO[s].meaning)
            for s, n, b in summary.counts if n or show_empty]
    rows.append(("total", str(summary.total_files), format_size(summary.total_bytes),
                 f"{summary.problems} not proven ok"))
    head = ("status", "files", "size", "meaning")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]

    def line(r: tuple[str, str, str, str]) -> str:
        return (f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}").rstrip()

    rule = "-" * (sum(widths[:3]) + 4 + max(len("meaning"), widths[3]) + 2)
    return "\n".join([line(head), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])])


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def finding_record(f: Finding) -> Record:
    """One finding as a flat record with the `FIELDS` keys (JSON-ready: str, int or None)."""
    return {
        "path": f.path, "status": f.status.value, "reason": f.reason, "local_size": f.local_size,
        "remote_size": f.remote_size, "hash_type": f.hash_type.value if f.hash_type else None,
        "local_hash": f.local_hash, "remote_hash": f.remote_hash, "local_mtime": _iso(f.local_mtime),
        "remote_modified": _iso(f.remote_modified), "remote_id": f.remote_id,
        "zero_tail_bytes": f.zero_tail_bytes, "hole_bytes": f.hole_bytes,
    }


def write_jsonl(findings: Iterable[Finding], out: TextIO) -> int:
    """One JSON object per line per finding. Returns the number of lines written."""
    n = 0
    for f in findings:
        out.write(json.dumps(finding_record(f), ensure_ascii=False, separators=(",", ":")) + "\n")
        n += 1
    return n


def write_csv(findings: Iterable[Finding], out: TextIO) -> int:
    """CSV with a header row of `FIELDS`; None is written as an empty cell. Returns the data rows."""
    w = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    n = 0
    for f in findings:
        w.writerow({k: "" if v is None else v for k, v in finding_record(f).items()})
        n += 1
    return n


def write_html(findings: Iterable[Finding], out: TextIO, *, generated_at: datetime,
               title: str = "driveferry verify report", summary: Summary | None = None,
               context: ReportContext | None = None) -> None:
    """The self-contained HTML report (see `driveferry.verify.html`); `context` names both sides and
    the run. With `summary` (the findings' own) `findings` is iterated once, row by row, never held."""
    if summary is None:
        findings = list(findings)
        summary = summarize(findings)
    write_page(findings, summary.as_dict(), out, title=title, generated_at=generated_at, context=context)


def manifest_line(hex_digest: str, path: str) -> str:
    """One line in the GNU coreutils format (`<hex>  <path>`), escaped as md5sum escapes it.

    A name holding a backslash, newline or carriage return gets a leading backslash and those characters
    written as \\\\, \\n and \\r, which `md5sum -c` undoes.
    """
    if any(c in path for c in "\\\n\r"):
        escaped = path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{hex_digest}  {escaped}\n"
    return f"{hex_digest}  {path}\n"


def write_manifest(files: Iterable[LocalFile], kind: HashType, out: TextIO) -> int:
    """A checksum manifest of local files for `kind`, paths relative to the scan root.

    MD5, SHA-1 and SHA-256 manifests are checked by `md5sum -c`, `sha1sum -c`, `sha256sum -c` run in the
    scan root. Files without a `kind` hash (unreadable, or scanned for another type) are left out, not
    guessed. Returns the number of lines written.
    """
    n = 0
    for f in files:
        digest = f.hashes.get(kind)
        if digest and f.error is None:
            out.write(manifest_line(digest, f.path))
            n += 1
    return n
