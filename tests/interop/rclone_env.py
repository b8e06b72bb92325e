"""rclone against the emulator: an emulator, a CONNECT proxy and an rclone config with two remotes.

rclone has no endpoint setting for its drive and onedrive backends, so it runs with
`HTTPS_PROXY=<proxy>` and `--ca-cert <emulator CA>`: every `CONNECT www.googleapis.com:443` (and
oauth2.googleapis.com, graph.microsoft.com, login.microsoftonline.com) is tunnelled to the emulator's
TLS port, whose certificate names those hosts (emulator/tls.py). Go does not proxy 127.0.0.1, so
Graph's download URLs, which point at the emulator's own base URL, go to it directly.

    with RcloneEnv(tmp_path) as env:
        env.run_rclone("lsjson", "emudrive:")            # -> CompletedProcess (check=True by default)
        env.run_rclone("copy", str(src), "emuonedrive:dir")
        env.emu, env.proxy, env.config_file, env.drive_folder_id

Remotes: `emudrive:` (type drive, rooted at a fresh folder `rclone-root` so tests see only their own
files; `drive_folder_id` is its id) and `emuonedrive:` (type onedrive, drive_type business, the
emulated drive's root). Both hold real tokens from the emulator's token endpoints (Google refresh grant,
Entra device-code grant), written with an expiry in the past, so rclone's first call refreshes through
the proxy (lib/oauthutil). The config lives in the given directory, never in ~.

`rclone_or_skip()` returns rclone's path; without rclone it skips, or fails when CI is set (as the
PostgreSQL tests do).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.proxy import ConnectProxy
from driveferry.emulator.server import Emulator

RCLONE_TIMEOUT_S = 120
_PAST = "2000-01-01T00:00:00Z"  # rclone refreshes a token whose expiry has passed


def rclone_or_skip() -> str:
    """The rclone binary; skip without it (fail under CI=true: scripts/test.sh installs it)."""
    path = shutil.which("rclone")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("rclone is not installed (CI=true: scripts/test.sh installs the Debian package)")
        pytest.skip("rclone is not installed (Debian package rclone; scripts/test.sh installs it as root)")
    return path


class RcloneEnv:
    """An emulator (TLS), a CONNECT proxy to it and an rclone config file under `work_dir`."""

    def __init__(self, work_dir: Path, emulator: Emulator | None = None) -> None:
        self.rclone = rclone_or_skip()
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self._own_emu = emulator is None
        self.emu = emulator if emulator is not None else Emulator(work_dir / "emu", tls=True).start()
        self.proxy = ConnectProxy(("127.0.0.1", self.emu.port)).start()
        self.config_file = work_dir / "rclone.conf"
        self.drive_folder_id = drive_model(self.emu).create_folder("rclone-root").id
        self.write_config()

    # --- tokens from the emulator's own endpoints -------------------------------------------------------

    def http(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.emu.ca_file)
        return s

    def google_token(self) -> dict[str, Any]:
        g = self.emu.credentials()["google"]
        r = self.http().post(g["token_uri"], data={"grant_type": "refresh_token", "client_id": g["client_id"],
                                                   "client_secret": g["client_secret"],
                                                   "refresh_token": g["refresh_token"]}, timeout=30)
        r.raise_for_status()
        return {"access_token": r.json()["access_token"], "token_type": "Bearer",
                "refresh_token": g["refresh_token"], "expiry": _PAST}

    def microsoft_token(self) -> dict[str, Any]:
        """A delegated token by the device-code grant (the emulator approves it), as `rclone config` gets one."""
        ms = self.emu.credentials()["microsoft"]
        base = self.emu.base_url + "/common/oauth2/v2.0"
        s = self.http()
        scope = "Files.ReadWrite.All offline_access"
        code = s.post(base + "/devicecode", data={"client_id": ms["public_client_id"], "scope": scope}, timeout=30)
        code.raise_for_status()
        poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": ms["public_client_id"],
                "device_code": code.json()["device_code"]}
        r = s.post(base + "/token", data=poll, timeout=30)
        if r.status_code == 400 and r.json().get("error") == "authorization_pending":  # approved after one poll
            r = s.post(base + "/token", data=poll, timeout=30)
        r.raise_for_status()
        body = r.json()
        return {"access_token": body["access_token"], "token_type": "Bearer",
                "refresh_token": body["refresh_token"], "expiry": _PAST}

    def write_config(self) -> None:
        g, ms = self.emu.credentials()["google"], self.emu.credentials()["microsoft"]
        drive_id = self.emu.credentials()["graph"]["drive_id"]
        self.written_tokens = {"emudrive": self.google_token(), "emuonedrive": self.microsoft_token()}
        text = (
            "[emudrive]\ntype = drive\n"
            f"client_id = {g['client_id']}\nclient_secret = {g['client_secret']}\nscope = drive\n"
            f"root_folder_id = {self.drive_folder_id}\n"
            f"token = {json.dumps(self.written_tokens['emudrive'])}\n\n"
            "[emuonedrive]\ntype = onedrive\n"
            f"client_id = {ms['public_client_id']}\n"
            f"drive_id = {drive_id}\ndrive_type = business\n"
            f"token = {json.dumps(self.written_tokens['emuonedrive'])}\n")
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)

    def saved_token(self, remote: str) -> dict[str, Any]:
        """The token rclone keeps in the config now (it rewrites it after each refresh)."""
        import configparser
        cp = configparser.ConfigParser(interpolation=None)
        cp.read(self.config_file)
        token: dict[str, Any] = json.loads(cp[remote]["token"])
        return token

    # --- running rclone ---------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment rclone runs with: proxy set, the emulator CA as Go's trust roots, no inherited
        rclone settings, HOME in work_dir."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RCLONE_") and k.lower() not in ("http_proxy", "https_proxy", "no_proxy",
                                                                    "all_proxy")}
        # SSL_CERT_FILE: rclone 1.60 polls Graph's copy monitor URL with Go's default client, which
        # ignores --ca-cert (backend/onedrive/onedrive.go waitForJob: http.Get); Go reads the roots from it
        env.update({"HTTPS_PROXY": self.proxy.url, "HOME": str(self.work_dir), "XDG_CACHE_HOME":
                    str(self.work_dir / "cache"), "RCLONE_CONFIG": str(self.config_file),
                    "SSL_CERT_FILE": str(self.emu.ca_file)})
        return env

    def base_args(self) -> list[str]:
        return [self.rclone, "--config", str(self.config_file), "--ca-cert", str(self.emu.ca_file),
                "--low-level-retries", "2", "--retries", "1"]

    def run_rclone(self, *args: str, check: bool = True, timeout_s: float = RCLONE_TIMEOUT_S,
                   input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run `rclone <args>` (stdout/stderr captured as bytes); check: raise with stderr on a non-zero exit."""
        proc = subprocess.run([*self.base_args(), *args], env=self.env(), capture_output=True,
                              timeout=timeout_s, input=input_bytes, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"rclone {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stderr.decode(errors='replace')[-4000:]}")
        return proc

    def lsjson(self, remote: str, *args: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = json.loads(self.run_rclone("lsjson", *args, remote).stdout)
        return out

    def close(self) -> None:
        self.proxy.stop()
        if self._own_emu:
            self.emu.stop()

    def __enter__(self) -> RcloneEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
