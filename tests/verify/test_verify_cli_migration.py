"""`driveferry verify SRC DST` after a real `migrate` (OneDrive emulator -> Drive emulator): proven from
metadata and provenance alone (the emulator's counters show no download), a destination whose content
changed is flagged (and only it), and `--download` settles a copy that carries no provenance.

The proof from metadata and the --download settlement also run [real] (tests/realism_run.py): on a tree
migrated under the realism profile, then verified under it. The other two change the destination through
the emulator's model and add nothing the realism could break.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.drive.hashing import write_blob
from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.seed import content_bytes, seed_emulator
from driveferry.emulator.server import Emulator
from realism_run import Profile, kind_and_real

SPEC: dict[str, Any] = {
    "seed": 21,
    "onedrive": {
        "files": [
            {"path": "Projects/readme.txt", "size": "2K", "content": "text"},
            {"path": "Projects/data/a.bin", "size": "300K"},
            {"path": "Projects/data/zeros.img", "size": "64K", "content": "zeros"},
            {"path": "Projects/Ünïcødé/café.txt", "size": "10K"},
        ],
        "bulk": [{"dir": "Projects/many", "count": 25, "size": "1K", "max_size": "40K"}],
    },
}
DOWNLOAD_ROUTES = ("drive.files.media", "graph.download", "graph.content")


@dataclass
class Migrated:
    emu: Emulator
    tmp: Path
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], capture_output=True, text=True,
                              env=self.env, timeout=300)

    def control(self, method: str, path: str) -> Any:
        with requests.Session() as s:
            s.trust_env = False
            r = s.request(method, self.emu.base_url + "/_emulator" + path, verify=str(self.emu.ca_file), timeout=30)
            r.raise_for_status()
            return r.json()

    def downloads(self) -> dict[str, int]:
        c = self.control("GET", "/counters")
        return {r: int(c["bytes_out"].get(r, 0)) + int(c["requests"].get(r, 0)) for r in DOWNLOAD_ROUTES}

    def verify(self, report: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        out = self.tmp / report
        proc = self.cli("verify", "emu-onedrive:/Projects", "emu-gdrive:Archive", "--report", str(out), *extra)
        assert proc.returncode in (0, 1), proc.stderr
        return proc, {json.loads(line)["path"]: json.loads(line)["status"] for line in out.read_text().splitlines()}


@pytest.fixture()
def migrated(tmp_path: Path, emu_profile: Profile) -> Iterator[Migrated]:
    """A migrated tree; under [real] the migration itself must have met the realism (checked before the
    counters are reset, so each test's counters then show only its own verify runs)."""
    with emu_profile.emulator(tmp_path / "emu") as emu:
        seed_emulator(emu, SPEC)
        config = tmp_path / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())))
        m = Migrated(emu, tmp_path, {**os.environ, "DRIVEFERRY_CONFIG": str(config)})
        proc = m.cli("migrate", "emu-onedrive:/Projects", "emu-gdrive:Archive", "-q",
                     "--journal", str(tmp_path / "journal.sqlite3"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        emu_profile.check(emu)
        m.control("POST", "/counters/reset")
        yield m


@kind_and_real("drive.rate_limited")
def test_migration_proven_from_metadata_without_download(migrated: Migrated) -> None:
    proc, statuses = migrated.verify("ok.jsonl")
    assert proc.returncode == 0, proc.stdout
    assert len(statuses) == 29 and set(statuses.values()) == {"ok"}
    assert migrated.downloads() == dict.fromkeys(DOWNLOAD_ROUTES, 0)


def test_changed_destination_is_flagged_and_only_it(migrated: Migrated) -> None:
    model = drive_model(migrated.emu)
    [target] = model.find_by_path("Archive/data/a.bin")
    other = bytes(b ^ 1 for b in content_bytes(21, "onedrive", "Projects/data/a.bin", 300 * 1024))
    # New bytes of the same size: Drive recomputes md5/sha256, provenance still records the original's.
    model.update(target.id, {}, content=write_blob(migrated.emu.state.new_blob_path(), [other]))
    proc, statuses = migrated.verify("bad.jsonl")
    assert proc.returncode == 1
    assert {p: s for p, s in statuses.items() if s != "ok"} == {"data/a.bin": "content_mismatch"}
    assert migrated.downloads() == dict.fromkeys(DOWNLOAD_ROUTES, 0)


@kind_and_real("drive.rate_limited")
def test_download_settles_a_copy_without_provenance(migrated: Migrated) -> None:
    model = drive_model(migrated.emu)
    [old] = model.find_by_path("Archive/readme.txt")
    model.delete(old.id)
    data = content_bytes(21, "onedrive", "Projects/readme.txt", 2048, "text")
    model.create_file("readme.txt", [data], old.parent or "root")  # same bytes, no provenance
    proc, statuses = migrated.verify("noprov.jsonl")
    assert proc.returncode == 1 and statuses["readme.txt"] == "unverifiable"
    assert migrated.downloads() == dict.fromkeys(DOWNLOAD_ROUTES, 0)
    proc, statuses = migrated.verify("downloaded.jsonl", "--download")
    assert proc.returncode == 0, proc.stdout
    assert set(statuses.values()) == {"ok"}
    assert sum(migrated.downloads().values()) > 0  # only now, and only because it was asked for


def test_silent_storage_corruption_is_beyond_metadata(migrated: Migrated) -> None:
    """POST /_emulator/drive/corrupt flips stored bytes while Drive keeps reporting the old md5/sha256:
    a proof from metadata trusts the hashes the cloud reports, so it cannot see this (documented limit);
    the bytes really differ (a download shows it)."""
    model = drive_model(migrated.emu)
    [target] = model.find_by_path("Archive/data/a.bin")
    with requests.Session() as s:
        s.trust_env = False
        r = s.post(migrated.emu.base_url + "/_emulator/drive/corrupt", json={"file_id": target.id, "offset": 10},
                   verify=str(migrated.emu.ca_file), timeout=30)
        r.raise_for_status()
    proc, statuses = migrated.verify("corrupt.jsonl")
    assert proc.returncode == 0 and statuses["data/a.bin"] == "ok"
    path = model.blob_path(model.get(target.id))
    assert path is not None
    assert hashlib.md5(path.read_bytes()).hexdigest() != model.get(target.id).md5
