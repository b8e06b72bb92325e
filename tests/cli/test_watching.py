"""Watching a run without a terminal: migrate prints `progress:` lines (every --progress-interval and
once at the end) and never a bar; verify's hashing bar stays off redirected stderr; --dry-run lists
what it would copy with totals; a run over a finished tree names the whole migration beside its share.
Output is asserted by its lines, never by how long anything took."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

KiB = 1024
SIZES = {"a/one.bin": 300 * KiB, "a/two.bin": 200 * KiB, "three.txt": 5 * KiB}
LINE = re.compile(r"progress: (\d+)/(\d+) files, [\d.]+ [KMG]?i?B of [\d.]+ [KMG]?i?B \(([\d.]+)%\), "
                  r"[\d.]+ [KMG]?i?B/s, ETA (unknown|(\d+d )?(\d+h )?\d+m \d+s)")


def _tree(root: Path) -> None:
    for rel, size in SIZES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(os.urandom(size))


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # stdout and stderr are pipes: what a log file, a notebook cell or nohup gets
    return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_progress_lines_on_a_pipe_and_whole_migration_totals(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    dry = _cli(tmp_path, "migrate", "src", "dst", "--journal", "j.sqlite3", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listed = re.findall(r"^would copy: (\S+) \(", dry.stdout, re.M)
    assert sorted(listed) == sorted(SIZES)
    total = sum(SIZES.values())
    assert f"would copy 3 files, 505.0 KiB ({total} bytes)" in dry.stdout
    assert not (tmp_path / "dst").exists() and not (tmp_path / "j.sqlite3").exists()

    run = _cli(tmp_path, "migrate", "src", "dst", "--journal", "j.sqlite3", "--progress-interval", "0.01s")
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr and "it/s" not in run.stderr  # no tqdm bar in a pipe
    assert "to copy: 3 files, 505.0 KiB" in run.stderr
    lines = [m for m in (LINE.fullmatch(x) for x in run.stderr.splitlines() if x.startswith("progress:"))]
    assert lines and all(lines), run.stderr  # every progress line has the documented shape
    done = [int(m.group(1)) for m in lines if m]
    assert done == sorted(done)  # files done never goes back
    last = lines[-1]
    assert last is not None and (last.group(1), last.group(2), last.group(3)) == ("3", "3", "100.0")
    assert "this run: copied 3, skipped 0" in run.stdout
    assert "whole migration (1 run): 3/3 files done" in run.stdout

    again = _cli(tmp_path, "migrate", "src", "dst", "--journal", "j.sqlite3", "-q")
    assert again.returncode == 0 and again.stderr == ""  # quiet: no progress lines at all
    assert "this run: copied 0, skipped 0" in again.stdout
    assert "whole migration (2 runs): 3/3 files done, 505.0 KiB of 505.0 KiB (100.0%)" in again.stdout
    for rel in SIZES:
        assert (tmp_path / "dst" / rel).read_bytes() == (tmp_path / "src" / rel).read_bytes()


def test_bad_progress_interval_is_refused_before_anything(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    for bad in ("0", "soon"):
        proc = _cli(tmp_path, "migrate", "src", "dst", "--journal", "j.sqlite3", "--progress-interval", bad)
        assert proc.returncode == 2 and "--progress-interval" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "j.sqlite3").exists() and not (tmp_path / "dst").exists()


def test_verify_bar_stays_off_redirected_stderr(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    (tmp_path / "copy").mkdir()
    config = tmp_path / "remotes.toml"
    config.write_text(f'[remotes.copy]\ntype = "local"\nroot = "{tmp_path / "copy"}"\n', encoding="utf-8")
    assert _cli(tmp_path, "migrate", "src", "copy:/", "--journal", "j.sqlite3", "-q", "--config",
                str(config)).returncode == 0
    proc = _cli(tmp_path, "verify", "src", "copy:/", "--config", str(config), "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout and "hashing" not in proc.stderr and "\r" not in proc.stderr


def test_progress_figures_from_a_fake_clock() -> None:
    from driveferry.commands.progress import Tracker, progress_line
    now = [100.0]
    t = Tracker(clock=lambda: now[0])
    t.remaining(4, 1000)
    assert t.figures()["eta_s"] is None  # nothing sent yet: no rate, no ETA
    now[0] = 110.0
    t.advance(500)
    t.finished("copied")
    t.found(250)  # a file found already on the destination: counted done, not sent
    t.finished("skipped")
    t.finished("failed")
    f = t.figures()
    assert (f["files_done"], f["files_failed"], f["bytes_done"], f["rate_bytes_per_s"], f["eta_s"]) == \
        (2, 1, 750, 50.0, 5.0)
    t.quota_wait(3600)
    now[0] = 120.0
    line = progress_line(t.figures())
    assert line == ("progress: 2/4 files, 750 B of 1000 B (75.0%), 25 B/s, ETA 0m 10s, 1 failed; "
                    "waiting 59m 50s for the daily upload quota"), line
