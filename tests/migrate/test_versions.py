"""--versions N: each file's last N previous versions become Drive revisions of its copy, oldest first,
the current content the head; every revision's bytes equal the source version's, each kept forever.

The emulator keeps Graph versions on every replace and makes a Drive revision per content upload
(emulator/graph/versions.py, emulator/drive/revisions.py); the checks download each revision from Drive
and compare bytes and SHA-256 with the seeded versions, so a wrong order, a missing or a twin revision
fails. A run stopped between two versions continues with the next one (the copy's `df_hist` mark).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from world import World, make_world, read_all, summary_of

from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.seed import content_bytes, version_blocks
from driveferry.units import parse_size
from realism_run import REAL, Profile

CHUNK = 1280 * 1024
FILES = [  # (path, size, previous versions)
    ("Projects/plan.docx", "40K", 2),
    ("Projects/big.bin", str(CHUNK + 5), 4),  # larger than a chunk: sessions of several chunks
    ("Projects/notes/n.txt", "3K", 3),
    ("Projects/plain.bin", "7K", 0),
]
SPEC: dict[str, Any] = {"seed": 23, "onedrive": {"files": [
    {"path": p, "size": s, **({"versions": n} if n else {})} for p, s, n in FILES]}}


@pytest.fixture()
def vworld(tmp_path: Path, request: pytest.FixtureRequest, emu_profile: Profile) -> Iterator[World]:
    yield from make_world(tmp_path, SPEC, emu_profile, request)


def _version(path: str, size: str, n: int, k: int) -> bytes:
    return b"".join(version_blocks(23, "onedrive", path, k, parse_size(size), n))


def _copies(world: World, rel: str) -> list[Any]:
    """The Drive copies of `rel` under Archive, as the provider reports them by id: found through the
    emulator's model, since Drive's search (every listing) may still lag behind them on [real]."""
    drive = drive_model(world.emu)
    found = drive.find_by_path(f"Archive/{rel}")
    by_id = world.provider("gdrive").features.by_id
    return [by_id.entry(f.id, "Archive/" + rel.rpartition("/")[0]) for f in found if not f.trashed]


def _history(world: World, rel: str) -> list[tuple[bytes, bool]]:
    """The Drive copy's revisions, oldest first: (bytes downloaded, keepForever)."""
    gd = world.provider("gdrive")
    [entry] = _copies(world, rel)
    writer = gd.features.revisions
    out = []
    for rev in writer.revisions(entry):
        data = b"".join(writer.open_revision(entry, rev.id))
        assert rev.md5 == hashlib.md5(data).hexdigest() and rev.size == len(data)
        out.append((data, rev.keep_forever))
    assert out[-1][0] == read_all(gd, entry)  # the head is the file's content
    return out


def _expected(keep: int) -> dict[str, list[bytes]]:
    out = {}
    for path, size, n in FILES:
        current = content_bytes(23, "onedrive", path, parse_size(size))
        previous = [_version(path, size, n, k) for k in range(n)][-keep:] if keep else []
        out[path.removeprefix("Projects/")] = [*previous, current]
    return out


def test_versions_become_revisions_in_order_each_proven_and_kept(vworld: World) -> None:
    dry = summary_of(vworld.cli(*vworld.migrate_args("--versions", "3", "--dry-run", "--json"), check=True))
    want = _expected(3)
    extra = sum(len(b) for rel, revs in want.items() for b in revs[:-1])
    assert (dry["version_files"], dry["versions_copied"], dry["version_bytes"]) == (3, 2 + 3 + 3, extra)
    proc = vworld.cli(*vworld.migrate_args("--versions", "3", "--chunk-size", str(CHUNK), "--json"), check=True)
    summary = summary_of(proc)
    assert summary["failed"] == 0 and summary["copied"] == len(FILES) and summary["unverified"] == 0
    assert (summary["version_files"], summary["versions_copied"], summary["version_bytes"]) == (3, 8, extra)
    for rel, revisions in want.items():
        got = _history(vworld, rel)
        assert [hashlib.sha256(d).hexdigest() for d, _ in got] == [hashlib.sha256(b).hexdigest() for b in revisions]
        assert [d for d, _ in got] == revisions, rel
        # none left to Drive's 30-day purge (a file without history is its head, which is never purged)
        assert all(kept for _, kept in got) or len(got) == 1, rel
    # every byte of every version went through the upload budget's ledger too
    assert vworld.upload_bytes() == sum(len(b) for revs in want.values() for b in revs)
    again = summary_of(vworld.cli(*vworld.migrate_args("--versions", "3", "--json"), check=True))
    assert again["copied"] == 0 and again["failed"] == 0 and again["versions_copied"] == 0
    assert [len(_history(vworld, rel)) for rel in want] == [len(revs) for revs in want.values()]




# under the realism profile only (the [kind] runs above cover the plain path): revision uploads and
# keepForever updates meet Drive's write limit, and the copies are found by id, not by Drive's lagging search
@pytest.mark.parametrize("emu_profile", [Profile(REAL, ("drive.rate_limited",))], ids=[REAL], indirect=True)
def test_a_run_stopped_between_versions_continues_with_the_next(vworld: World) -> None:
    # --max-transfer admits big.bin (1.31 MB) and its oldest kept version (0.52 MB), then stops the run
    # (exit 3) before the next version (0.79 MB)
    args = vworld.migrate_args("--versions", "3", "--chunk-size", str(CHUNK), "--transfers", "1",
                               "--include", "big.bin", "--max-transfer", "2000000")
    first = vworld.cli(*args)
    assert first.returncode == 3, first.stdout + first.stderr
    [partial] = _copies(vworld, "big.bin")
    assert partial.properties.get("df_hist") == "1/3"
    vworld.cli(*vworld.migrate_args("--versions", "3", "--chunk-size", str(CHUNK), "--include", "big.bin"),
               check=True)
    [done] = _copies(vworld, "big.bin")
    assert done.id == partial.id  # the same file, continued: no twin, no revision twice
    assert [d for d, _ in _history(vworld, "big.bin")] == _expected(3)["big.bin"]


def test_versions_refused_where_they_cannot_be_kept_and_zero_makes_one_revision(vworld: World) -> None:
    proc = vworld.cli(*vworld.migrate_args("--versions", "500"))
    assert proc.returncode == 2 and "--versions must be between 0 and 199" in proc.stderr
    assert "Traceback" not in proc.stderr
    back = vworld.cli("migrate", "emu-gdrive:Archive", "emu-onedrive:/Back", "--versions", "2",
                      "--journal", str(vworld.dir / "back.sqlite3"))
    assert back.returncode == 2 and "emu-gdrive keeps no file versions driveferry can read" in back.stderr
    assert not (vworld.dir / "back.sqlite3").exists()
    # --versions 0 (the default): one revision, the current content, for files with history too
    vworld.cli(*vworld.migrate_args("--include", "plan.docx", "--include", "n.txt"), check=True)
    for rel in ("plan.docx", "notes/n.txt"):
        assert [d for d, _ in _history(vworld, rel)] == _expected(0)[rel]


def test_journal_tokens_of_a_history_name_the_copy_and_keep_the_session() -> None:
    from driveferry.migrate.versions import _history_token
    session = '{"v": 1, "uri": "https://x/upload?upload_id=1", "size": 9}'  # a provider's own token
    assert _history_token(None) == (None, None)
    assert _history_token(session) == (None, session)
    assert _history_token('{"df_hist": "F1"}') == ("F1", None)
    assert _history_token(json.dumps({"df_hist": "F1", "session": session})) == ("F1", session)
