"""The emulator in one step: the commands in configs/remotes.example.toml run as written, `serve
--remotes-out` writes a private, working remotes file, `user = <UPN>` addresses the drive, and a restart
keeps the port."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "remotes.example.toml"


def _example_commands() -> list[list[str]]:
    """The `driveferry ...` command lines of the example's emulator section."""
    text = EXAMPLE.read_text(encoding="utf-8")
    section = text[text.index("# --- the emulator"):text.index("# --- Retries")]
    return [shlex.split(m.group(1)) for m in re.finditer(r"^#\s+(driveferry .+)$", section, re.M)]


def _cli(argv: list[str]) -> list[str]:
    assert argv[0] == "driveferry"
    return [sys.executable, "-m", "driveferry.cli", *argv[1:]]


def _start(argv: list[str], cwd: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(_cli(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return proc, json.loads(line)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DRIVEFERRY_CONFIG"}
    return subprocess.run(_cli(argv), cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_example_emulator_section_works_as_written(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    shutil.copytree(REPO / "configs" / "emulator", tmp_path / "configs" / "emulator")
    serve_cmd, ls_cmd = _example_commands()
    assert serve_cmd[1:3] == ["emulator", "serve"] and ls_cmd[1] == "ls"
    proc, info = _start(serve_cmd, tmp_path)
    try:
        out = tmp_path / "emulator-remotes.toml"
        assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds the emulator's secrets
        written = tomllib.loads(out.read_text(encoding="utf-8"))["remotes"]
        assert written["emu-onedrive"]["endpoint"] == info["base_url"] and info["remotes_file"] == str(out)
        listed = _run(ls_cmd, tmp_path)
        assert listed.returncode == 0, listed.stderr
        names = {line.split()[-1].rstrip("/") for line in listed.stdout.splitlines()}
        assert {"readme.txt", "data", "many"} <= names, listed.stdout

        # the shape the example documents is the shape serve writes (same keys per remote)
        text = EXAMPLE.read_text(encoding="utf-8")
        for name, section in written.items():
            block = text[text.index(f"# [remotes.{name}]"):].split("\n#\n")[0].split("\n\n")[0]
            keys = set(re.findall(r"^# (\w+) = ", block, re.M))
            assert keys == set(section), (name, keys, set(section))

        # `user = <UPN>` instead of drive_id: Graph's /users/{upn}/drive; an unknown user is refused
        by_user = out.read_text(encoding="utf-8").replace(
            f'drive_id = "{written["emu-onedrive"]["drive_id"]}"', 'user = "Alex@contoso.onmicrosoft.com"')
        assert "drive_id" not in by_user
        (tmp_path / "by-user.toml").write_text(by_user, encoding="utf-8")
        again = _run(["driveferry", "ls", "emu-onedrive:/Projects", "--config", "by-user.toml"], tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stdout == listed.stdout
        (tmp_path / "stranger.toml").write_text(by_user.replace("Alex@", "mallory@"), encoding="utf-8")
        refused = _run(["driveferry", "ls", "emu-onedrive:/Projects", "--config", "stranger.toml"], tmp_path)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert refused.stdout == ""
    finally:
        _stop(proc)

    # a restart of the same data folder keeps the port, so the written file stays valid
    proc, info2 = _start(serve_cmd, tmp_path)
    try:
        assert info2["base_url"] == info["base_url"]
        assert _run(ls_cmd, tmp_path).stdout == listed.stdout
    finally:
        _stop(proc)


def test_remotes_out_refuses_a_folder_and_an_explicit_busy_port(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    r = _run(["driveferry", "emulator", "serve", "--data", "emu", "--remotes-out", "taken"], tmp_path)
    assert r.returncode == 2 and "--remotes-out" in r.stderr and not (tmp_path / "emu").exists()
    proc, info = _start(["driveferry", "emulator", "serve", "--data", "a", "--port", "0"], tmp_path)
    try:
        port = str(info["base_url"]).rsplit(":", 1)[1]
        busy = _run(["driveferry", "emulator", "serve", "--data", "b", "--port", port], tmp_path)
        assert busy.returncode == 2 and "--port" in busy.stderr and "Traceback" not in busy.stderr
    finally:
        _stop(proc)
