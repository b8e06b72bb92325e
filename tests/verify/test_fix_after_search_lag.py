"""`verify --fix` re-verifies what it just uploaded while Drive's listing still lags behind it.

Drive's listing by parent is eventually consistent: a new file or folder is missing from files.list for a
while, while files.get by id sees it at once (api-notes Part C §20, rclone#2485). The re-verify after
--fix lists the remote again; it must find the copies it just made by their ids (verify/fix.Uploaded),
not report them missing_remote. A CI run of the [real] lazysync test met this once (a file just fixed
was reported missing); here the clock is real and the lag 120 s, so every new item is hidden.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.generate import content_bytes
from driveferry.emulator.realism import Settings
from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.seed import seed_emulator
from driveferry.emulator.server import Emulator

SPEC = {"seed": 3, "gdrive": {"files": [{"path": "Downloads/keep.bin", "size": "10K"},
                                        {"path": "Downloads/bad.bin", "size": "20K", "content": "zeros"}]}}


def _statuses(report: Path) -> dict[str, str]:
    return {json.loads(line)["path"]: json.loads(line)["status"] for line in report.read_text().splitlines()}


def test_fix_then_reverify_finds_new_copies_hidden_from_listings(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu", tls=True) as emu:
        seed_emulator(emu, SPEC)  # seeded before the lag: the first pass lists them
        emu.realism.replace(Settings.from_dict({"drive": {"search_lag_new_s": 120.0}}))
        local = tmp_path / "Downloads"
        (local / "new" / "sub").mkdir(parents=True)
        (local / "keep.bin").write_bytes(content_bytes(3, "gdrive", "Downloads/keep.bin", 10 * 1024))
        good = {"bad.bin": os.urandom(20 * 1024), "new/sub/missing.bin": os.urandom(30 * 1024)}
        for rel, data in good.items():
            (local / rel).write_bytes(data)
        day_ago = time.time() - 86400  # past verify's grace period: not pending_sync
        for f in local.rglob("*.bin"):
            os.utime(f, (day_ago, day_ago))
        config = tmp_path / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())))
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(config),
               "DRIVEFERRY_HASH_CACHE": str(tmp_path / "hashcache.sqlite3")}
        report = tmp_path / "fixed.jsonl"
        proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "verify", str(local), "emu-gdrive:Downloads",
                               "--fix", "-q", "--report", str(report)], capture_output=True, text=True, env=env,
                              timeout=120)
        assert sum(line.startswith("fixed: ") for line in proc.stdout.splitlines()) == 2, proc.stdout
        assert emu.realism.counters().get("drive.lag_hidden", 0) > 0  # the lag was met
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert _statuses(report) == {"bad.bin": "ok", "keep.bin": "ok", "new/sub/missing.bin": "ok"}
        model = drive_model(emu)
        for rel, data in good.items():  # one live copy, the local bytes (the zero-filled one was removed)
            live = [f for f in model.find_by_path("Downloads/" + rel) if not model.is_trashed(f)]
            assert len(live) == 1 and live[0].size == len(data), rel
            assert live[0].md5 == hashlib.md5(data).hexdigest(), rel
