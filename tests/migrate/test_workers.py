"""Several `migrate` processes on one PostgreSQL journal: leases, a kill -9 mid-file, status.

Each worker is a real CLI process against one emulator. The killed worker's in-flight file must be
continued by another worker from its committed offset (its upload session kept), not restarted, and
never land on Drive twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import sqlalchemy as sa
from world import World, drive_tree, read_all, summary_of

from driveferry.journal import Journal
from driveferry.journal.db import to_url
from pg import pg_server, pg_url  # noqa: F401  (fixtures)
from realism_run import kind_and_real

pytestmark = pytest.mark.postgres

CHUNK = 1280 * 1024  # the smallest chunk both clouds accept
LEASE = "6s"
LARGE = 12 * CHUNK + 4321  # ~15 MiB: 13 chunks

WORKERS_TREE: dict[str, Any] = {
    "seed": 21,
    "onedrive": {
        "files": [{"path": f"Projects/large/big-{i}.bin", "size": LARGE} for i in range(4)]
        + [{"path": "Projects/notes.txt", "size": "3K", "content": "text"}],
        "bulk": [{"dir": "Projects/small", "count": 24, "size": "1K", "max_size": "100K"}],
    },
}


def _start(world: World, journal: str, n: int, *extra: str) -> subprocess.Popen[bytes]:
    """A worker process; its output goes to files (pipes read one after another could stall it)."""
    args = [sys.executable, "-m", "driveferry.cli", "migrate", "emu-onedrive:/Projects", "emu-gdrive:Archive",
            "--journal", journal, "--json", "--lease", LEASE, *extra]
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(world.config)}
    with open(world.dir / f"worker-{n}.out", "wb") as out, open(world.dir / f"worker-{n}.err", "wb") as err:
        return subprocess.Popen(args, env=env, stdout=out, stderr=err)


def _output(world: World, n: int) -> tuple[str, str]:
    return (world.dir / f"worker-{n}.out").read_text(), (world.dir / f"worker-{n}.err").read_text()


def _in_flight(engine: sa.Engine, pid: int) -> tuple[str, int] | None:
    """(path, committed offset) of a large file the worker process `pid` holds mid-upload, if any.

    Worker ids are `host:pid:random`, so the owner is found by its pid."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT path, committed_offset, lease_owner FROM items "
            "WHERE state = 'in_progress' AND committed_offset >= :least AND committed_offset <= :most"),
            {"least": 2 * CHUNK, "most": LARGE - 4 * CHUNK}).all()
    for path, offset, owner in rows:
        if str(owner).split(":")[1] == str(pid):
            return str(path), int(offset)
    return None


def _source_tree(world: World) -> dict[str, bytes]:
    """Every source file under Projects/ with its bytes (bulk files included)."""
    from driveferry.providers.ops import walk
    od = world.provider("onedrive")
    return {f.rel_path: read_all(od, f.entry) for f in walk(od, od.stat("Projects"), include_folders=False)
            if f.entry.kind.value == "file"}


def _assert_no_duplicates(gd: Any) -> None:
    from driveferry.providers.ops import walk
    archive = gd.stat("Archive")
    folders = [archive] + [f.entry for f in walk(gd, archive) if f.entry.kind.value == "folder"]
    dups = {f.path or "/": sorted(gd.duplicates(f)) for f in [gd.root(), *folders]}
    assert not any(dups.values()), dups


def _status(world: World, journal: str) -> dict[str, Any]:
    proc = world.cli("status", "--journal", journal, "--json", check=True)
    return dict(json.loads(proc.stdout)["jobs"][0])


