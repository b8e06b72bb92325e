"""Secrets never leak: every command run with -vv (debug logging) and --json against the emulator, and
all of stdout/stderr, the --report file and the journal database are searched for every access token,
refresh token, client secret and private key the emulator issued or the config holds. Token caches
are mode 0600; the emulator refuses non-loopback binds unless told otherwise."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.seed import seed_emulator
from driveferry.emulator.server import Emulator

SPEC: dict[str, Any] = {
    "seed": 11,
    "onedrive": {"files": [
        {"path": "Projects/readme.txt", "size": "2K", "content": "text"},
        {"path": "Projects/data/a.bin", "size": "1300K"},
        {"path": "Projects/data/b.bin", "size": "64K"},
    ]},
}
WRONG_SECRET = "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-leak"


@dataclass
class Run:
    emu: Emulator
    dir: Path
    config: Path
    state: Path
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command, stdout + stderr)

    def cli(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(self.config), "DRIVEFERRY_STATE_DIR": str(self.state)}
        proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "-vv", *args], capture_output=True, text=True,
                              timeout=300, env=env, cwd=self.dir)
        assert proc.returncode in ok, f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        self.outputs.append((" ".join(args), proc.stdout + proc.stderr))
        return proc


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    d = tmp_path_factory.mktemp("secrets")
    with Emulator(d / "emu", tls=True) as emu:
        seed_emulator(emu, SPEC)
        desc = emu.describe()
        sections: dict[str, dict[str, Any]] = remote_sections(desc)
        ms = desc["credentials"]["microsoft"]
        sections["dc"] = {"type": "onedrive", "endpoint": desc["base_url"], "ca_file": desc["ca_file"],
                          "auth": "device_code", "tenant": ms["tenant_id"], "client_id": ms["public_client_id"]}
        sections["wrong"] = {**sections["gdrive"], "client_secret": WRONG_SECRET}
        config = d / "remotes.toml"
        config.write_text(remotes_toml(sections, prefix=""))
        r = Run(emu, d, config, d / "state")
        r.cli("auth", "login", "dc")
        r.cli("migrate", "onedrive:/Projects", "gdrive:Archive", "--journal", "journal.sqlite3", "--json",
              "--report", "report.json")
        r.cli("migrate", "dc:/Projects", "gdrive:FromDeviceCode", "--journal", "journal.sqlite3", "--json")
        r.cli("ls", "-R", "--json", "gdrive:Archive")
        r.cli("ls", "dc:/Projects")
        r.cli("status", "--journal", "journal.sqlite3", "--json", "--failed")
        r.cli("remotes", "--check", "--json", ok=(1,))  # `wrong` fails its check
        r.cli("remotes", "--check", ok=(1,))
        r.cli("auth", "status", "--json")
        r.cli("ls", "wrong:", ok=(2,))
        r.cli("hashsum", "md5", "gdrive:Archive")
        yield r


def _secrets(r: Run) -> list[str]:
    """Every credential in play: the emulator's issued tokens (its token table), its credentials,
    and the secret values of the config."""
    creds = r.emu.credentials()
    g, m = creds["google"], creds["microsoft"]
    found = [g["client_secret"], g["refresh_token"], g["access_token"], m["client_secret"], m["access_token"],
             WRONG_SECRET]
    key_lines = [line for line in g["service_account_info"]["private_key"].splitlines() if "PRIVATE KEY" not in line]
    found += key_lines[1:3]
    found += [row["token"] for row in r.emu.state.query("SELECT token FROM emu_tokens")]
    return sorted(set(found))


def test_commands_ran_and_tokens_were_issued(run: Run) -> None:
    issued = run.emu.state.query("SELECT audience, count(*) AS n FROM emu_tokens GROUP BY audience")
    audiences = {row["audience"] for row in issued}
    # Drive and Graph access tokens, and the refresh tokens of the device-code sign-in
    assert {"google", "microsoft", "microsoft-refresh"} <= audiences
    assert any("DEBUG" in out for _, out in run.outputs), "debug logging was not on"


def test_no_secret_in_any_output(run: Run) -> None:
    secrets = _secrets(run)
    assert len(secrets) > 8
    for command, out in run.outputs:
        for secret in secrets:
            assert secret not in out, f"`driveferry -vv {command}` printed a secret ({secret[:6]}...)"


def test_no_secret_in_report_or_journal(run: Run) -> None:
    files = [run.dir / "report.json", *sorted(run.dir.glob("journal.sqlite3*"))]
    assert files[0].exists() and files[1].exists()
    # the journal's own content (WAL included) after a clean close, and as raw bytes
    with sqlite3.connect(run.dir / "journal.sqlite3") as db:
        dump = "\n".join(db.iterdump())
    blobs = [dump.encode(), *(f.read_bytes() for f in files)]
    for secret in _secrets(run):
        for blob in blobs:
            assert secret.encode() not in blob, f"a secret ({secret[:6]}...) is stored in the report or journal"


def test_token_caches_are_private(run: Run) -> None:
    caches = sorted(run.state.iterdir())
    names = {p.name for p in caches}
    assert {"msal-cache-dc.json", "gdrive-gdrive.token.json"} <= names, names
    for p in caches:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, f"{p} is {oct(p.stat().st_mode)}"
    assert stat.S_IMODE(run.state.stat().st_mode) == 0o700


def test_report_file_is_private(run: Run) -> None:
    assert stat.S_IMODE((run.dir / "report.json").stat().st_mode) == 0o600


def test_emulator_refuses_non_loopback_binds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        Emulator(tmp_path / "a", host="0.0.0.0")
    with pytest.raises(ValueError, match="non-loopback"):
        Emulator(tmp_path / "b", host="::")
    emu = Emulator(tmp_path / "c", host="0.0.0.0", allow_remote=True)  # told otherwise: it binds
    try:
        assert emu.base_url.startswith("http://0.0.0.0:")
    finally:
        emu.state.close()
        emu._server.server_close()
