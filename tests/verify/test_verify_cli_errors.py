"""Bad input to `driveferry verify`: one line on stderr, exit 2, nothing changed (no report, no upload)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.server import Emulator


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture()
def env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "remotes.toml"
    config.write_text(remotes_toml(remote_sections(emulator.describe())))
    model = drive_model(emulator)
    top = model.create_folder(f"verr-{tmp_path.name}")
    model.create_file("a.bin", [b"remote"], top.id)
    return {**os.environ, "DRIVEFERRY_CONFIG": str(config), "DRIVEFERRY_HASH_CACHE": str(tmp_path / "c.sqlite3"),
            "TOP": top.name}


@pytest.mark.parametrize("case", ["missing_local", "unknown_remote", "remote_is_file", "bad_report_ext",
                                  "missing_remote_folder", "dry_run_without_fix", "fix_remote_to_remote",
                                  "report_is_folder", "journal_with_local", "journal_missing",
                                  "journal_without_the_job"])
def test_bad_input_is_one_line_exit_2(env: dict[str, str], tmp_path: Path, emulator: Emulator, case: str) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "a.bin").write_bytes(b"local!")
    top = env["TOP"]
    report = tmp_path / "out.html"
    args = {
        "missing_local": [str(tmp_path / "nope"), f"emu-gdrive:{top}"],
        "unknown_remote": [str(local), "nosuch:x"],
        "remote_is_file": [str(local), f"emu-gdrive:{top}/a.bin"],
        "bad_report_ext": [str(local), f"emu-gdrive:{top}", "--report", str(tmp_path / "out.pdf")],
        "missing_remote_folder": [str(local), f"emu-gdrive:{top}/absent"],
        "dry_run_without_fix": [str(local), f"emu-gdrive:{top}", "--dry-run"],
        "fix_remote_to_remote": [f"emu-gdrive:{top}", f"emu-gdrive:{top}", "--fix"],
        "report_is_folder": [str(local), f"emu-gdrive:{top}", "--report", str(tmp_path / "dir.html")],
        "journal_with_local": [str(local), f"emu-gdrive:{top}", "--journal", str(tmp_path / "j.sqlite3")],
        "journal_missing": [f"emu-gdrive:{top}", f"emu-gdrive:{top}", "--journal", str(tmp_path / "nope.sqlite3")],
        "journal_without_the_job": [f"emu-gdrive:{top}", f"emu-gdrive:{top}", "--journal",
                                    str(tmp_path / "other.sqlite3")],
    }[case]
    if case == "journal_without_the_job":  # a journal of another migration
        from driveferry.journal import Journal
        with Journal.open(str(tmp_path / "other.sqlite3")) as j:
            j.get_or_create_job("emu-onedrive:/x", "emu-gdrive:y")
    if case == "report_is_folder":
        (tmp_path / "dir.html").mkdir()
    model = drive_model(emulator)
    before = sorted((f.id, f.md5, f.trashed) for f in model.all_files())
    own_report = case in ("bad_report_ext", "report_is_folder")
    proc = _run(env, "verify", *args) if own_report else _run(env, "verify", *args, "--report", str(report))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("driveferry: error: "), proc.stderr
    assert proc.stdout == ""
    assert not report.exists() and not (tmp_path / "out.pdf").exists()
    assert sorted((f.id, f.md5, f.trashed) for f in model.all_files()) == before
    assert (local / "a.bin").read_bytes() == b"local!"


def test_help_documents_exit_codes_and_an_example() -> None:
    proc = _run(dict(os.environ), "verify", "--help")
    assert proc.returncode == 0
    assert "exit codes: 0" in proc.stdout and "driveferry verify /content/downloads gdrive:" in proc.stdout
