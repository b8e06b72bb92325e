"""`driveferry emulator serve` as a user runs it: one JSON line, seeded state, restart, loopback only."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

SEED = Path(__file__).resolve().parents[2] / "configs" / "emulator" / "small.toml"


def _serve(data: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen([sys.executable, "-m", "driveferry.cli", "emulator", "serve", "--data", str(data),
                             "--tls", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return proc, json.loads(line)


def _get(info: dict[str, object], path: str, token: str) -> requests.Response:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(info["ca_file"])
    return s.get(f"{info['base_url']}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_serve_prints_json_seeds_and_keeps_state(tmp_path: Path) -> None:
    proc, info = _serve(tmp_path / "emu", "--seed", str(SEED))
    try:
        assert str(info["base_url"]).startswith("https://127.0.0.1:")
        creds = info["credentials"]
        assert isinstance(creds, dict) and {"google", "microsoft", "graph", "drive"} <= set(creds)
        token = creds["microsoft"]["access_token"]
        children = _get(info, "/v1.0/me/drive/root:/Projects:/children?$top=100", token).json()["value"]
        names = {c["name"] for c in children}
        assert {"readme.txt", "data", "Notebooks", "many"} <= names
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    proc, info2 = _serve(tmp_path / "emu")  # a restart on the same data keeps items and credentials
    try:
        token2 = info2["credentials"]["microsoft"]["access_token"]  # type: ignore[index]
        assert token2 == token
        again = _get(info2, "/v1.0/me/drive/root:/Projects:/children?$top=100", token2).json()["value"]
        assert {c["name"] for c in again} == names
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_serve_refuses_non_loopback_without_allow_remote(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "emulator", "serve", "--data",
                           str(tmp_path / "e"), "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("driveferry: error:") and "non-loopback" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
