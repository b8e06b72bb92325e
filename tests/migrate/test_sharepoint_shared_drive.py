"""A SharePoint document library migrates into a Google shared drive and `verify` proves every copy.

The source remote names the library as a user would (`site = "contoso.sharepoint.com:/sites/Team"`,
`library = "Documents"`); the destination names the shared drive by its name (`shared_drive`). On the
emulator a library is a drive of its own (emulator/graph/sites.py) and a shared drive's items are
invisible without supportsAllDrives (emulator/drive/models.py), so the copies being found at all
shows the flags went on every call. The copies belong to the shared drive (driveId, no owner), and a
file's previous versions in the library arrive as revisions in the shared drive (--versions). The
shared drive then serves as a source, back into the library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.server import Emulator
from realism_run import Profile, kind_and_real, profiled_emulator

FILES = {"Projects/report.docx": b"docx " * 3000, "Projects/data/a.bin": bytes(range(256)) * 900,
         "Projects/data/empty.txt": b""}
OLDER = [b"first draft", b"second draft, longer"]  # previous versions of report.docx, oldest first


def _graph(emu: Emulator) -> Any:
    return next(m for m in emu.modules if getattr(m, "route_prefix", "") == "graph.").model


def _seed_library(emu: Emulator) -> str:
    graph = _graph(emu)
    site = graph.sites.add_site("contoso.sharepoint.com", "sites/Team", "Team")
    graph.sites.add_library(site.site_id, "Site Assets")  # another library, not to be picked
    lib = graph.sites.add_library(site.site_id, "Documents")
    projects, _ = graph.create_folder(lib.root_id, "Projects")
    data, _ = graph.create_folder(projects.id, "data")
    for body in OLDER:
        graph.create_file(projects.id, "report.docx", [body])
    for path, body in FILES.items():
        graph.create_file(projects.id if path.count("/") == 1 else data.id, path.rpartition("/")[2], [body])
    graph.create_file(graph.root_id, "not-in-the-library.txt", [b"x"])  # the user's own OneDrive
    return str(lib.drive_id)


def _config(emu: Emulator, path: Path) -> Path:
    sections = remote_sections(emu.describe())
    sp = {k: v for k, v in sections["onedrive"].items() if k != "drive_id"}
    sp.update(site="contoso.sharepoint.com:/sites/Team", library="documents")  # a name, in any case
    team = {**sections["gdrive"], "shared_drive": "Team Drive"}
    path.write_text(remotes_toml({"sp": sp, "team": team}, prefix=""))
    return path


@kind_and_real("drive.rate_limited")
def test_a_library_migrates_into_a_shared_drive_and_verify_proves_it(tmp_path: Path, emu_profile: Profile,
                                                                      request: pytest.FixtureRequest) -> None:
    with profiled_emulator(emu_profile, tmp_path / "emu", request) as emu:
        library_id = _seed_library(emu)
        drive = drive_model(emu)
        shared = drive.create_shared_drive("Team Drive")
        drive.create_shared_drive("Other Drive")
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(_config(emu, tmp_path / "remotes.toml"))}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], capture_output=True, text=True,
                                  env=env, timeout=300)

        journal = str(tmp_path / "journal.sqlite3")
        # the default sharing report runs too: it finds the new root through the journal, not Drive's
        # lagging search (realism profile)
        migrated = cli("migrate", "sp:/Projects", "team:Archive", "--journal", journal, "--versions", "5", "--json")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        report = tmp_path / "verify.jsonl"
        proc = cli("verify", "sp:/Projects", "team:Archive", "--report", str(report), "--journal", journal)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        statuses = {json.loads(line)["path"]: json.loads(line)["status"] for line in report.read_text().splitlines()}
        assert statuses == {p.removeprefix("Projects/"): "ok" for p in FILES}

        archive = [f for f in drive.children(shared.id) if f.name == "Archive"]
        assert len(archive) == 1 and archive[0].drive_id == shared.id
        copies = {f.name: f for f in drive.all_files() if f.drive_id == shared.id and not f.is_folder}
        assert set(copies) == {p.rpartition("/")[2] for p in FILES}
        for f in copies.values():
            resource = drive.resource(f)
            assert resource["driveId"] == shared.id and not resource["ownedByMe"] and "owners" not in resource
        assert not any(f.name == "not-in-the-library.txt" for f in drive.all_files())
        # the library's earlier versions of report.docx are revisions of its copy, the current one the head
        revisions = drive.revisions.of(copies["report.docx"])
        stored = [Path(drive.state.blob_path(r.blob)).read_bytes() for r in revisions]
        assert stored == [*OLDER, FILES["Projects/report.docx"]]
        assert all(r.keep_forever for r in revisions)

        # and back: the shared drive as a source, into another folder of the library
        back = cli("migrate", "team:Archive", "sp:/Back", "--journal", str(tmp_path / "back.sqlite3"), "-q",
                   "--permissions", "skip")
        assert back.returncode == 0, back.stdout + back.stderr
        graph = _graph(emu)
        lib_root = graph.sites.library(library_id).root_id
        for path, body in FILES.items():  # verify proves copies into Drive; here the bytes are compared
            item = graph.resolve(lib_root, "Back/" + path.removeprefix("Projects/"))
            stored = Path(graph.content_path(item)).read_bytes() if item.size else b""
            assert stored == body, path


def test_a_library_or_shared_drive_that_does_not_exist_is_a_one_line_error(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu", tls=True) as emu:
        _seed_library(emu)
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(_config(emu, tmp_path / "remotes.toml"))}
        run = [sys.executable, "-m", "driveferry.cli", "migrate", "sp:/Projects", "team:Archive",
               "--journal", str(tmp_path / "j.sqlite3")]
        proc = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2 and "no shared drive 'Team Drive'" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "j.sqlite3").exists()
        text = (tmp_path / "remotes.toml").read_text().replace('library = "documents"', 'library = "Docs"')
        (tmp_path / "remotes.toml").write_text(text)
        drive_model(emu).create_shared_drive("Team Drive")
        proc = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2 and "has no document library 'Docs'" in proc.stderr, proc.stderr
        assert "'Documents'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_full_shared_drive_stops_the_run_with_its_reason(tmp_path: Path) -> None:
    from driveferry.emulator.drive import shareddrives
    with Emulator(tmp_path / "emu", tls=True) as emu:
        _seed_library(emu)
        drive = drive_model(emu)
        shared = drive.create_shared_drive("Team Drive")
        shareddrives.set_item_limit(emu.state, 3)  # Archive, data and one file
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(_config(emu, tmp_path / "remotes.toml"))}
        proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "migrate", "sp:/Projects", "team:Archive",
                               "--journal", str(tmp_path / "j.sqlite3"), "--transfers", "1"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 3, proc.stdout + proc.stderr  # a stop, not a failure per file
        assert "teamDriveFileLimitExceeded" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
        assert sum(1 for f in drive.all_files() if f.drive_id == shared.id and f.id != shared.id) == 3
