"""The HTML verify report names both sides and the run and labels its columns source/destination; after
`verify --fix` the report holds the state after the fix, and FILE.before-fix.EXT the findings before it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.server import Emulator


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    emu = Emulator(tmp_path / "emu", tls=True).start()
    try:
        config = tmp_path / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())), encoding="utf-8")
        yield {**os.environ, "DRIVEFERRY_CONFIG": str(config)}
    finally:
        emu.stop()


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _statuses(html: str) -> dict[str, str]:
    """path -> status of each row of the files table."""
    rows = re.findall(r'<tr data-status="(\w+)"><td><code class="path">([^<]+)</code>', html)
    return {path: status for status, path in rows}


def test_report_names_sides_and_run_and_keeps_the_state_before_fix(tmp_path: Path, env: dict[str, str]) -> None:
    local = tmp_path / "photos"
    local.mkdir()
    (local / "a.jpg").write_bytes(os.urandom(50_000))
    (local / "b.jpg").write_bytes(os.urandom(70_000))
    assert _cli(env, tmp_path, "migrate", str(local), "emu-gdrive:Photos", "--journal", "j.sqlite3",
                "-q").returncode == 0
    (local / "b.jpg").write_bytes(os.urandom(70_000))  # the remote copy is now wrong: --fix re-uploads it

    proc = _cli(env, tmp_path, "verify", str(local), "emu-gdrive:Photos", "--fix", "--grace", "0",
                "--no-cache", "--report", "report.html")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = (tmp_path / "report.html").read_text(encoding="utf-8")
    before = (tmp_path / "report.before-fix.html").read_text(encoding="utf-8")
    assert _statuses(after) == {"a.jpg": "ok", "b.jpg": "ok"}
    assert _statuses(before)["a.jpg"] == "ok" and _statuses(before)["b.jpg"] != "ok"
    bad = _statuses(before)["b.jpg"]
    assert f'<span data-before-count="{bad}">1</span> {bad}' in after and "report.before-fix.html" in after
    for page in (after, before):
        assert f'<code data-side="source">{local}</code>' in page
        assert '<code data-side="destination">emu-gdrive:Photos</code>' in page
        run = re.search(r'<code id="run">([^<]+)</code>', page)
        assert run and f"verify {local} emu-gdrive:Photos --fix" in run.group(1)
        assert "<th>Source bytes</th><th>Destination bytes</th>" in page and "Local" not in page
    assert "(after --fix)" in after and "(before --fix)" in before
    assert "report.before-fix.html" in proc.stdout

    # remote vs remote: both sides are remotes, nothing is called local (a folder against itself proves
    # nothing from provenance, so it exits 1; the page is what is checked here)
    proc = _cli(env, tmp_path, "verify", "emu-gdrive:Photos", "emu-gdrive:Photos", "--report", "pair.html")
    pair = (tmp_path / "pair.html").read_text(encoding="utf-8")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert pair.count("remote, hashes from its API") == 2 and "Local" not in pair and "local folder" not in pair
    assert not (tmp_path / "pair.before-fix.html").exists()
