"""Realism profile, limits: Drive per-user rate limits (403 rateLimitExceeded, no Retry-After), Graph
throttling (429 + Retry-After in seconds and as an HTTP-date), storms on the scaled clock, the control
endpoint's validation, the scaled clock itself and `serve --profile` with a bad file. Over real HTTP; time
moves through the emulator clock, never by sleeping."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from realism_env import RealismEnv

from driveferry.emulator import state as state_mod
from driveferry.emulator.state import Clock

REAL_PROFILE = Path(__file__).resolve().parents[2] / "configs" / "emulator" / "real.toml"


class Env(RealismEnv):
    def __init__(self, path: Path, **kw: Any) -> None:
        super().__init__(path, **kw)
        self.drive = self.session(self.creds["google"]["access_token"])
        self.graph = self.session(self.creds["microsoft"]["access_token"])
        self.graph_root = f"{self.creds['graph']['api_root']}/me/drive"

    def about(self, s: requests.Session | None = None) -> requests.Response:
        return (s or self.drive).get(self.base + "/drive/v3/about", params={"fields": "user"})


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path / "emu")
    yield e
    e.emu.stop()


def test_default_profile_is_kind(env: Env) -> None:
    body = env.realism()
    assert body["settings"]["clock_scale"] == 1.0 and body["settings"]["drive"]["rate_limit"]["reads_per_s"] == 0
    assert all(env.about().status_code == 200 for _ in range(60))
    assert all(env.graph.get(env.graph_root).status_code == 200 for _ in range(60))
    assert env.counters() == {}
    assert "time_scale" not in env.emu.credentials()["drive"]


def test_drive_rate_limit_is_403_usage_limits_without_retry_after(env: Env) -> None:
    # a refill rate this small makes the bucket's size the whole budget until the clock moves
    env.realism({"drive": {"rate_limit": {"reads_per_s": 0.001, "read_burst": 3, "writes_per_s": 0.001,
                                          "write_burst": 1}}})
    assert [env.about().status_code for _ in range(3)] == [200, 200, 200]
    refused = [env.about() for _ in range(2)]
    for r, reason, message in zip(refused, ("userRateLimitExceeded", "rateLimitExceeded"),
                                  ("User Rate Limit Exceeded", "Rate Limit Exceeded"), strict=True):
        assert r.status_code == 403 and "Retry-After" not in r.headers
        assert r.json() == {"error": {"code": 403, "message": message, "errors": [
            {"domain": "usageLimits", "reason": reason, "message": message}]}}
    # writes have their own budget, and another user has buckets of their own
    create = env.drive.post(env.base + "/drive/v3/files", json={"name": "w", "mimeType": "text/plain"})
    assert create.status_code == 200, create.text
    other = env.session(env.emu.state.issue_token("google", "other@example.com"))
    assert env.about(other).status_code == 200
    env.advance(1000)  # one token back for every 1000 emulated seconds
    assert env.about().status_code == 200 and env.about().status_code == 403
    assert env.counters()["drive.rate_limited"] == 3


def _throttle_settings(form: str) -> dict[str, Any]:
    return {"graph": {"rate_limit": {"reads_per_s": 0.05, "read_burst": 2},
                      "throttle": {"retry_after_s": [41, 120], "retry_after_form": form}}}


def test_graph_throttle_is_429_with_retry_after_seconds_for_the_whole_episode(env: Env) -> None:
    env.realism(_throttle_settings("seconds"))
    assert [env.graph.get(env.graph_root).status_code for _ in range(2)] == [200, 200]
    r = env.graph.get(env.graph_root)
    assert r.status_code == 429 and r.headers["Retry-After"] == "41"
    err = r.json()["error"]
    assert err["code"] == "activityLimitReached" and err["innerError"]["code"] == "throttledRequest"
    assert err["message"] == "The request has been throttled"
    env.advance(30)  # inside the episode every call is refused, with the seconds left
    again = env.graph.get(env.graph_root)
    assert again.status_code == 429 and again.headers["Retry-After"] in ("10", "11")  # 11 s left, rounded up
    env.advance(11)  # episode over; 41 s at 0.05/s refilled two tokens
    assert env.graph.get(env.graph_root).status_code == 200
    counters = env.counters()
    assert counters["graph.throttled"] == 2 and counters["graph.rate_limited"] == 1


def test_graph_throttle_retry_after_as_http_date_in_emulated_time(env: Env) -> None:
    env.advance(3600)  # emulated time is an hour ahead of the wall clock
    env.realism(_throttle_settings("http-date"))
    for _ in range(2):
        env.graph.get(env.graph_root)
    r = env.graph.get(env.graph_root)
    assert r.status_code == 429
    at = parsedate_to_datetime(r.headers["Retry-After"])
    sent = parsedate_to_datetime(r.headers["Date"])  # the server's Date is emulated time too
    assert 40 <= (at - sent).total_seconds() <= 42
    assert (at - datetime.now(UTC)).total_seconds() > 3600
    assert env.counters()["graph.retry_after_http_date"] == 1


def test_graph_episodes_every_n_requests_and_the_503_form(env: Env) -> None:
    env.realism({"graph": {"throttle": {"status": 503, "retry_after_s": [3600], "every_requests": 3}}})
    assert [env.graph.get(env.graph_root).status_code for _ in range(2)] == [200, 200]
    r = env.graph.get(env.graph_root)
    assert r.status_code == 503 and r.headers["Retry-After"] == "3600"
    assert r.json()["error"]["code"] == "serviceNotAvailable"
    env.advance(3600)
    assert env.graph.get(env.graph_root).status_code == 200
    assert env.counters()["graph.episodes_scheduled"] == 1


def test_storm_refuses_every_call_until_it_ends_on_the_scaled_clock(env: Env) -> None:
    env.realism({"clock_scale": 50})
    assert env.emu.credentials()["drive"]["time_scale"] == 50
    assert all(section["time_scale"] == 50 for section in env.emu.credentials().values())
    r = env.ctl.post(env.base + "/_emulator/realism/storm", json={"api": "*", "duration_s": 600})
    assert r.status_code == 200 and set(r.json()["storms"]) == {"drive", "graph"}
    d = env.about()
    assert d.status_code == 403 and "Retry-After" not in d.headers
    assert d.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    g = env.graph.get(env.graph_root)
    assert g.status_code == 429 and 0 < int(g.headers["Retry-After"]) <= 600
    env.advance(600)
    assert env.about().status_code == 200 and env.graph.get(env.graph_root).status_code == 200
    # a storm of one API leaves the other alone, and duration 0 ends it early
    env.ctl.post(env.base + "/_emulator/realism/storm", json={"api": "graph", "duration_s": 3600})
    assert env.about().status_code == 200 and env.graph.get(env.graph_root).status_code == 429
    env.ctl.post(env.base + "/_emulator/realism/storm", json={"api": "graph", "duration_s": 0})
    assert env.graph.get(env.graph_root).status_code == 200
    counters = env.counters()
    assert counters["drive.storm_rejected"] == 1 and counters["graph.storm_rejected"] == 2


def test_clock_scale_runs_emulated_time_k_times_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    wall = [1_000_000.0]
    monkeypatch.setattr(state_mod.time, "time", lambda: wall[0])
    clock = Clock(offset_s=10.0)
    assert clock.timestamp() == 1_000_010.0
    clock.set_scale(60)
    wall[0] += 5
    assert clock.timestamp() == 1_000_010.0 + 300
    clock.advance(100)
    clock.set_scale(1)  # no jump when the scale changes
    assert clock.timestamp() == 1_000_410.0
    wall[0] += 2
    assert clock.timestamp() == 1_000_412.0


@pytest.mark.parametrize("body, needle", [
    (b"{not json", "malformed JSON"),
    (b'{"drive": {"nope": 1}}', "drive.nope: expected a known setting"),
    (b'{"clock_scale": -1}', "clock_scale"),
    (b'{"graph": {"throttle": {"retry_after_form": "sometimes"}}}', "retry_after_form"),
    (b'{"drive": {"rate_limit": {"reads_per_s": "fast"}}}', "drive.rate_limit.reads_per_s"),
    (b"[]", "expected a table"),
])
def test_bad_settings_are_400_with_a_message(env: Env, body: bytes, needle: str) -> None:
    r = env.ctl.put(env.base + "/_emulator/realism", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and needle in r.json()["error"]["message"]
    assert env.realism()["settings"]["clock_scale"] == 1.0  # unchanged


@pytest.mark.parametrize("body", [{"api": "dropbox", "duration_s": 5}, {"api": "drive", "duration_s": -1},
                                  {"api": "drive"}, {"duration_s": 3}])
def test_bad_storm_requests_are_400(env: Env, body: dict[str, Any]) -> None:
    r = env.ctl.post(env.base + "/_emulator/realism/storm", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "badRequest"


def test_real_profile_loads_and_serves(tmp_path: Path) -> None:
    e = Env(tmp_path / "emu", profile=REAL_PROFILE)
    try:
        settings = e.realism()["settings"]
        assert settings["drive"]["private_app_properties"] is True
        assert settings["graph"]["throttle"]["retry_after_s"] == [41.0, 120.0, 315.0]
        assert e.about().status_code == 200
        # the profile's model rules are live from the first request: a new folder is hidden from search
        r = e.drive.post(e.base + "/drive/v3/files", json={"name": "New", "mimeType": "application/vnd.google-apps.folder"})
        assert r.status_code == 200, r.text
        listed = e.drive.get(e.base + "/drive/v3/files", params={"q": "name = 'New'"})
        assert listed.status_code == 200 and listed.json()["files"] == []
        assert e.counters()["drive.lag_hidden"] == 1
    finally:
        e.emu.stop()


@pytest.mark.parametrize("content", ["clock_scale = [", "[drive]\nwhatever = 1\n", None])
def test_serve_with_a_bad_profile_is_one_line_and_exit_2(tmp_path: Path, content: str | None) -> None:
    profile = tmp_path / "p.toml"
    if content is not None:
        profile.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "emulator", "serve", "--data",
                           str(tmp_path / "emu"), "--profile", str(profile)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "realism profile" in lines[0] and "Traceback" not in proc.stderr


def test_serve_with_the_real_profile(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "driveferry.cli", "emulator", "serve", "--data",
                             str(tmp_path / "emu"), "--profile", str(REAL_PROFILE)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        s = requests.Session()
        s.trust_env = False
        body = s.get(info["base_url"] + "/_emulator/realism", timeout=30).json()
        assert body["settings"]["drive"]["rate_limit"]["writes_per_s"] == 3.0
        assert "time_scale" not in info["credentials"]["drive"]  # the real profile runs at real time
    finally:
        proc.terminate()
        proc.wait(timeout=30)
