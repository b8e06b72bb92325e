"""`driveferry auth login|status` and `driveferry remotes [--check]` against one emulator (module scope).

The tests run in file order: the last one revokes every token the emulator issued.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.server import Emulator


@dataclass
class Setup:
    emu: Emulator
    dir: Path
    config: Path
    state: Path
    creds: dict[str, Any]

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if k not in ("COLAB_RELEASE_TAG", "GOOGLE_APPLICATION_CREDENTIALS")}
        full.update(DRIVEFERRY_CONFIG=str(self.config), DRIVEFERRY_STATE_DIR=str(self.state), **env)
        return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], capture_output=True, text=True,
                              timeout=120, env=full, cwd=self.dir)

    def control(self, path: str) -> None:
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.emu.ca_file)
        s.post(self.emu.base_url + "/_emulator" + path, timeout=30).raise_for_status()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    d = tmp_path_factory.mktemp("auth")
    with Emulator(d / "emu", tls=True) as emu:
        desc = emu.describe()
        creds = desc["credentials"]
        sections: dict[str, dict[str, Any]] = remote_sections(desc)
        where = {"endpoint": desc["base_url"], "ca_file": desc["ca_file"]}
        ms = creds["microsoft"]
        sections["dc"] = {"type": "onedrive", **where, "auth": "device_code", "tenant": ms["tenant_id"],
                          "client_id": ms["public_client_id"]}
        sections["bare"] = {"type": "gdrive", **where}
        sections["colab"] = {"type": "gdrive", **where}
        sections["broken"] = {**sections["gdrive"], "client_secret": "GOCSPX-wrong-but-secret"}
        sections["loc"] = {"type": "local", "root": str(d)}
        config = d / "remotes.toml"
        config.write_text(remotes_toml(sections, prefix=""))
        g = creds["google"]
        (d / "sa.json").write_text(json.dumps(g["service_account_info"]))
        (d / "authorized_user.json").write_text(json.dumps({
            "type": "authorized_user", "client_id": g["client_id"], "client_secret": g["client_secret"],
            "refresh_token": g["refresh_token"], "token_uri": g["token_uri"]}))
        yield Setup(emu, d, config, d / "state", creds)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _one_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    detail = f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 2, detail
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("driveferry: error:") and fragment in lines[0], detail


def test_status_before_login(setup: Setup) -> None:
    proc = setup.cli("auth", "status")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "dc (onedrive): not signed in; run `driveferry auth login dc`" in lines
    assert "loc (local): local folder, no sign-in" in lines
    assert any(line.startswith("onedrive (onedrive): app ") and "client credentials" in line for line in lines)


def test_onedrive_device_code_login(setup: Setup) -> None:
    proc = setup.cli("auth", "login", "dc")
    assert proc.returncode == 0, proc.stderr
    prompt, result = proc.stdout.splitlines()
    assert "https://microsoft.com/devicelogin" in prompt and "enter the code " in prompt
    cache = setup.state / "msal-cache-dc.json"
    assert result.startswith("dc: signed in to OneDrive as alex@contoso.onmicrosoft.com; token cache "), result
    assert proc.stderr == ""
    assert _mode(cache) == 0o600
    assert _mode(setup.state) == 0o700
    listed = setup.cli("ls", "dc:/")  # the cached refresh token signs the next process in
    assert listed.returncode == 0, listed.stderr
    status = setup.cli("auth", "status", "dc")
    assert status.stdout.startswith("dc (onedrive): signed in as alex@contoso.onmicrosoft.com (device code")


def test_onedrive_login_declined(setup: Setup) -> None:
    setup.control("/identity/deny")
    _one_error(setup.cli("auth", "login", "dc"), "authorization_declined")


def test_onedrive_client_credentials_login_proves_the_secret(setup: Setup) -> None:
    proc = setup.cli("auth", "login", "onedrive")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"onedrive: signed in to OneDrive as app {setup.creds['microsoft']['client_id']}")


def test_gdrive_service_account_login(setup: Setup) -> None:
    proc = setup.cli("auth", "login", "bare", "--service-account", "sa.json")
    assert proc.returncode == 0, proc.stderr
    email = setup.creds["google"]["service_account_info"]["client_email"]
    assert proc.stdout.startswith(f"bare: signed in to Google Drive as {email} (service account {email})")
    stored = setup.state / "gdrive-bare.login.json"
    assert _mode(stored) == 0o600
    assert setup.cli("ls", "bare:").returncode == 0
    assert setup.cli("auth", "status", "bare").stdout.strip() == \
        f"bare (gdrive): service account {email} (stored by `auth login`)"


def test_gdrive_token_file_login_replaces_it(setup: Setup) -> None:
    proc = setup.cli("auth", "login", "bare", "--token-file", "authorized_user.json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("bare: signed in to Google Drive as alex@example.com (refresh token of OAuth ")
    assert json.loads((setup.state / "gdrive-bare.login.json").read_text())["type"] == "authorized_user"
    assert setup.cli("ls", "bare:").returncode == 0
    status = setup.cli("auth", "status", "bare", "--json")
    record = json.loads(status.stdout)
    assert record["signed_in"] is True and "as alex@example.com" in record["detail"]


def test_gdrive_pasted_refresh_token_uses_the_configured_client(setup: Setup, tmp_path: Path) -> None:
    # the `gdrive` remote configures client_id/secret; the pasted token comes from stdin
    conf = tmp_path / "r.toml"
    g = setup.creds["google"]
    conf.write_text(remotes_toml({"pasted": {"type": "gdrive", "endpoint": setup.emu.base_url,
                                             "ca_file": str(setup.emu.ca_file), "client_id": g["client_id"],
                                             "client_secret": g["client_secret"], "token_uri": g["token_uri"]}},
                                 prefix=""))
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "auth", "login", "pasted", "--paste-refresh-token",
                           "--config", str(conf)], input=g["refresh_token"] + "\n", capture_output=True, text=True,
                          timeout=120, env={**os.environ, "DRIVEFERRY_STATE_DIR": str(tmp_path / "st")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("pasted: signed in to Google Drive as alex@example.com")
    assert g["refresh_token"] not in proc.stdout + proc.stderr


def test_gdrive_colab_default_credentials(setup: Setup) -> None:
    """On Colab (COLAB_RELEASE_TAG set) login with no option uses application default credentials."""
    proc = setup.cli("auth", "login", "colab", COLAB_RELEASE_TAG="release-colab_20261101",
                     GOOGLE_APPLICATION_CREDENTIALS=str(setup.dir / "sa.json"))
    assert proc.returncode == 0, proc.stderr
    assert "(application default credentials)" in proc.stdout
    assert proc.stderr == ""
    status = setup.cli("auth", "status", "colab", COLAB_RELEASE_TAG="x")
    assert "application default credentials of Colab" in status.stdout


def test_gdrive_colab_with_adc_configured_tests_it(setup: Setup, tmp_path: Path) -> None:
    """The notebook's config says `auth = "adc"`: login on Colab tests those credentials, stores nothing."""
    conf = tmp_path / "r.toml"
    conf.write_text(remotes_toml({"gdrive": {"type": "gdrive", "auth": "adc", "endpoint": setup.emu.base_url,
                                             "ca_file": str(setup.emu.ca_file)}}, prefix=""))
    proc = setup.cli("auth", "login", "gdrive", "--config", str(conf), COLAB_RELEASE_TAG="x",
                     GOOGLE_APPLICATION_CREDENTIALS=str(setup.dir / "sa.json"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gdrive: the configured Google credentials work; signed in as relay@")
    assert not (setup.state / "gdrive-gdrive.login.json").exists()


def test_gdrive_login_without_credentials_is_refused(setup: Setup, tmp_path: Path) -> None:
    conf = tmp_path / "r.toml"
    conf.write_text(remotes_toml({"nocreds": {"type": "gdrive", "endpoint": setup.emu.base_url}}, prefix=""))
    _one_error(setup.cli("auth", "login", "nocreds", "--config", str(conf)), "has no Drive credentials")


def test_gdrive_login_refuses_when_config_credentials_would_win(setup: Setup) -> None:
    _one_error(setup.cli("auth", "login", "gdrive", "--token-file", "authorized_user.json"),
               "would win over a stored sign-in")


def test_gdrive_login_tests_configured_credentials(setup: Setup) -> None:
    proc = setup.cli("auth", "login", "gdrive")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "gdrive: the configured Google credentials work; signed in as alex@example.com"


def test_remotes_lists_without_secrets(setup: Setup) -> None:
    proc = setup.cli("remotes")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names == ["bare", "broken", "colab", "dc", "gdrive", "loc", "onedrive"]
    for secret in ("GOCSPX-wrong-but-secret", setup.creds["google"]["client_secret"],
                   setup.creds["microsoft"]["client_secret"], setup.creds["google"]["refresh_token"]):
        assert secret not in proc.stdout + proc.stderr


def test_remotes_check_one_line_each(setup: Setup) -> None:
    proc = setup.cli("remotes", "--check")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # `broken` fails
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert set(lines) == {"bare", "broken", "colab", "dc", "gdrive", "loc", "onedrive"}
    for name in ("bare", "dc", "gdrive", "loc", "onedrive"):
        assert lines[name].startswith("ok (root listed"), (name, lines[name])
    assert lines["broken"].startswith("error: ") and "credentials rejected" in lines["broken"]
    assert lines["colab"].startswith("error: ") and "no application default credentials" in lines["colab"]
    assert "GOCSPX-wrong-but-secret" not in proc.stdout + proc.stderr
    as_json = [json.loads(line) for line in setup.cli("remotes", "--check", "--json").stdout.splitlines()]
    assert {r["remote"]: r["status"] for r in as_json}["broken"] == "error"


def test_revoked_device_code_sign_in_asks_to_log_in_again(setup: Setup) -> None:
    setup.control("/identity/revoke")  # last: every token of the module's emulator is gone
    _one_error(setup.cli("ls", "dc:/"), "run `driveferry auth login dc`")
