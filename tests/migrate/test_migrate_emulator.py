"""End to end: OneDrive (emulated Graph) -> Google Drive (emulated Drive v3) through the real CLI.

Tests marked `@kind_and_real` also run under the realism profile (tests/realism_run.py). Not the large
tree (slow, and its traffic is the SMALL tree's kind, only more), the expired-session test and the Drive
source test: their few calls stay inside any realistic rate limit, so realism would not fire and a [real]
variant would prove nothing more."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
from world import World, drive_tree, read_all, summary_of

from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.integrity.provenance import DST_MD5, MD5, RUN, SHA256, SRC_ID, SRC_QXH
from realism_run import kind_and_real

CHUNK = 1280 * 1024  # the smallest chunk that is a multiple of both clouds' rules


def _assert_identical(world: World) -> dict[str, list[object]]:
    tree = drive_tree(world)
    expected = world.expected()
    files_expected = {p for p in expected} | {f"many/file-{i:04d}.bin" for i in range(30)}
    assert set(tree) == files_expected
    for path, entries in tree.items():
        assert len(entries) == 1, f"{path} is on Drive {len(entries)} times"
    gd = world.provider("gdrive")
    for path, data in expected.items():
        entry = tree[path][0]  # type: ignore[index]
        assert read_all(gd, entry) == data, path
        assert entry.hashes[HashType.MD5] == hashlib.md5(data).hexdigest()  # type: ignore[attr-defined]
        assert entry.hashes[HashType.SHA256] == hashlib.sha256(data).hexdigest()  # type: ignore[attr-defined]
        props = entry.properties  # type: ignore[attr-defined]
        # MD5 streamed (a one-request file) or taken from Drive's answer after the SHA-256 agreed (issue #15)
        assert props.get(MD5, props.get(DST_MD5)) == hashlib.md5(data).hexdigest()
        assert props[SHA256] == hashlib.sha256(data).hexdigest()
        assert props[RUN] and props[SRC_ID]
        if data:  # Graph reports no quickXorHash for empty files; the relay records the streamed one
            assert props[SRC_QXH] == hash_bytes(data, [HashType.QUICKXOR])[HashType.QUICKXOR]
    return tree  # type: ignore[return-value]


@kind_and_real("drive.rate_limited", "graph.throttled")
def test_onedrive_to_drive_byte_identical_with_provenance(world: World) -> None:
    proc = world.cli(*world.migrate_args("--json"), check=True)
    summary = summary_of(proc)
    assert summary["copied"] == 39 and summary["failed"] == 0
    assert summary["unsupported"] == 1
    assert summary["unsupported_items"][0]["path"] == "Notebooks/Team notes"
    tree = _assert_identical(world)
    src = world.provider("onedrive")
    a = tree["data/a.bin"][0]
    assert a.properties[SRC_ID] == src.stat("Projects/data/a.bin").id  # type: ignore[attr-defined]
    assert a.modified.year == 2024  # type: ignore[attr-defined]  # modified time preserved
    before = world.upload_bytes()
    again = summary_of(world.cli(*world.migrate_args("--json"), check=True))
    assert again["copied"] == 0 and again["failed"] == 0
    assert again["incremental"] is True and again["planned"] == 0
    assert world.upload_bytes() == before  # nothing uploaded twice


@kind_and_real("drive.rate_limited", "graph.throttled")
def test_fresh_journal_skips_proven_copies(world: World) -> None:
    """A lost journal (new VM, no backup): the destination's provenance proves what is already there."""
    world.cli(*world.migrate_args(), check=True)
    world.journal.unlink()
    before = world.upload_bytes()
    summary = summary_of(world.cli(*world.migrate_args("--json"), check=True))
    assert summary["skipped"] == 39 and summary["copied"] == 0
    assert world.upload_bytes() == before
    _assert_identical(world)


BIG = {
    "seed": 9,
    "onedrive": {"files": [{"path": f"Projects/big-{i}.bin", "size": 12 * CHUNK + 777} for i in range(3)]
                 + [{"path": "Projects/small.txt", "size": "3K", "content": "text"}]},
}


