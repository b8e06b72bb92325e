"""`status` (text, --json, --files with filters) and the page's endpoints over a journal built with the
journal API: every file state, a quota-stopped run, errors, budget minutes and workers alive, dead by
pid, dead by heartbeat age and finished. The journal must come out byte-identical (read-only)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driveferry.errors import UserError
from driveferry.journal import Journal
from driveferry.journal.records import ItemState, PlannedItem
from driveferry.statuspage.readonly import open_read_only
from driveferry.statuspage.server import StatusState, make_server, parse_address

HERE = socket.gethostname()
MiB = 2**20


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid is free (the kernel does not hand it out again at once)
    return proc.pid


@pytest.fixture()
def journal_path(tmp_path: Path) -> Path:
    """A job of 7 files and a folder, each file in a different state, and four workers."""
    path = tmp_path / "j.sqlite3"
    old = datetime.now(UTC) - timedelta(minutes=10)
    with Journal.open(str(path)) as j, Journal.open(str(path), clock=lambda: old) as j_old:
        job = j.get_or_create_job("od:/P", "gd:A")
        sizes = {"done.bin": 4 * MiB, "unhashed.bin": 1 * MiB, "failed.bin": 2 * MiB, "inflight.bin": 8 * MiB,
                 "paused.bin": 3 * MiB, "fresh.bin": 5 * MiB, "notebook": 0}
        j.plan_items(job.id, [PlannedItem("d", "id-d", "folder")]
                     + [PlannedItem(p, f"id-{p}", "package" if p == "notebook" else "file", s)
                        for p, s in sizes.items()])
        ids = {i.path: i.id for i in j.iter_items(job.id)}
        j.mark(ids["notebook"], ItemState.UNSUPPORTED, "OneNote notebook")
        finished = j.start_run(job.id, "w-finished", {"lease_s": 30.0})
        claimed = j.claim(job.id, "w-finished", 30, limit=10, kinds={"file"})
        assert len(claimed) == 6
        j.complete(ids["done.bin"], "g1", {"md5": "aa"}, 4 * MiB)
        j.complete(ids["unhashed.bin"], "g2", {}, 1 * MiB)
        j.fail(ids["failed.bin"], "IntegrityError", "md5 differs", retryable=False, expected="aa", actual="bb")
        j.checkpoint(ids["paused.bin"], "w-finished", "tok-p", 2 * MiB)
        j.fail(ids["fresh.bin"], "TransientError", "503 backendError", retryable=True)
        j.release("w-finished")
        j.record_upload("gd", 6 * MiB)
        j.heartbeat("w-finished", job_id=job.id, host=HERE, pid=os.getpid(), run_id=finished.id, bytes_done=7 * MiB,
                    rate_bytes_per_s=1e6)
        j.finish_run(finished.id, {"copied": 2, "skipped": 0, "failed": 1, "bytes_uploaded": 7 * MiB,
                                   "stopped_for_quota": "daily upload budget spent"})
        # a live run holding inflight.bin, and two dead ones
        live = j.start_run(job.id, "w-live", {"lease_s": 30.0})
        [held] = j.claim(job.id, "w-live", 600, kinds={"file"})
        assert held.path == "inflight.bin"
        j.heartbeat("w-live", job_id=job.id, host=HERE, pid=os.getpid(), run_id=live.id, current_item_id=held.id,
                    bytes_done=1 * MiB, rate_bytes_per_s=2e6)
        gone = j.start_run(job.id, "w-gone", {"lease_s": 30.0})
        j.heartbeat("w-gone", job_id=job.id, host=HERE, pid=_dead_pid(), run_id=gone.id, bytes_done=3 * MiB,
                    rate_bytes_per_s=5e5)
        far = j.start_run(job.id, "w-far", {"lease_s": 30.0})
        j_old.heartbeat("w-far", job_id=job.id, host="another-host.example", pid=1, run_id=far.id,
                        bytes_done=9, rate_bytes_per_s=9.0)
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_status_json_and_files_tell_each_state(journal_path: Path) -> None:
    before = _md5(journal_path)
    proc = _cli("status", "--journal", str(journal_path), "--json", "--files")
    assert proc.returncode == 0, proc.stderr
    [job] = json.loads(proc.stdout)["jobs"]
    t = job["totals"]
    # the goal leaves out the folder and the unsupported notebook; settled files count at their size,
    # open ones at their committed offset (paused.bin: 2 MiB of 3)
    assert (t["files"], t["files_done"], t["files_failed"], t["files_unsupported"]) == (6, 2, 1, 1)
    assert t["goal_bytes"] == 23 * MiB and t["bytes_done"] == 5 * MiB + 2 * MiB
    assert t["percent"] == round(100 * 7 / 23, 2)
    assert t["unverified"] == 1
    assert t["waiting_for_quota"] == 0  # a run stopped at the daily cap, but a later one is running
    assert t["rate_bytes_per_s"] == 2e6  # the live worker only
    assert t["eta_s"] == round(16 * MiB / 2e6)
    states = {w["worker"]: (w["state"], w["alive"]) for w in job["workers"]}
    assert states == {"w-finished": ("finished", False), "w-live": ("alive", True), "w-gone": ("dead", False),
                      "w-far": ("dead", False)}
    why = {w["worker"]: w["why"] for w in job["workers"]}
    assert "is gone" in why["w-gone"] and "no heartbeat for" in why["w-far"]
    assert [w["current_item"] for w in job["workers"] if w["worker"] == "w-live"] == ["inflight.bin"]
    assert [(r["worker"], r["state"], r["bytes_uploaded"]) for r in job["runs"]] == [
        ("w-finished", "finished", 7 * MiB), ("w-live", "running", 1 * MiB), ("w-gone", "interrupted", 3 * MiB),
        ("w-far", "interrupted", 9)]
    files = {f["path"]: f for f in job["files"]}
    assert set(files) == {"done.bin", "unhashed.bin", "failed.bin", "inflight.bin", "paused.bin", "fresh.bin",
                          "notebook"}
    assert {p: f["state"] for p, f in files.items()} == {
        "done.bin": "done", "unhashed.bin": "unverified", "failed.bin": "failed", "inflight.bin": "in_flight",
        "paused.bin": "pending", "fresh.bin": "pending", "notebook": "unsupported"}
    assert (files["paused.bin"]["offset"], files["done.bin"]["offset"]) == (2 * MiB, 4 * MiB)
    assert files["failed.bin"]["error"] == "IntegrityError: md5 differs" and files["failed.bin"]["attempts"] == 1
    assert files["fresh.bin"]["error"] == "TransientError: 503 backendError"
    assert job["errors"][0]["path"] == "fresh.bin" and job["errors"][1]["message"] == "md5 differs"
    [budget] = job["budget"]
    assert (budget["user"], budget["bytes_24h"], budget["limit_bytes"]) == ("gd", 6 * MiB, 750 * 10**9)
    assert sum(n for _, n in job["history"]) == 6 * MiB
    assert _md5(journal_path) == before and sorted(p.name for p in journal_path.parent.iterdir()) == ["j.sqlite3"]


@pytest.mark.parametrize("which,paths", [
    ("failed", ["failed.bin"]), ("unverified", ["unhashed.bin"]), ("in_flight", ["inflight.bin"]),
    ("waiting_for_quota", []), ("pending", ["fresh.bin", "paused.bin"]), ("done", ["done.bin", "unhashed.bin"])])
def test_files_filter(journal_path: Path, which: str, paths: list[str]) -> None:
    proc = _cli("status", "--journal", str(journal_path), "--json", "--files", "--filter", which)
    assert proc.returncode == 0, proc.stderr
    assert sorted(f["path"] for f in json.loads(proc.stdout)["jobs"][0]["files"]) == paths


def test_files_wait_for_quota_once_no_later_run_is_running(journal_path: Path) -> None:
    with Journal.open(str(journal_path)) as j:  # the live worker's process is gone
        [job] = j.jobs()
        live = next(r for r in j.runs(job.id) if r.worker_id == "w-live")
        j.heartbeat("w-live", job_id=job.id, host=HERE, pid=_dead_pid(), run_id=live.id)
    proc = _cli("status", "--journal", str(journal_path), "--json", "--files", "--filter", "waiting_for_quota")
    [job_out] = json.loads(proc.stdout)["jobs"]
    assert job_out["totals"]["waiting_for_quota"] == 2
    assert sorted(f["path"] for f in job_out["files"]) == ["fresh.bin", "paused.bin"]
    assert [r["state"] for r in job_out["runs"]] == ["finished", "interrupted", "interrupted", "interrupted"]
    assert "2 waiting for quota" in _cli("status", "--journal", str(journal_path)).stdout
    # the file its dead worker held is stalled, though its lease has not run out yet
    proc = _cli("status", "--journal", str(journal_path), "--json", "--files", "--filter", "in_flight")
    assert [(f["path"], f["state"]) for f in json.loads(proc.stdout)["jobs"][0]["files"]] == [("inflight.bin", "stalled")]


def test_text_status_names_totals_runs_and_dead_workers(journal_path: Path) -> None:
    proc = _cli("status", "--journal", str(journal_path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "2/6 files done, 7.0 MiB of 23.0 MiB (30.4%)" in out, out
    assert "1 in flight, 1 failed, 1 unverified, 1 unsupported" in out, out
    assert "worker w-gone (dead: pid" in out and "worker w-live (alive" in out
    assert "run " in out and "(interrupted, w-gone): 3.0 MiB sent" in out


@pytest.fixture()
def served(journal_path: Path) -> Iterator[str]:
    journal = open_read_only(str(journal_path))
    httpd = make_server(StatusState(journal), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        journal.close()


def _fetch(url: str, method: str = "GET") -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as r:
            body = r.read()
            return r.status, json.loads(body) if r.headers["Content-Type"] == "application/json" else body.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_endpoints_agree_with_status_json_and_stay_read_only(journal_path: Path, served: str) -> None:
    before = _md5(journal_path)
    code, page = _fetch(served)
    assert code == 200 and "<script>" in page
    # nothing from the network: no external script, style, image or font
    assert "http://" not in page and "https://" not in page and " src=" not in page
    code, api = _fetch(served + "api/status")
    assert code == 200
    [job] = api["jobs"]
    [cli_job] = json.loads(_cli("status", "--journal", str(journal_path), "--json").stdout)["jobs"]
    for key in ("states", "runs", "budget", "errors", "history"):
        assert job[key] == cli_job[key], key
    assert {k: v for k, v in job["totals"].items()} == cli_job["totals"]
    assert job["live"]["samples"][-1][1] == job["totals"]["bytes_done"]
    code, files = _fetch(served + "api/files?filter=failed")
    assert code == 200 and [f["path"] for f in files["files"]] == ["failed.bin"]
    assert _fetch(served + "api/files?filter=bogus")[0] == 400
    assert _fetch(served + "api/status", "POST")[0] == 405
    assert _fetch(served + "nope")[0] == 404
    assert _md5(journal_path) == before


def test_addresses_are_loopback_unless_asked() -> None:
    assert parse_address("8765", False) == ("127.0.0.1", 8765, None)
    assert parse_address("127.0.0.1:0", False) == ("127.0.0.1", 0, None)
    assert parse_address("[::1]:9000", False) == ("::1", 9000, None)
    host, port, warning = parse_address("9000", True)
    assert (host, port) == ("0.0.0.0", 9000) and warning and "no login" in warning
    assert parse_address("10.0.0.5:80", False)[2] is not None
    for bad in ("70000", "host:port", "127.0.0.1:-1"):
        with pytest.raises(UserError):
            parse_address(bad, False)


@pytest.mark.parametrize("args,fragment", [
    (("--serve", "127.0.0.1:70000"), "outside 0-65535"), (("--allow-remote",), "goes with --serve"),
    (("--files", "--filter", "sideways"), "--filter must be one of"), (("--files", "--limit", "0"), "at least 1")])
def test_bad_arguments_exit_2_before_the_journal_is_opened(tmp_path: Path, args: tuple[str, ...],
                                                           fragment: str) -> None:
    proc = _cli("status", "--journal", str(tmp_path / "none.sqlite3"), *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert fragment in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_liveness_from_the_process_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import time as _time

    from driveferry.journal.records import RunRecord, WorkerRecord
    from driveferry.statuspage import liveness as module
    from driveferry.statuspage.liveness import liveness
    monkeypatch.setattr(module, "REUSE_MARGIN_S", 2.0)  # children started within a second count as newer
    now = datetime.now(UTC)
    # this test's process is older than the run (pytest started more than 3 s ago), the children younger
    run = RunRecord("r", 1, "w", now - timedelta(seconds=3), None, {"lease_s": 60.0}, None)

    def beat(pid: int, host: str = HERE, age_s: float = 1.0) -> WorkerRecord:
        return WorkerRecord("w", 1, "r", host, pid, now - timedelta(seconds=age_s), None, 0, 0.0)

    assert liveness(beat(os.getpid()), run, now).state == "alive"
    assert liveness(beat(os.getpid(), age_s=300), run, now).state == "silent"  # runs, but stopped beating
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = _time.monotonic() + 30
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert _time.monotonic() < deadline, "the child never exited"
            _time.sleep(0.01)
        assert liveness(beat(zombie.pid), run, now).why.endswith("has exited (zombie)")
    finally:
        zombie.wait()
    # a pid handed to a process started after the run began is not the worker
    newer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        found = liveness(beat(newer.pid), run, now)
        assert (found.state, found.why) == ("dead", f"pid {newer.pid} now belongs to a process started after the run")
    finally:
        newer.kill()
        newer.wait()
    # another host: only the heartbeat's age tells (two beats of lease/3 = 20 s, plus 5 s)
    assert liveness(beat(1, "elsewhere", age_s=40), run, now).state == "alive"
    assert liveness(beat(1, "elsewhere", age_s=46), run, now).state == "dead"
    done = RunRecord("r", 1, "w", now - timedelta(hours=1), now, {}, {"copied": 1})
    assert liveness(beat(1, "elsewhere", age_s=999), done, now).state == "finished"


def test_page_in_chromium_shows_each_state_and_offers_every_job(journal_path: Path, tmp_path: Path) -> None:
    from test_status_page import SHOTS, _chromium, _dom, _rows, _text
    binary = _chromium()
    with Journal.open(str(journal_path)) as j:  # a second migration in the same journal
        other = j.get_or_create_job("od:/Other", "gd:Other")
        j.plan_items(other.id, [PlannedItem("x.bin", "id-x", "file", 10)])
    journal = open_read_only(str(journal_path))
    httpd = make_server(StatusState(journal), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        dom = _dom(binary, tmp_path / "profile", f"http://127.0.0.1:{httpd.server_address[1]}/",
                   SHOTS / "driveferry-status-states.png")
    finally:
        httpd.shutdown()
        httpd.server_close()
        journal.close()
    assert _text(dom, "pct") == "30.4%" and _text(dom, "files") == "2 / 6"
    assert _text(dom, "bytes") == "7.0 MiB of 23.0 MiB"
    assert _text(dom, "problems") == "1 / 1 / 0"
    assert sorted(_rows(dom, "workers")) == ["alive", "dead", "dead", "finished"]
    assert _rows(dom, "runs") == ["finished", "running", "interrupted", "interrupted"]
    assert _rows(dom, "files-table") == ["in_flight"] and ">inflight.bin<" in dom  # the default filter
    assert ">IntegrityError: md5 differs<" in dom  # the last errors
    assert '<option value="1">od:/P -&gt; gd:A</option>' in dom and "od:/Other -&gt; gd:Other" in dom
