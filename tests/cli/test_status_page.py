"""`status`, `status --json`, `status --files` and the live page (`status --serve`) during and after a
migration killed twice mid-file and resumed by three workers, one of them killed, against what the
emulator holds.

Every migrate is a real CLI process against one emulator with an SQLite journal. Each of the first two
runs is killed (SIGKILL) while a large file is mid-upload; then three workers share the job, one is
killed mid-file and the other two finish. The page is read by
headless Chromium (DOM after its script ran, and a screenshot) while the third run transfers and after
it finished, and its JSON endpoint is compared with `status --json`. Waits are bounded polls.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "migrate"))  # the end-to-end helpers (world.py)
from world import World, drive_tree, make_world, read_all  # noqa: E402

from driveferry.statuspage.readonly import open_read_only  # noqa: E402

CHUNK = 1280 * 1024
LARGE = 6 * CHUNK + 777
TREE: dict[str, Any] = {
    "seed": 17,
    "onedrive": {
        "files": [{"path": f"Projects/large/big-{i}.bin", "size": LARGE} for i in range(10)]
        + [{"path": "Projects/notes.txt", "size": "3K", "content": "text"}],
        "bulk": [{"dir": "Projects/small", "count": 12, "size": "1K", "max_size": "50K"}],
    },
}
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")
SHOTS = Path(os.environ.get("DRIVEFERRY_SHOTS", "/tmp"))  # screenshots for a human look; never committed


@pytest.fixture()
def world(tmp_path: Path) -> Any:
    yield from make_world(tmp_path, TREE)


def _migrate(world: World, n: int, transfers: int = 2) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "driveferry.cli", *world.migrate_args(
        "--json", "--chunk-size", "1280K", "--transfers", str(transfers), "--lease", "6s")]
    env = {**os.environ, "DRIVEFERRY_CONFIG": str(world.config)}
    with open(world.dir / f"run-{n}.out", "wb") as out, open(world.dir / f"run-{n}.err", "wb") as err:
        return subprocess.Popen(args, env=env, stdout=out, stderr=err)


def _mid_file(world: World, pid: int) -> bool:
    """Whether process `pid` holds a large file with some of it committed and has sent a heartbeat
    counting bytes (read-only look)."""
    if not world.journal.exists():
        return False
    try:
        j = open_read_only(str(world.journal))
    except Exception:  # the schema is still being created
        return False
    mine = str(pid)
    try:
        for job in j.jobs():
            beat = any(w.worker_id.split(":")[1] == mine and w.bytes_done > 0 for w in j.workers(job.id))
            for item in j.iter_items(job.id):
                if (item.lease_owner or "").split(":")[1:2] == [mine] and (item.committed_offset or 0) > 0 and beat:
                    return True
    finally:
        j.close()
    return False


def _kill_mid_file(world: World, n: int) -> int:
    proc = _migrate(world, n)
    try:
        deadline = time.monotonic() + 90
        while not _mid_file(world, proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"run {n} ended before it was caught mid-file: {_err(world, n)}"
        assert _mid_file(world, proc.pid), f"run {n} never held a large file mid-upload"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.pid


def _source_tree(world: World) -> dict[str, bytes]:
    """Every source file under Projects/ with its bytes (bulk files included)."""
    from driveferry.providers.ops import walk
    od = world.provider("onedrive")
    return {f.rel_path: read_all(od, f.entry) for f in walk(od, od.stat("Projects"), include_folders=False)
            if f.entry.kind.value == "file"}


def _err(world: World, n: int) -> str:
    return (world.dir / f"run-{n}.err").read_text()


def _status_json(world: World, *extra: str) -> dict[str, Any]:
    proc = world.cli("status", "--journal", str(world.journal), "--json", *extra, check=True)
    [job] = json.loads(proc.stdout)["jobs"]
    return dict(job)


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as r:
        return dict(json.loads(r.read()))


def _chromium() -> str:
    import shutil
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("no chromium binary under CI=true; scripts/test.sh should have installed it")
    pytest.skip("no chromium binary (install the Debian package `chromium`)")


def _dom(binary: str, profile: Path, url: str, shot: Path) -> str:
    """The page's DOM after ~6 s of (virtual) time of its script, and a screenshot of it."""
    common = [binary, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=6000"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,1800", url], capture_output=True,
                   timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    return dom.stdout


