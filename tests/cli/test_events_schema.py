"""The `--json` output stays what src/driveferry/events.schema.json (docs/events.md) says: every line
migrate writes (dry run, first run, a run over a finished tree), `status --json` and `status --files
--json`, verify --json and verify's JSONL report validate against it, and every event type the code can emit is in
the schema (found by reading the emitters)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from schema_check import errors

from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.seed import seed_emulator
from driveferry.emulator.server import Emulator

SRC = Path(__file__).resolve().parents[2] / "src" / "driveferry"
SCHEMA = json.loads((SRC / "events.schema.json").read_text(encoding="utf-8"))
SPEC: dict[str, Any] = {
    "seed": 17,
    "onedrive": {
        "files": [{"path": "P/a.bin", "size": "300K"}, {"path": "P/b/c.bin", "size": "1M"},
                  {"path": "P/b/empty.txt", "size": 0}, {"path": "P/d.txt", "size": "2K", "content": "text"}],
        "notebooks": ["P/Notes"],
    },
}
FILES = {"a.bin": 300 * 1024, "b/c.bin": 1024 * 1024, "b/empty.txt": 0, "d.txt": 2048}


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    emu = Emulator(tmp_path / "emu", tls=True).start()
    try:
        seed_emulator(emu, SPEC)
        config = tmp_path / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())), encoding="utf-8")
        yield tmp_path, {**os.environ, "DRIVEFERRY_CONFIG": str(config)}
    finally:
        emu.stop()


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _events(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    for e in events:
        assert errors(e, SCHEMA, SCHEMA) == [], (e, errors(e, SCHEMA, SCHEMA))
    kinds = [e["event"] for e in events]
    assert kinds.count("summary") == 1 and kinds[-1] == "summary"  # the last line, as readers take it
    return events


def _summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["event"] == "summary")


def test_every_json_line_validates(world: tuple[Path, dict[str, str]]) -> None:
    cwd, env = world
    migrate = ("migrate", "emu-onedrive:/P", "emu-gdrive:Dest", "--journal", "j.sqlite3", "--json",
               "--transfers", "2")

    dry = _events(_cli(env, cwd, *migrate, "--dry-run"))
    listed = {e["path"]: e["size"] for e in dry if e["event"] == "would_copy"}
    assert listed == FILES
    assert _summary(dry)["copied"] == 4 and _summary(dry)["would_copy_bytes"] == sum(FILES.values())
    assert "migration" not in _summary(dry) and not (cwd / "j.sqlite3").exists()

    first = _events(_cli(env, cwd, *migrate, "--progress-interval", "1h"))
    kinds = [e["event"] for e in first]
    assert {"planned", "remaining", "start", "finish", "progress", "summary"} <= set(kinds)
    assert kinds.count("progress") == 1  # the hour never passed: only the closing one
    final = next(e for e in first if e["event"] == "progress")
    assert (final["files_done"], final["files_total"]) == (4, 4)
    assert final["bytes_done"] == final["bytes_total"] == sum(FILES.values())
    assert {e["path"] for e in first if e["event"] == "finish" and e["status"] == "copied"} == set(FILES)
    summary = _summary(first)
    assert summary["copied"] == 4 and summary["unsupported"] == 1
    assert summary["migration"]["files_done"] == summary["migration"]["files"] == 4

    again = _summary(_events(_cli(env, cwd, *migrate)))
    assert again["copied"] == 0 and again["skipped"] == 0  # this run's share: nothing left to do
    assert again["migration"] == {**summary["migration"], "runs": 2}  # the whole migration: all done

    text = _cli(env, cwd, *[a for a in migrate if a != "--json"])  # the text summary says it too
    assert "whole migration (3 runs): 4/4 files done" in text.stdout, text.stdout

    for extra in ((), ("--files",), ("--failed", "--files", "--filter", "done")):
        proc = _cli(env, cwd, "status", "--journal", "j.sqlite3", "--json", *extra)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert errors(doc, SCHEMA["$defs"]["status"], SCHEMA) == []
        assert doc["jobs"][0]["totals"]["files_done"] == 4
        if extra:  # every file, and the notebook as the item that cannot be copied; or the done ones
            rows = {f["path"]: f["state"] for f in doc["jobs"][0]["files"]}
            assert rows == {**dict.fromkeys(FILES, "done"), **({} if "done" in extra else {"Notes": "unsupported"})}

    proc = _cli(env, cwd, "verify", "emu-onedrive:/P", "emu-gdrive:Dest", "--report", "v.jsonl")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the notebook: unverifiable, not proven
    records = [json.loads(line) for line in (cwd / "v.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["path"]: r["status"] for r in records} == {**dict.fromkeys(FILES, "ok"), "Notes": "unverifiable"}
    for r in records:
        assert errors(r, SCHEMA["$defs"]["finding"], SCHEMA) == [], r

    proc = _cli(env, cwd, "verify", "emu-onedrive:/P", "emu-gdrive:Dest", "--json")
    assert proc.returncode == 1 and "content hashes agree" in proc.stderr  # the table goes to stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    for e in lines:
        assert errors(e, SCHEMA, SCHEMA) == [], e
    assert [e["event"] for e in lines] == ["finding"] * 5 + ["verify_summary"]
    assert {e["path"]: e["status"] for e in lines[:-1]} == {r["path"]: r["status"] for r in records}
    assert (lines[-1]["files"], lines[-1]["problems"], lines[-1]["counts"]["ok"]["files"]) == (5, 1, 4)


def _emitted_events() -> set[str]:
    """Event names written anywhere in the package outside the emulator: `event="x"` or `"event": "x"`."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        if "emulator" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'\bevent="(\w+)"', text)) | set(re.findall(r'"event":\s*"(\w+)"', text))
    return found


def test_schema_names_every_event_the_code_emits() -> None:
    in_schema = set(SCHEMA["$defs"]["events"])
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in SCHEMA["oneOf"]} == in_schema
    emitted = _emitted_events()
    assert emitted <= in_schema, f"events emitted but not in events.schema.json: {emitted - in_schema}"
    assert {"planned", "remaining", "start", "finish", "progress", "would_copy", "retry", "quota_wait",
            "summary", "finding", "verify_summary"} <= emitted
    workers = (SRC / "migrate" / "workers.py").read_text(encoding="utf-8")
    statuses = set(re.findall(r'file_finished\([^)]*?"([\w ]+)"', workers))
    statuses |= set(re.findall(r'"(\w+)" if final else "(\w+)"', workers)[0])
    assert statuses == set(SCHEMA["$defs"]["events"]["finish"]["properties"]["status"]["enum"])
    doc = (SRC.parents[1] / "docs" / "events.md").read_text(encoding="utf-8")
    for name in in_schema:
        assert f"`{name}`" in doc, f"docs/events.md does not describe the {name} event"
