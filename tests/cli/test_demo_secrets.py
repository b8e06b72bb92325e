"""`driveferry demo` leaves no secrets behind: no token caches under ~/.local/state (nor anything else in
$HOME), no remotes file in its report folder, no credential in any file it keeps, and its private
temporary folder is gone at exit. Its closing line counts the whole migration, every run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

# what the emulator's secrets look like (identity_google.py, identity_microsoft.py): never in a kept file
SECRET = re.compile(r"GOCSPX-|1//emu-|client_secret|refresh_token|access_token|BEGIN PRIVATE KEY")


def test_demo_keeps_reports_only(tmp_path: Path) -> None:
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "DRIVEFERRY_"))} | {"HOME": str(home), "TMPDIR": str(tmp)}
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "demo", "--quick"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert list(home.rglob("*")) == []  # no ~/.local/state tokens, no ~/.cache hash cache
    kept = list(tmp.iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("driveferry-demo-")  # the private folder is gone
    names = sorted(p.name for p in kept[0].iterdir())
    assert names == ["fuse-report.html", "migrate-report.json", "migration-report.html", "migration-verify.jsonl"]
    for path in kept[0].iterdir():
        assert not SECRET.search(path.read_text(encoding="utf-8")), path
    # the closing line: the whole migration (the killed run and the resume), not only the last run's share
    line = next(x for x in proc.stdout.splitlines() if x.strip().startswith("migrated "))
    m = re.search(r"migrated (\d+) of (\d+) files \(100\.0%\) in (\d+) runs \(the last run copied (\d+)", line)
    assert m and m.group(1) == m.group(2), line
    assert m.group(3) == "1" or int(m.group(4)) < int(m.group(1)), line  # killed: the resume copied the rest


def test_closing_line_counts_the_whole_migration() -> None:
    from driveferry.commands.demo import migration_outcome
    run = {"copied": 2, "skipped": 0, "failed": 0, "unsupported": 1}
    whole = {"files_done": 291, "files": 291, "percent": 100.0, "runs": 2, "files_failed": 0,
             "files_unsupported": 1}
    assert migration_outcome(run, whole) == ("migrated 291 of 291 files (100.0%) in 2 runs (the last run copied 2, "
                                             "0 were already there); 0 failed, 1 reported as not copyable (OneNote)")
