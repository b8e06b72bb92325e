"""Provenance any credential can read: a re-run or a verify from another OAuth client id finds it.

Drive keeps `appProperties` private to the OAuth client that wrote them; `properties` are shared by every
app (api-notes Part C §20). The emulator's realism profile keys appProperties by client id, and its
Google token endpoint issues tokens per client, so the second client here is a second app for the same
user (Colab's own client, a desktop client): it must skip every proven copy with zero bytes uploaded and
verify must prove them. Copies made before provenance moved to `properties` keep working too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from world import World, summary_of

from driveferry.emulator.remotes import remote_sections, remotes_toml

OTHER_CLIENT = "987654321098-colab.apps.googleusercontent.com"


def _files_copied(world: World) -> int:
    summary = summary_of(world.cli(*world.migrate_args("--json"), check=True))
    assert summary["failed"] == 0 and summary["copied"] > 30, summary
    return int(summary["copied"])


def _as_other_client(world: World) -> Path:
    """A remotes file whose Drive remote signs in as another OAuth client of the same user."""
    other = world.control("POST", "/identity/google/clients", {"client_id": OTHER_CLIENT})
    sections = remote_sections(world.emu.describe())
    sections["gdrive"].update(client_id=other["client_id"], client_secret=other["client_secret"],
                              refresh_token=other["refresh_token"])
    path = world.dir / "remotes-other.toml"
    path.write_text(remotes_toml(sections))
    return path


def _with_config(world: World, config: Path) -> World:
    return World(world.emu, world.dir, config, world.dir / "journal-other.sqlite3", world.spec)


def test_another_oauth_client_skips_every_proven_copy_and_verify_proves_them(world: World) -> None:
    world.control("PUT", "/realism", {"drive": {"private_app_properties": True}})
    copied = _files_copied(world)
    other = _with_config(world, _as_other_client(world))
    before = world.upload_bytes()
    # a fresh journal: what is on Drive is found by its provenance alone, as from another machine
    summary = summary_of(other.cli(*other.migrate_args("--json"), check=True))
    assert (summary["copied"], summary["skipped"], summary["failed"]) == (0, copied, 0), summary
    assert world.upload_bytes() == before  # zero bytes uploaded
    report = world.dir / "verify.jsonl"
    proc = other.cli("verify", "emu-onedrive:/Projects", "emu-gdrive:Archive", "--report", str(report), "-q")
    statuses = [json.loads(line)["status"] for line in report.read_text().splitlines()]
    assert proc.returncode == 1, proc.stdout + proc.stderr  # 1: the OneNote notebook cannot be proven
    assert statuses.count("ok") == copied and set(statuses) == {"ok", "unverifiable"}, statuses


def _drive_model(world: World) -> Any:
    return next(m for m in world.emu.modules if getattr(m, "route_prefix", "") == "drive.").model


def test_copies_with_provenance_in_app_properties_still_count(world: World) -> None:
    """A copy made before this change carries its provenance in appProperties: still proven, skipped."""
    copied = _files_copied(world)
    drive = _drive_model(world)
    moved = 0
    for f in list(drive.all_files()):
        if "df_src_id" in (f.properties or {}):
            props = dict(f.properties)
            drive.update(f.id, {"properties": {k: None for k in props}, "appProperties": props,
                                "modifiedTime": f.modified})
            moved += 1
    assert moved == copied
    before = world.upload_bytes()
    other = World(world.emu, world.dir, world.config, world.dir / "journal-2.sqlite3", world.spec)
    summary = summary_of(other.cli(*other.migrate_args("--json"), check=True))
    assert (summary["copied"], summary["skipped"]) == (0, copied), summary
    assert world.upload_bytes() == before
