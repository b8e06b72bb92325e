"""`migrate` then `verify` at once, while Drive's search still lags behind what the migration made.

Drive's files.list with q is eventually consistent: a new folder was not found by search for up to
minutes, while files.get by id sees it at once (api-notes Part C §20, rclone#2485). A search by path and
a listing by parent both go through q, so right after a migration they cannot see the copies; verify
finds them by the ids the migration journal recorded (verify/recorded.py).

The [real] variants of the other verify tests cannot meet this: on a 200x clock the second or so between
two CLI runs is minutes of emulated time, past any realistic lag. Here the clock is real and the lag 120 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from driveferry.emulator.realism import Realism, Settings
from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.seed import seed_emulator
from driveferry.emulator.server import Emulator

SPEC = {
    "seed": 8,
    "onedrive": {"files": [{"path": "Projects/a.txt", "size": "2K", "content": "text"},
                           {"path": "Projects/sub/b.bin", "size": "40K"}]},
}


def test_verify_right_after_migrate_sees_every_copy(tmp_path: Path) -> None:
    realism = Realism(Settings.from_dict({"drive": {"search_lag_new_s": 120.0}}))
    with Emulator(tmp_path / "emu", tls=True, realism=realism) as emu:
        seed_emulator(emu, SPEC)
        config = tmp_path / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())))
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(config)}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], capture_output=True,
                                  text=True, env=env, timeout=120)

        # the default sharing report too: it finds the new root through the journal, like verify
        migrated = cli("migrate", "emu-onedrive:/Projects", "emu-gdrive:Archive", "-q",
                       "--journal", str(tmp_path / "journal.sqlite3"))
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        report = tmp_path / "verify.jsonl"
        proc = cli("verify", "emu-onedrive:/Projects", "emu-gdrive:Archive", "--report", str(report),
                   "--journal", str(tmp_path / "journal.sqlite3"))
        assert emu.realism.counters().get("drive.lag_hidden", 0) > 0  # the lag was met
        assert proc.returncode == 0, proc.stdout + proc.stderr
        statuses = {json.loads(line)["path"]: json.loads(line)["status"] for line in report.read_text().splitlines()}
        assert statuses == {"a.txt": "ok", "sub/b.bin": "ok"}
