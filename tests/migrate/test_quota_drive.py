"""The daily upload cap as Drive counts it, and a full Drive, end to end against the emulator.

Drive lets an upload that crosses the 750 GB/day cap finish and refuses only uploads that start later
("Uploads that are in progress will complete", Google admin help 172541; api-notes Part C §19). The
emulator's cap is set small (100 MiB) with 70 MiB already spent: a 150 MiB file (more than what is left,
more than the whole cap) must start, cross the cap and land whole; the next file must wait for budget.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from world import World, drive_tree, make_world, md5, read_all, summary_of

from driveferry.emulator.identity_google import USER_EMAIL
from driveferry.emulator.remotes import remote_sections, remotes_toml

MIB = 1024 * 1024
CAP_TREE: dict[str, Any] = {
    "seed": 31,
    "onedrive": {"files": [{"path": "Projects/a-big.bin", "size": 150 * MIB},
                           {"path": "Projects/b-next.bin", "size": 2 * MIB}]},
}
TIME_SCALE = 3600  # the client divides quota waits by it: an hour of polling costs a second


@pytest.fixture()
def capped(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, CAP_TREE)


def _drive_model(world: World) -> Any:
    return next(m for m in world.emu.modules if getattr(m, "route_prefix", "") == "drive.").model


def _spend(world: World, nbytes: int) -> None:
    """Bytes the Drive user already uploaded today (by another tool, say)."""
    _drive_model(world).quotas.record_upload(USER_EMAIL, nbytes)


def _used(world: World) -> int:
    return int(world.control("GET", "/drive/usage")["users"].get(USER_EMAIL, 0))


def _scaled_config(world: World) -> Path:
    """The remotes file with `time_scale` on the Drive remote (what the realism profile hands out)."""
    sections = remote_sections(world.emu.describe())
    sections["gdrive"]["time_scale"] = TIME_SCALE
    path = world.dir / "remotes-scaled.toml"
    path.write_text(remotes_toml(sections))
    return path


def test_a_file_crossing_the_cap_finishes_and_the_next_file_waits(capped: World) -> None:
    world = capped
    world.control("PUT", "/drive/limits", {"daily_upload_bytes": 100 * MIB})
    _spend(world, 70 * MIB)  # 30 MiB left
    args = world.migrate_args("--json", "--transfers", "1", "--chunk-size", "8M")
    first = world.cli(*args)
    assert first.returncode == 3, first.stdout + first.stderr
    summary = summary_of(first)
    assert summary["copied"] == 1 and summary["failed"] == 0, summary
    assert "daily upload cap" in summary["stopped_for_quota"], summary
    tree = drive_tree(world)
    expected = world.expected()
    gd = world.provider("gdrive")
    assert [md5(read_all(gd, e)) for e in tree["a-big.bin"]] == [md5(expected["a-big.bin"])]
    assert "b-next.bin" not in tree  # refused at its start, not failed: it is still pending
    assert _used(world) >= 220 * MIB  # the window holds the whole file, past the cap

    # --wait-for-quota: the run waits (1 s per emulated hour of polling) until the emulator's window
    # frees up, then copies the rest in the same run
    env_config = _scaled_config(world)
    err_path = world.dir / "wait.err"
    cmd = [sys.executable, "-m", "driveferry.cli", *args, "--wait-for-quota"]
    with open(world.dir / "wait.out", "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err,
                                env={**os.environ, "DRIVEFERRY_CONFIG": str(env_config)})
    try:
        deadline = time.monotonic() + 300
        while "waiting" not in err_path.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "daily upload cap reached" in err_path.read_text(), err_path.read_text()
        assert proc.poll() is None  # waiting, not exited
        world.control("POST", "/clock", {"advance_s": 25 * 3600})
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    out_text = (world.dir / "wait.out").read_text()
    assert rc == 0, out_text + err_path.read_text()
    events = [json.loads(line) for line in out_text.strip().splitlines()]
    final = events[-1]
    assert final["copied"] == 1 and final["failed"] == 0 and not final["stopped_for_quota"], final
    waits = [e for e in events if e["event"] == "quota_wait"]
    assert len(waits) == final["quota_waits"] >= 1 and all(w["wait_s"] == 1.0 for w in waits), waits
    tree = drive_tree(world)
    assert [md5(read_all(gd, e)) for e in tree["b-next.bin"]] == [md5(expected["b-next.bin"])]
    assert len(tree["a-big.bin"]) == 1


def test_storage_full_stops_the_run_with_its_own_message(capped: World) -> None:
    """Drive full (403 quotaExceeded, api-notes Part C §19) is one stop for the run, not a failure per
    file: exit 3, a message that says the destination is full, nothing failed, nothing copied."""
    world = capped
    world.control("PUT", "/faults", {"seed": 0, "rules": [
        {"kind": "status", "route": "drive.upload.*", "status": 403, "code": "quotaExceeded",
         "message": "The user has exceeded their Drive storage quota", "count": 1000}]})
    proc = world.cli(*world.migrate_args("--json"))
    world.control("PUT", "/faults", {"seed": 0, "rules": []})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    summary = summary_of(proc)
    assert summary["failed"] == 0 and summary["copied"] == 0, summary
    assert summary["stopped_for_quota"].startswith("destination storage full"), summary
    assert summary["resets_at"] is None
    with sqlite3.connect(world.journal) as db:
        attempts = db.execute("SELECT SUM(attempts) FROM items").fetchone()[0]
        errors = db.execute("SELECT COUNT(*) FROM item_errors").fetchone()[0]
    assert (attempts, errors) == (0, 0)  # no file spent an attempt on it


def test_at_a_scaled_clock_the_next_file_waits_until_the_window_frees_up(capped: World) -> None:
    """The realism profile's scaled clock: a day of emulated time passes in 24 wall seconds, and the
    client's quota waits (divided by the same time_scale) end when the emulator's window has room."""
    world = capped
    world.control("PUT", "/realism", {"clock_scale": TIME_SCALE})
    world.control("PUT", "/drive/limits", {"daily_upload_bytes": 100 * MIB})
    _spend(world, 70 * MIB)
    config = _scaled_config(world)
    args = world.migrate_args("--json", "--transfers", "1", "--chunk-size", "8M", "--wait-for-quota")
    cmd = [sys.executable, "-m", "driveferry.cli", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "DRIVEFERRY_CONFIG": str(config)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    final = events[-1]
    assert final["copied"] == 2 and final["failed"] == 0 and final["quota_waits"] >= 1, final
    tree = drive_tree(world)
    expected = world.expected()
    gd = world.provider("gdrive")
    for name in ("a-big.bin", "b-next.bin"):
        assert [md5(read_all(gd, e)) for e in tree[name]] == [md5(expected[name])], name
    # the big file finished past the cap; the next one was refused at its start, waited, then went
    steps = [(e["event"], e.get("path"), e.get("status")) for e in events if e["event"] in ("finish", "quota_wait")]
    assert steps[0] == ("finish", "a-big.bin", "copied"), steps
    assert steps[1] == ("finish", "b-next.bin", "paused"), steps
    assert steps[-1] == ("finish", "b-next.bin", "copied") and ("quota_wait", None, None) in steps, steps


MID_TREE: dict[str, Any] = {"seed": 32, "onedrive": {"files": [{"path": "Projects/mid.bin", "size": 5 * MIB + 3}]}}


@pytest.mark.parametrize("reason", ["userRateLimitExceeded", "rateLimitExceeded"])
def test_the_cap_answered_mid_upload_pauses_the_file_not_fails_it(tmp_path: Path, reason: str) -> None:
    """Drive answering its cap while a file uploads (403 with either reason and "User rate limit
    exceeded.", api-notes Part C §19) stops the run (exit 3) with the file paused at its offset; the
    next run continues it from there, sending no byte twice."""
    for world in make_world(tmp_path, MID_TREE):
        world.control("PUT", "/faults", {"seed": 0, "rules": [
            {"kind": "status", "route": "drive.upload.chunk", "status": 403, "code": reason,
             "message": "User rate limit exceeded.", "count": 1, "after": 2}]})
        first = world.cli(*world.migrate_args("--json", "--chunk-size", "1280K"))
        assert first.returncode == 3, first.stdout + first.stderr
        summary = summary_of(first)
        assert summary["failed"] == 0 and "daily upload cap" in summary["stopped_for_quota"], summary
        with sqlite3.connect(world.journal) as db:
            attempts, offset = db.execute("SELECT attempts, committed_offset FROM items").fetchone()
        assert attempts == 0 and offset == 2 * 1280 * 1024, (attempts, offset)
        second = summary_of(world.cli(*world.migrate_args("--json", "--chunk-size", "1280K"), check=True))
        assert second["copied"] == 1 and second["resumed"] == 1, second
        gd = world.provider("gdrive")
        assert [read_all(gd, e) for e in drive_tree(world)["mid.bin"]] == [world.expected()["mid.bin"]]
        # every byte was stored once: the refused chunk's body is not content Drive kept (upload_bytes is
        # the emulator's content ledger), and the resumed run sent only what the session lacked
        assert world.upload_bytes() == 5 * MIB + 3