def _text(dom: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert found, f"#{element_id} missing from the DOM"
    return found.group(1)


def _rows(dom: str, table_id: str) -> list[str]:
    body = re.search(rf'id="{table_id}".*?<tbody>(.*?)</tbody>', dom, re.S)
    assert body, f"#{table_id} missing"
    return re.findall(r'<tr data-state="([a-z_]+)"', body.group(1))


def test_page_and_status_agree_with_the_emulator_across_kills(world: World, tmp_path: Path) -> None:
    binary = _chromium()
    expected = _source_tree(world)
    assert len(expected) == 23
    goal = sum(len(d) for d in expected.values())
    world.control("PUT", "/faults", {"seed": 1, "rules": [
        {"kind": "latency", "route": "drive.upload.chunk", "latency_ms": 250, "rate": 1.0}]})
    killed = [_kill_mid_file(world, 1), _kill_mid_file(world, 2)]

    # status after two kills: both workers proven dead at once (same host, pid gone), nothing lost
    mid = _status_json(world)
    states = {w["worker"].split(":")[1]: w["state"] for w in mid["workers"]}
    assert [states[str(p)] for p in killed] == ["dead", "dead"], mid["workers"]
    assert [r["state"] for r in mid["runs"]] == ["interrupted", "interrupted"]
    assert 0 < mid["totals"]["bytes_done"] < goal
    assert any(w["bytes"] > 0 for w in mid["workers"]), mid["workers"]  # bytes sent mid-file are shown
    # the killed run's file: in progress under a lease that runs out, resumable at its committed offset
    in_flight = _status_json(world, "--files", "--filter", "in_flight")["files"]
    assert in_flight and all(f["state"] == "stalled" for f in in_flight), in_flight  # their workers are dead
    assert any(f["offset"] and f["offset"] % CHUNK == 0 for f in in_flight), in_flight

    server = subprocess.Popen([sys.executable, "-m", "driveferry.cli", "status", "--journal", str(world.journal),
                               "--serve", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + (server.stderr.read() if server.poll() is not None else "")
        url = f"http://127.0.0.1:{found.group(1)}/"

        workers = [_migrate(world, n, transfers=1) for n in (3, 4, 5)]
        victim, survivors = workers[0], workers[1:]
        try:
            deadline = time.monotonic() + 90
            while not _mid_file(world, victim.pid) and victim.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _mid_file(world, victim.pid), "the third worker never held a large file mid-upload"
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed.append(victim.pid)
            # no heartbeat has to be missed: the pid is gone, so the very next poll says dead
            live = _get(url + "api/status")["jobs"][0]
            during = _dom(binary, tmp_path / "profile", url, SHOTS / "driveferry-status-during.png")
            for n, proc in zip((4, 5), survivors, strict=True):
                assert proc.wait(timeout=300) == 0, _err(world, n)
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        live_states = {w["worker"].split(":")[1]: w["state"] for w in live["workers"]}
        assert [live_states[str(p)] for p in killed] == ["dead"] * 3, live["workers"]
        assert int(_text(during, "updates")) >= 2  # the page polled more than once without a reload
        assert _rows(during, "workers").count("dead") == 3

        after = _dom(binary, tmp_path / "profile", url, SHOTS / "driveferry-status-after.png")
        page = _get(url + "api/status")["jobs"][0]
        files = _get(url + "api/files?filter=all")["files"]
        unverified = _get(url + "api/files?filter=unverified")["files"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert server.returncode == 0

    # what the emulator holds: every file once, byte-identical
    tree = drive_tree(world)
    gd = world.provider("gdrive")
    assert sorted(tree) == sorted(expected)
    for path, data in expected.items():
        assert read_all(gd, tree[path][0]) == data, path

    final = _status_json(world)
    listed = _status_json(world, "--files")["files"]
    for view in (page, final):
        t = view["totals"]
        assert (t["files_done"], t["files"], t["bytes_done"], t["goal_bytes"]) == (
            len(expected), len(expected), goal, goal), t
        assert t["percent"] == 100.0 and t["eta_s"] == 0
        assert sorted(r["state"] for r in view["runs"]) == ["finished"] * 2 + ["interrupted"] * 3
        assert [r["state"] for r in view["runs"][:2]] == ["interrupted", "interrupted"]
        assert sorted(w["state"] for w in view["workers"]) == ["dead"] * 3 + ["finished"] * 2
    assert page["states"] == final["states"] and page["runs"] == final["runs"]
    # each run's own share is beside the totals: the survivors finished at most what was left after the
    # first two kills, sent less than the tree (they resumed committed files), and every killed run's
    # heartbeats show what it sent
    finished = [r for r in final["runs"] if r["state"] == "finished"]
    interrupted = [r for r in final["runs"] if r["state"] == "interrupted"]
    assert 0 < sum(r["copied"] + r["skipped"] for r in finished) <= len(expected) - mid["totals"]["files_done"]
    assert 0 < sum(r["bytes_uploaded"] for r in finished) < goal, finished
    assert all(r["bytes_uploaded"] > 0 for r in interrupted), interrupted
    assert sorted((f["path"], f["state"], f["offset"]) for f in files) == sorted(
        (f["path"], f["state"], f["offset"]) for f in listed)
    assert {f["path"] for f in listed} == set(expected)
    assert all(f["state"] == "done" and f["offset"] == len(expected[f["path"]]) for f in listed), listed
    assert unverified == []

    assert _text(after, "pct") == "100.0%"
    assert _text(after, "files") == f"{len(expected)} / {len(expected)}"
    assert _text(after, "eta") == "done"
    assert sorted(_rows(after, "workers")) == ["dead"] * 3 + ["finished"] * 2
    assert sorted(_rows(after, "runs")) == ["finished"] * 2 + ["interrupted"] * 3
    assert _rows(after, "files-table") == []  # the default filter (in flight) is empty once done
    assert 'data-points="' in after and 'data-points="0"' not in after  # the rate plot has points