@pytest.mark.parametrize("world", [BIG], indirect=True)
@kind_and_real("graph.throttled")
def test_resume_after_kill_sends_at_most_a_chunk_again(world: World) -> None:
    total = sum(len(d) for d in world.expected().values())
    transfers = 2
    args = [sys.executable, "-m", "driveferry.cli", *world.migrate_args("--chunk-size", str(CHUNK),
                                                                          "--transfers", str(transfers))]
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(world.config)}
    kills = 0
    for threshold in (0.15, 0.45, 0.7):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and world.upload_bytes() < threshold * total and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    world.cli(*world.migrate_args("--chunk-size", str(CHUNK)), check=True)
    _ = drive_tree(world)
    gd = world.provider("gdrive")
    tree = drive_tree(world)
    assert sorted(tree) == ["big-0.bin", "big-1.bin", "big-2.bin", "small.txt"]
    for path, data in world.expected().items():
        assert len(tree[path.removeprefix("Projects/")]) == 1
        assert read_all(gd, tree[path][0]) == data
    assert kills >= 1
    sent = world.upload_bytes()
    # each kill may lose at most the chunk in flight of each transfer
    assert sent <= total + kills * transfers * CHUNK, (sent, total, kills)


@kind_and_real("drive.rate_limited", "graph.throttled")
def test_faults_everywhere_still_byte_identical(world: World) -> None:
    rules = [
        {"kind": "status", "route": "graph.*", "status": 429, "code": "activityLimitReached",
         "retry_after": "0.05", "rate": 0.05},
        {"kind": "status", "route": "graph.*", "status": 503, "code": "serviceNotAvailable", "rate": 0.03},
        {"kind": "status", "route": "drive.*", "status": 503, "code": "backendError", "rate": 0.05},
        {"kind": "status", "route": "drive.*", "status": 500, "code": "backendError", "rate": 0.03},
        {"kind": "reset", "route": "graph.download", "rate": 0.05},
        {"kind": "truncate", "route": "graph.download", "rate": 0.05},
        {"kind": "corrupt", "route": "graph.download", "rate": 0.08},
        {"kind": "reset", "route": "drive.upload.chunk", "rate": 0.05},
    ]
    world.control("PUT", "/faults", {"seed": 3, "rules": rules})
    proc = world.cli(*world.migrate_args("--json", "--chunk-size", str(CHUNK)))
    summary = summary_of(proc)
    fired = world.counters()["faults"]
    world.control("PUT", "/faults", {"seed": 0, "rules": []})
    if summary["failed"]:  # a file may exhaust its attempts under 30% faults; the rerun must finish it
        summary = summary_of(world.cli(*world.migrate_args("--json"), check=True))
    assert proc.returncode in (0, 1)
    assert any(k.endswith(":corrupt") for k in fired), fired
    _assert_identical(world)


@kind_and_real("drive.rate_limited", "graph.throttled")
def test_daily_cap_stops_cleanly_and_resumes_next_day(world: World) -> None:
    world.control("PUT", "/drive/limits", {"daily_upload_bytes": 2 * 1024 * 1024})
    first = world.cli(*world.migrate_args("--json"))
    assert first.returncode == 3, first.stderr
    summary = summary_of(first)
    assert summary["stopped_for_quota"] and summary["copied"] < 39
    world.control("POST", "/clock", {"advance_s": 25 * 3600})
    world.control("PUT", "/drive/limits", {"daily_upload_bytes": 750 * 10**9})
    second = world.cli(*world.migrate_args("--json"), check=True)
    assert summary_of(second)["failed"] == 0
    _assert_identical(world)


@kind_and_real("drive.rate_limited", "graph.throttled")
def test_incremental_rerun_copies_only_new_and_changed(world: World) -> None:
    world.cli(*world.migrate_args(), check=True)
    graph = next(m for m in world.emu.modules if getattr(m, "route_prefix", "") == "graph.").model
    projects = graph.by_path("Projects")
    data = graph.resolve(projects.id, "data")
    new_a = b"changed content " * 1000
    graph.create_file(data.id, "a.bin", [new_a], conflict="replace")
    graph.create_file(projects.id, "new.txt", [b"brand new"], conflict="replace")
    before = world.upload_bytes()
    summary = summary_of(world.cli(*world.migrate_args("--json"), check=True))
    assert summary["copied"] == 2 and summary["failed"] == 0
    assert summary["incremental"] is True and summary["planned"] == 2  # from Graph delta, not a re-walk
    assert world.upload_bytes() - before == len(new_a) + len(b"brand new")
    tree = drive_tree(world)
    assert len(tree["data/a.bin"]) == 1  # the outdated copy was replaced, not kept beside the new one
    gd = world.provider("gdrive")
    assert read_all(gd, tree["data/a.bin"][0]) == new_a
    assert read_all(gd, tree["new.txt"][0]) == b"brand new"