@pytest.mark.parametrize("world", [WORKERS_TREE], indirect=True)
@kind_and_real("drive.rate_limited", "graph.throttled")
def test_three_workers_one_killed_mid_file(world: World, pg_url: str) -> None:  # noqa: F811
    expected = _source_tree(world)
    assert len(expected) == 29
    total = sum(len(d) for d in expected.values())
    # Slow chunk uploads a little, so that a large file is reliably caught mid-upload.
    world.control("PUT", "/faults", {"seed": 1, "rules": [
        {"kind": "latency", "route": "drive.upload.chunk", "latency_ms": 60, "rate": 1.0}]})
    Journal.open(pg_url).close()  # the tables exist before the first poll
    procs = [_start(world, pg_url, n, "--chunk-size", "1280K", "--transfers", "1") for n in range(3)]
    engine = sa.create_engine(to_url(pg_url))
    caught: tuple[str, int] | None = None
    victim = procs[0]
    statuses: dict[str, Any] = {}
    try:
        # the victim is whichever worker is first seen mid-way through a large file: which worker
        # claims the large files first is the workers' race, not something the test may assume
        deadline = time.monotonic() + 60
        while caught is None and any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            for p in procs:
                caught = _in_flight(engine, p.pid) if p.poll() is None else None
                if caught is not None:
                    victim = p
                    break
            else:
                time.sleep(0.02)
        assert caught is not None, "no worker was seen holding a large file mid-upload"
        # no worker ends while another holds a lease on unfinished work: one that ended on an empty claim
        # (a concurrent claim's row locks) left the job to the victim, and then to nobody
        ended = [n for n, p in enumerate(procs) if p is not victim and p.poll() is not None]
        assert not ended, f"workers {ended} ended while the victim held {caught[0]}"
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        statuses = _status(world, pg_url)  # while the survivors still run
        for p in procs:
            if p is not victim:
                p.wait(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        engine.dispose()
    survivors = [n for n, p in enumerate(procs) if p is not victim]
    outs = [_output(world, n) for n in survivors]
    for p, (_out, err) in zip([procs[n] for n in survivors], outs, strict=True):
        assert p.returncode == 0, err
    summaries = [summary_of(subprocess.CompletedProcess([], 0, out, err)) for out, err in outs]
    assert sum(s["failed"] for s in summaries) == 0

    gd = world.provider("gdrive")
    # Nothing made twice: Drive allows duplicate names and its listing shows only the oldest of them.
    _assert_no_duplicates(gd)
    # Byte-identical, each name exactly once.
    tree = drive_tree(world)
    assert sorted(tree) == sorted(expected)
    for path, data in expected.items():
        assert len(tree[path]) == 1, f"{path} is on Drive {len(tree[path])} times"
        assert read_all(gd, tree[path][0]) == data, path

    # The victim's file was continued from its committed offset by one survivor, not restarted: all
    # uploads together sent at most one chunk (the one in flight at the kill) more than the tree holds.
    path, offset = caught
    assert sum(s["resumed"] for s in summaries) >= 1, summaries
    sent = world.upload_bytes()
    assert sent <= total + CHUNK, (sent, total, path, offset)
    # A restarted file would have needed a second resumable session. Sessions opened, not initiate
    # requests: under [real] Drive refuses many initiates (403 rateLimitExceeded) and they are retried.
    [opened] = world.emu.state.query("SELECT COUNT(*) AS n FROM drive_sessions")
    assert opened["n"] <= len(expected), opened["n"]

    # status listed every worker while the survivors ran, the killed one among them.
    pids = {str(p.pid) for p in procs}
    listed = {w["worker"].split(":")[1] for w in statuses["workers"]}
    assert pids <= listed, statuses["workers"]
    final = _status(world, pg_url)
    assert final["states"] == {"done": final["states"]["done"]}
    # a survivor's status shows the bytes it sent; one may have sent none (the others' claims took every
    # file before its first claim), and waited on their leases instead of ending (asserted at the kill)
    sent_by = {str(procs[n].pid): s["bytes_uploaded"] for n, s in zip(survivors, summaries, strict=True)}
    assert sum(1 for b in sent_by.values() if b) >= 1, sent_by
    for w in final["workers"]:
        pid = w["worker"].split(":")[1]
        if pid != str(victim.pid) and sent_by[pid]:
            assert w["bytes"] > 0 and w["rate_bytes_per_s"] > 0, w

