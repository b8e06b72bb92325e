"""configs/colab_relay.ipynb runs headless to the end against the emulator (run_notebook.py: only
Colab's drive mount, its sign-in and IPython's `!` lines are stood in for), and again as on a new VM:
the journal is on local disk, backed up to (emulated) Drive by --journal-backup and restored from it;
every file arrived and is proven by verify; status is read on the same machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "configs" / "colab_relay.ipynb"
RUNNER = Path(__file__).with_name("run_notebook.py")
LOCAL_INDEX = Path("/opt/pypi/simple")  # a local package index: pip can build the checkout offline


@pytest.fixture()
def emulator(tmp_path: Path) -> Iterator[Path]:
    """`emulator serve` in one step: seeded, and its remotes file written for the notebook."""
    remotes = tmp_path / "emu-remotes.toml"
    proc = subprocess.Popen([sys.executable, "-m", "driveferry.cli", "emulator", "serve", "--data",
                             str(tmp_path / "emu"), "--tls", "--port", "0", "--seed",
                             str(REPO / "configs" / "emulator" / "small.toml"), "--remotes-out", str(remotes)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline(), proc.stderr.read() if proc.stderr else ""
    try:
        yield remotes
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _run(tmp_path: Path, remotes: Path, name: str, install_check: bool = False) -> list[dict[str, Any]]:
    install = {"INSTALL_SOURCE": "", "PIP_OPTIONS": ""}  # "": the driveferry installed here
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIVEFERRY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if install_check and LOCAL_INDEX.is_dir():  # the install cell with the local-path option; --dry-run leaves the venv alone
        install = {"INSTALL_SOURCE": str(REPO), "PIP_OPTIONS": f"--dry-run --no-deps --report {tmp_path / 'pip.json'}"}
        env |= {"PIP_INDEX_URL": LOCAL_INDEX.as_uri(), "PIP_EXTRA_INDEX_URL": "", "PIP_NO_INPUT": "1"}
    params = {**install, "SOURCE": "emu-onedrive:/Projects", "DESTINATION": "emu-gdrive:Archive/Projects",
              "JOURNAL_BACKUP": "emu-gdrive:driveferry/journal-backups", "WORK": str(tmp_path / "content"),
              "MOUNT": str(tmp_path / "drive"), "CONFIG_FILE": str(remotes), "TRANSFERS": 2}
    result = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, str(RUNNER), str(NOTEBOOK), str(result),
                           *(f"{k}={json.dumps(v)}" for k, v in params.items())],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return list(json.loads(result.read_text(encoding="utf-8")))


def _cmd(records: list[dict[str, Any]], word: str) -> dict[str, Any]:
    found = [r for r in records if r["command"].startswith(f"driveferry {word}") or f" {word} " in r["command"][:40]]
    assert len(found) == 1, (word, [r["command"] for r in records])
    return found[0]


def test_notebook_runs_headless_and_resumes_on_a_new_vm(tmp_path: Path, emulator: Path) -> None:
    first = _run(tmp_path, emulator, "first", install_check=True)
    for r in first:
        if "verify" not in r["command"]:  # verify exits 1: the OneNote notebook cannot be proven
            assert r["rc"] == 0, r
    if LOCAL_INDEX.is_dir():
        planned = json.loads((tmp_path / "pip.json").read_text(encoding="utf-8"))["install"]
        assert [(p["metadata"]["name"], p["metadata"]["version"]) for p in planned] == [("driveferry", "0.1.0")]
    migrate = _cmd(first, "migrate")
    assert "\r" not in migrate["stderr"] and "progress: " in migrate["stderr"]  # lines, not bars
    assert "whole migration (1 run):" in migrate["stdout"]
    work = tmp_path / "content"
    assert (work / "journal.sqlite3").is_file()  # on local disk, not on the Drive mount
    assert not list((tmp_path / "drive").rglob("*.sqlite3"))
    status = _cmd(first, "status")
    assert status["rc"] == 0 and "files done" in status["stdout"]
    reports = tmp_path / "drive" / "MyDrive" / "driveferry" / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["migrate-report.json", "verify-report.html"]

    # the migration's files arrived and are proven (verify from provenance, read here as JSONL)
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(emulator)}
    check = subprocess.run([sys.executable, "-m", "driveferry.cli", "verify", "emu-onedrive:/Projects",
                            "emu-gdrive:Archive/Projects", "--journal", str(work / "journal.sqlite3"),
                            "--report", str(tmp_path / "v.jsonl")], env=env, capture_output=True, text=True,
                           timeout=120)
    records = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text(encoding="utf-8").splitlines()]
    not_ok = {r["path"]: r["status"] for r in records if r["status"] != "ok"}
    assert not_ok == {"Notebooks/Team notes": "unverifiable"}, check.stdout
    assert sum(r["status"] == "ok" for r in records) == 49  # small.toml: 9 files and 40 in many/
    backups = subprocess.run([sys.executable, "-m", "driveferry.cli", "ls", "emu-gdrive:driveferry/journal-backups"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert backups.returncode == 0 and backups.stdout.strip(), backups.stderr

    # a new VM: its local disk is empty; the same cells restore the journal and find nothing left to do
    shutil.rmtree(work)
    shutil.rmtree(tmp_path / "drive")
    again = _cmd(_run(tmp_path, emulator, "again"), "migrate")
    assert again["rc"] == 0, again
    assert "this run: copied 0, skipped 0" in again["stdout"]
    assert "whole migration (2 runs): 49/49 files done" in again["stdout"], again["stdout"]