LARGE_TREE = {
    "seed": 11,
    "onedrive": {
        "files": [
            {"path": "Projects/video/big-256M.mp4", "size": "256M"},
            {"path": "Projects/video/odd-10000001.bin", "size": 10000001},
            {"path": "Projects/disk/zeros-16M.img", "size": "16M", "content": "zeros"},
            {"path": "Projects/empty/empty.txt", "size": 0},
            {"path": "Projects/Ünïcødé/résumé.pdf", "size": "700K"},
            {"path": "Projects/Ünïcødé/e\u0301te\u0301.txt", "size": "1K"},
            {"path": "Projects/a/b/c/d/e/f/g/h/i/j/k/l/deep.bin", "size": "2M"},
        ],
        "bulk": [{"dir": "Projects/docs", "count": 300, "size": "0", "max_size": "1M"}],
        "notebooks": ["Projects/Notebooks/Team notes", "Projects/Notebooks/Research"],
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("world", [LARGE_TREE], indirect=True)
def test_large_seeded_tree_byte_identical(world: World) -> None:
    summary = summary_of(world.cli(*world.migrate_args("--json", "--transfers", "4"), check=True))
    assert summary["copied"] == 307 and summary["failed"] == 0 and summary["unsupported"] == 2
    tree = drive_tree(world)
    assert len(tree) == 307 and all(len(v) == 1 for v in tree.values())
    src = world.provider("onedrive")
    gd = world.provider("gdrive")
    for path, entries in tree.items():
        dest = entries[0]
        source = src.stat("Projects/" + path)
        assert dest.size == source.size, path
        data = read_all(gd, dest)
        assert hashlib.md5(data).hexdigest() == dest.hashes[HashType.MD5], path
        if source.hashes.get(HashType.QUICKXOR):  # OneDrive's own hash of the source equals our copy's bytes
            assert hash_bytes(data, [HashType.QUICKXOR])[HashType.QUICKXOR] == source.hashes[HashType.QUICKXOR], path


@pytest.mark.parametrize("world", [BIG], indirect=True)
def test_expired_drive_session_restarts_the_file_cleanly(world: World) -> None:
    total = sum(len(d) for d in world.expected().values())
    args = [sys.executable, "-m", "driveferry.cli", *world.migrate_args("--chunk-size", str(CHUNK),
                                                                          "--transfers", "1")]
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(world.config)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and world.upload_bytes() < 0.2 * total and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    world.control("POST", "/clock", {"advance_s": 8 * 24 * 3600})  # Drive sessions live 7 days
    world.cli(*world.migrate_args("--chunk-size", str(CHUNK)), check=True)
    tree = drive_tree(world)
    gd = world.provider("gdrive")
    assert sorted(tree) == ["big-0.bin", "big-1.bin", "big-2.bin", "small.txt"]
    for path, data in world.expected().items():
        entries = tree[path.removeprefix("Projects/")]
        assert len(entries) == 1 and read_all(gd, entries[0]) == data


DRIVE_DUPLICATES = {
    "seed": 4,
    "gdrive": {"files": [{"path": "Src/plain.txt", "size": "3K", "content": "text"}],
               "duplicates": [{"path": "Src/report.pdf", "count": 2, "size": "10K"}],
               "docs": ["Src/Plan"]},
    "onedrive": {"files": [{"path": "Projects/x.bin", "size": 1}]},
}


@pytest.mark.parametrize("world", [DRIVE_DUPLICATES], indirect=True)
def test_drive_source_duplicates_reported_and_oldest_copied(world: World, tmp_path_factory: pytest.TempPathFactory) -> None:
    from driveferry.emulator.seed import content_bytes
    out = tmp_path_factory.mktemp("out")
    # --export skip: the Doc is reported beside the duplicate (exports: test_drive_to_onedrive.py)
    proc = world.cli("migrate", "emu-gdrive:Src", str(out), "--journal", str(world.dir / "j2.sqlite3"), "--json",
                     "--export", "skip")
    summary = summary_of(proc)
    assert proc.returncode == 0 and summary["copied"] == 2 and summary["unsupported"] == 2
    reasons = sorted(i["reason"].split(":")[0] for i in summary["unsupported_items"])
    assert reasons == ["Google Docs editor file", "duplicate name on the source"]
    gd = world.provider("gdrive")
    winner = gd.stat("Src/report.pdf")  # the twin the path resolves to is the one copied
    twins = {content_bytes(4, "gdrive", f"Src/report.pdf#{k}", 10 * 1024) for k in range(2)}
    copied = (out / "report.pdf").read_bytes()
    assert copied == read_all(gd, winner) and copied in twins
    assert sorted(p.name for p in out.iterdir()) == ["plain.txt", "report.pdf"]
