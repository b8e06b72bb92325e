"""Fixtures for end-to-end migrations: a seeded emulator, a remotes file, and a CLI runner."""

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

from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.seed import content_bytes, seed_emulator
from driveferry.emulator.server import Emulator
from driveferry.providers.registry import provider_from_section
from emulator_client import EmulatorClient
from realism_run import KIND_PROFILE, Profile, profiled_emulator, realism_counters


@dataclass
class World(EmulatorClient):
    emu: Emulator
    dir: Path
    config: Path
    journal: Path
    spec: dict[str, Any]
    profile: Profile = KIND_PROFILE

    def realism(self) -> dict[str, int]:
        """The realism counters fired so far (empty on a kind emulator)."""
        return realism_counters(self.emu)

    def counters(self) -> dict[str, Any]:
        return dict(self.control("GET", "/counters"))

    def upload_bytes(self) -> int:
        """Content bytes Drive stored from uploads (session PUTs and one-request multipart uploads; not
        their JSON metadata parts): the emulator's daily-cap ledger, which counts content only."""
        rows = self.emu.state.query("SELECT COALESCE(SUM(nbytes), 0) AS n FROM drive_upload_seconds")
        return int(rows[0]["n"])

    def provider(self, cloud: str) -> Any:
        sections = remote_sections(self.emu.describe())
        return provider_from_section(cloud, sections[cloud], self.dir / "state")

    def cli(self, *args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "driveferry.cli", *args]
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(self.config)}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def migrate_args(self, *extra: str) -> list[str]:
        quiet = [] if "--json" in extra else ["-q"]
        return ["migrate", "emu-onedrive:/Projects", "emu-gdrive:Archive", "--journal", str(self.journal),
                *quiet, *extra]

    def expected(self) -> dict[str, bytes]:
        """Seeded OneDrive file contents under Projects/, by path relative to Projects/."""
        seed = int(self.spec.get("seed", 0))
        out = {}
        for f in self.spec["onedrive"].get("files", []):
            from driveferry.units import parse_size
            size = parse_size(f.get("size", 0))
            out[f["path"].removeprefix("Projects/")] = content_bytes(seed, "onedrive", f["path"], size,
                                                                     f.get("content", "random"))
        return out


def make_world(tmp_path: Path, spec: dict[str, Any], profile: Profile = KIND_PROFILE,
               request: pytest.FixtureRequest | None = None) -> Iterator[World]:
    """A seeded emulator (kind, or under `profile`'s realism: then its expected counters are checked when
    the world closes) and a remotes file for it (with the emulator's `time_scale`, if any)."""
    with profiled_emulator(profile, tmp_path / "emu", request) as emu:
        seed_emulator(emu, spec)
        config = tmp_path / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())))
        yield World(emu, tmp_path, config, tmp_path / "journal.sqlite3", spec, profile)


def drive_tree(world: World) -> dict[str, list[Any]]:
    """Every file under gdrive:Archive by relative path (a list: Drive allows duplicates)."""
    from driveferry.providers.ops import walk
    gd = world.provider("gdrive")
    root = gd.stat("Archive")
    out: dict[str, list[Any]] = {}
    for found in walk(gd, root, include_folders=False):
        if found.entry.kind.value == "file":
            out.setdefault(found.rel_path, []).append(found.entry)
    return out


def read_all(provider: Any, entry: Any) -> bytes:
    return b"".join(provider.open_range(entry, 0, entry.size))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def summary_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            if data.get("event") == "summary":
                return dict(data)
    raise AssertionError(f"no summary in output:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture()
def world(tmp_path: Path, request: pytest.FixtureRequest, emu_profile: Profile) -> Iterator[World]:
    """A world seeded with the test's spec (indirect parameter; SMALL by default) on `emu_profile`."""
    spec = getattr(request, "param", None) or SMALL
    yield from make_world(tmp_path, spec, emu_profile, request)


SMALL: dict[str, Any] = {
    "seed": 5,
    "onedrive": {
        "files": [
            {"path": "Projects/readme.txt", "size": "2K", "content": "text"},
            {"path": "Projects/data/a.bin", "size": "3M"},
            {"path": "Projects/data/odd.bin", "size": 1310721},  # one byte over a 1280 KiB chunk
            {"path": "Projects/data/zeros.img", "size": "1M", "content": "zeros"},
            {"path": "Projects/empty.txt", "size": 0},
            {"path": "Projects/Ünïcødé/café.txt", "size": "10K"},
            {"path": "Projects/Ünïcødé/cafe\u0301-nfd.txt", "size": "11K"},
            {"path": "Projects/deep/1/2/3/4/5/6/7/8/leaf.bin", "size": "100K"},
            {"path": "Projects/" + "n" * 200 + ".bin", "size": "5K"},
        ],
        "bulk": [{"dir": "Projects/many", "count": 30, "size": "1K", "max_size": "200K"}],
        "notebooks": ["Projects/Notebooks/Team notes"],
    },
}
