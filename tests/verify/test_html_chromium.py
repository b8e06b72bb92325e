"""The HTML report of a real `driveferry verify` run renders in headless Chromium with the right counts.

Chromium reads the self-contained page from a file:// URL (no network: the flags below stop its
background traffic, and a fresh profile keeps runs independent). We take a screenshot (the page
renders: a non-trivial PNG) and read the DOM after the page's JS has run, and check the per-status
counts, the total and the file rows against what the test set up.

Skips without a chromium binary, except under CI=true, where it fails: scripts/test.sh installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.server import Emulator

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("no chromium binary under CI=true; scripts/test.sh should have installed the Debian package")
    pytest.skip("no chromium binary (install the Debian package `chromium`, or run scripts/test.sh as root)")


def _browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


def _report(emulator: Emulator, tmp_path: Path) -> Path:
    """A verify report with 3 ok, 2 zero_filled_remote, 1 missing_remote and 1 missing_local files."""
    model = drive_model(emulator)
    top = model.create_folder(f"html-{tmp_path.name}")
    local = tmp_path / "local"
    local.mkdir()
    old = 1_600_000_000
    for i in range(3):
        data = f"good file {i}\n".encode() * 50
        (local / f"ok-{i}.txt").write_bytes(data)
        model.create_file(f"ok-{i}.txt", [data], top.id)
    for i in range(2):
        data = os.urandom(5000)
        (local / f"zero-{i}.bin").write_bytes(data)
        model.create_file(f"zero-{i}.bin", [bytes(5000)], top.id)
    (local / "<img src=x onerror=alert(1)>.bin").write_bytes(b"only here")  # escaped, never executed
    model.create_file("remote-only.txt", [b"remote"], top.id)
    for p in local.iterdir():
        os.utime(p, (old, old))
    config = tmp_path / "remotes.toml"
    config.write_text(remotes_toml(remote_sections(emulator.describe())))
    out = tmp_path / "report.html"
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(config), "DRIVEFERRY_HASH_CACHE": str(tmp_path / "c.sqlite3")}
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "verify", str(local), f"emu-gdrive:{top.name}",
                           "-q", "--report", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return out


def test_html_report_renders_with_counts(emulator: Emulator, tmp_path: Path) -> None:
    binary = _chromium()
    report = _report(emulator, tmp_path)
    url = report.resolve().as_uri()
    shot = tmp_path / "report.png"
    taken = _browser(binary, tmp_path / "profile1", f"--screenshot={shot}", "--window-size=1280,1000", url)
    assert shot.is_file(), taken.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000  # a rendered page, not a blank one
    dumped = _browser(binary, tmp_path / "profile2", "--dump-dom", url)
    dom = dumped.stdout
    assert "driveferry verify report" in dom, dumped.stderr[-2000:]

    def count(status: str) -> int:
        m = re.search(rf'id="count-{status}"[^>]*>(\d+)<', dom)
        assert m, status
        return int(m.group(1))

    expected = {"ok": 3, "zero_filled_remote": 2, "missing_remote": 1, "missing_local": 1, "size_mismatch": 0,
                "stale_remote": 0, "content_mismatch": 0, "pending_sync": 0}
    assert {s: count(s) for s in expected} == expected
    total = re.search(r'data-total-count="(\d+)"', dom)
    assert total and int(total.group(1)) == 7
    rows = re.findall(r'<tr data-status="([a-z_]+)"', dom)
    assert sorted(rows) == sorted(s for s, n in expected.items() for _ in range(n))
    # The page's JS ran (the filter counter is filled in by it) and the hostile name stayed text.
    shown = re.search(r'id="shown-count">(\d+)<', dom)
    assert shown and int(shown.group(1)) == 7
    assert "&lt;img src=x onerror=alert(1)&gt;.bin" in dom and "<img src" not in dom
