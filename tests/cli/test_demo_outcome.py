"""The demo's closing line is computed from what verify reported, never a fixed claim."""

from __future__ import annotations

import json
from pathlib import Path

from driveferry.commands.demo import verify_outcome


def _report(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps({"path": p, "status": s}) + "\n" for p, s in rows))
    return path


def test_all_ok(tmp_path: Path) -> None:
    assert verify_outcome(_report(tmp_path, [("a", "ok"), ("b", "ok")])) == "all 2 items proven ok from metadata"


def test_every_other_status_is_named_with_its_paths(tmp_path: Path) -> None:
    rows = [("a", "ok"), ("Notebooks/Team notes", "unverifiable"), ("x.bin", "content_mismatch"),
            ("y.bin", "stale_remote"), ("z.bin", "stale_remote")]
    line = verify_outcome(_report(tmp_path, rows))
    assert line == ("1 of 5 items proven ok; not proven: 1 content_mismatch (x.bin); 2 stale_remote "
                    "(y.bin, z.bin); 1 unverifiable (Notebooks/Team notes)")


def test_no_report(tmp_path: Path) -> None:
    assert verify_outcome(tmp_path / "missing.jsonl") == "verify wrote no report"
