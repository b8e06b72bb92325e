"""Where a streaming verify puts its findings: exact counts, a spill file in path order, and the few kept.

`FindingSink.add` receives findings in path order (verify.merge). It counts files and bytes per status
(the summary is exact whatever the tree's size), writes every finding to a temporary JSON Lines spill
(`FIELDS` records, so the reports are written from it afterwards without holding the tree), and keeps
in memory only the first `shown` problems (for the terminal) and, with `keep_problems`, every problem
with its local file and remote entry (what `--fix` needs; bounded by the problems, not the tree).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from types import TracebackType

from driveferry.integrity.hashes import HashType
from driveferry.providers.base import Entry
from driveferry.verify.classify import Finding, Status
from driveferry.verify.report import Record, Summary, finding_record
from driveferry.verify.scan import LocalFile

__all__ = ["FindingSink", "finding_from_record"]


def _time(value: str | int | None) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _int(value: str | int | None) -> int | None:
    return None if value is None else int(value)


def finding_from_record(r: Record) -> Finding:
    """The `Finding` a `finding_record` was made from (its inverse)."""
    kind = r["hash_type"]
    return Finding(
        path=str(r["path"]), status=Status(str(r["status"])), reason=str(r["reason"]),
        local_size=_int(r["local_size"]), remote_size=_int(r["remote_size"]),
        hash_type=HashType(str(kind)) if kind else None,
        local_hash=None if r["local_hash"] is None else str(r["local_hash"]),
        remote_hash=None if r["remote_hash"] is None else str(r["remote_hash"]),
        local_mtime=_time(r["local_mtime"]), remote_modified=_time(r["remote_modified"]),
        remote_id=None if r["remote_id"] is None else str(r["remote_id"]),
        zero_tail_bytes=int(r["zero_tail_bytes"] or 0), hole_bytes=int(r["hole_bytes"] or 0))


class FindingSink:
    """Findings of one verify run (module doc). Close it (or use `with`) to remove the spill file."""

    def __init__(self, *, keep_problems: bool = False, shown: int = 20, spill_dir: str | None = None) -> None:
        self.keep_problems = keep_problems
        self.shown = shown
        self.first_problems: list[Finding] = []
        self.problems: list[Finding] = []  # every problem, with keep_problems only
        self.local: dict[str, LocalFile] = {}  # the problems' local files, with keep_problems only
        self.entries: dict[str, Entry] = {}  # the problems' remote entries by id, with keep_problems only
        self._files = dict.fromkeys(Status, 0)
        self._bytes = dict.fromkeys(Status, 0)
        fd, self._path = tempfile.mkstemp(prefix="df-verify-", suffix=".jsonl", dir=spill_dir)
        self._out = os.fdopen(fd, "w", encoding="utf-8")

    def add(self, finding: Finding, local: LocalFile | None = None, remote: Entry | None = None) -> None:
        self._files[finding.status] += 1
        self._bytes[finding.status] += finding.size
        self._out.write(json.dumps(finding_record(finding), ensure_ascii=False, separators=(",", ":")) + "\n")
        if finding.status is Status.OK:
            return
        if len(self.first_problems) < self.shown:
            self.first_problems.append(finding)
        if self.keep_problems:
            self.problems.append(finding)
            if local is not None:
                self.local[local.path] = local
            if remote is not None:
                self.entries[remote.id] = remote

    def summary(self) -> Summary:
        counts = tuple((s, self._files[s], self._bytes[s]) for s in Status)
        return Summary(counts, sum(self._files.values()), sum(self._bytes.values()))

    def findings(self) -> Iterator[Finding]:
        """Every finding added so far, in the order added, read back from the spill."""
        self._out.flush()
        with open(self._path, encoding="utf-8") as fh:
            for line in fh:
                yield finding_from_record(json.loads(line))

    def close(self) -> None:
        if not self._out.closed:
            self._out.close()
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> FindingSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
