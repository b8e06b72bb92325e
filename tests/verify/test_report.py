"""Report formats: parse JSONL/CSV back, HTML carries the counts and nothing external, manifests pass md5sum."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from driveferry.integrity import provenance as prov
from driveferry.integrity.hashes import HashType
from driveferry.verify.classify import Finding, Status, classify_copy, classify_tree
from driveferry.verify.report import (
    FIELDS,
    finding_record,
    format_summary,
    manifest_line,
    summarize,
    write_csv,
    write_html,
    write_jsonl,
    write_manifest,
)
from driveferry.verify.scan import scan

from .helpers import NOW, OLD, data, local, remote

D = data(50_000)


def findings() -> list[Finding]:
    files = [local(D, "ok.bin"), local(D, "zeros/remote.bin"), local(D, "only-local.bin"),
             local(D, 'weird <script>alert("x")</script> & "quotes".bin'),
             local(D + bytes(100_000), "tail.part", mtime=OLD)]
    entries = [remote(D, "ok.bin"), remote(bytes(len(D)), "zeros/remote.bin", id_="z"),
               remote(D, 'weird <script>alert("x")</script> & "quotes".bin'),
               remote(D, "only-remote.bin", modified=OLD + timedelta(hours=1)),
               remote(D + bytes(100_000), "tail.part")]
    return classify_tree(files, entries, now=NOW)


EXPECTED = {Status.OK: 2, Status.ZERO_FILLED_REMOTE: 1, Status.MISSING_REMOTE: 1, Status.MISSING_LOCAL: 1,
            Status.ZERO_TAIL: 1}


def test_summary_counts_and_bytes() -> None:
    s = summarize(findings())
    assert {st: s.files_of(st) for st in Status if s.files_of(st)} == EXPECTED
    assert s.bytes_of(Status.ZERO_TAIL) == len(D) + 100_000
    assert s.total_files == 6 and s.problems == 4
    text = format_summary(s)
    assert "zero_filled_remote" in text and "total" in text and "4 not proven ok" in text
    assert "pending_sync" not in text and "pending_sync" in format_summary(s, show_empty=True)


def test_jsonl_round_trip() -> None:
    fs = findings()
    buf = io.StringIO()
    assert write_jsonl(fs, buf) == len(fs)
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert rows == [finding_record(f) for f in fs]
    assert all(tuple(r) == FIELDS for r in rows)
    z = next(r for r in rows if r["status"] == "zero_filled_remote")
    assert z["path"] == "zeros/remote.bin" and z["remote_id"] == "z" and z["local_hash"] != z["remote_hash"]


def test_csv_round_trip() -> None:
    fs = findings()
    buf = io.StringIO(newline="")
    assert write_csv(fs, buf) == len(fs)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue(), newline="")))
    assert tuple(rows[0]) == FIELDS
    assert [r["path"] for r in rows] == [f.path for f in fs]
    assert [r["status"] for r in rows] == [f.status.value for f in fs]
    assert [int(r["local_size"]) if r["local_size"] else None for r in rows] == [f.local_size for f in fs]


class _Counts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.rows: list[str] = []
        self._open: str | None = None
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._open = a.get("data-status-count")
        if tag == "tr" and a.get("data-status"):
            self.rows.append(a["data-status"] or "")
        self.external += [f"{tag}.{k}" for k in ("src", "href") if k in a]
        if tag == "link":
            self.external.append("link")

    def handle_data(self, text: str) -> None:
        if self._open:
            self.counts[self._open] = int(text)
            self._open = None


def test_html_counts_rows_escaping_and_no_external_resources() -> None:
    buf = io.StringIO()
    write_html(findings(), buf, generated_at=NOW)
    page = buf.getvalue()
    p = _Counts()
    p.feed(page)
    assert p.counts == {s.value: EXPECTED.get(s, 0) for s in Status}
    assert sorted(p.rows) == sorted(f.status.value for f in findings())
    assert p.external == [] and "url(" not in page and "@import" not in page
    assert '<script>alert("x")' not in page and "&lt;script&gt;" in page
    assert 'id="count-zero_filled_remote"' in page and 'data-total-count="6"' in page
    assert "<svg" in page and 'data-bar="zero_filled_remote"' in page
    assert "delete the remote copy and upload the file again" in page  # the advice line


def test_reports_carry_no_properties_or_secrets() -> None:
    src = remote(D, "s.bin", kinds=(HashType.QUICKXOR,), id_="S")
    props = {**prov.provenance_properties(src, "run1", {}), "oauth": "ya29.SECRET-TOKEN"}
    f = classify_copy(src, remote(D, "s.bin", properties=props))
    out = io.StringIO()
    write_jsonl([f], out)
    write_csv([f], out)
    write_html([f], out, generated_at=NOW)
    assert "SECRET" not in out.getvalue()


@pytest.mark.skipif(shutil.which("md5sum") is None, reason="needs GNU md5sum")
def test_manifest_passes_md5sum_check(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "dir with space").mkdir(parents=True)
    names = ["plain.bin", "dir with space/ü ñ.txt", "back\\slash", "new\nline", "car\rriage"]
    for i, name in enumerate(names):
        (root / name).write_bytes(data(1000 + i, seed=i))
    files = scan(root, {HashType.MD5}).files
    manifest = tmp_path / "MD5SUMS"
    with open(manifest, "w", encoding="utf-8", newline="") as fh:
        assert write_manifest(files, HashType.MD5, fh) == len(names)
    done = subprocess.run(["md5sum", "-c", str(manifest)], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(re.findall(r": OK$", done.stdout, re.M)) == len(names)
    (root / "plain.bin").write_bytes(b"tampered")
    bad = subprocess.run(["md5sum", "-c", str(manifest)], cwd=root, capture_output=True, text=True)
    assert bad.returncode == 1 and "plain.bin: FAILED" in bad.stdout


def test_manifest_line_escapes_like_coreutils() -> None:
    assert manifest_line("ab", "a b") == "ab  a b\n"
    assert manifest_line("ab", "a\\b\nc") == "\\ab  a\\\\b\\nc\n"


def test_manifest_skips_files_without_that_hash() -> None:
    buf = io.StringIO()
    assert write_manifest([local(D, "x"), local(D, "y", error="EACCES")], HashType.SHA1, buf) == 0
    assert write_manifest([local(D, "x"), local(D, "y", error="EACCES")], HashType.MD5, buf) == 1


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to parse the inline script")
def test_html_inline_script_parses(tmp_path: Path) -> None:
    buf = io.StringIO()
    write_html(findings(), buf, generated_at=NOW)
    script = re.search(r"<script>(.*?)</script>", buf.getvalue(), re.S)
    assert script is not None
    (tmp_path / "report.js").write_text(script.group(1))
    done = subprocess.run(["node", "--check", str(tmp_path / "report.js")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
