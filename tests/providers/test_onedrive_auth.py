"""msal sign-in against the emulator's Entra ID endpoints: client credentials, device code, the 0600
token cache, silent refresh after a 401, and revoked credentials."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.server import Emulator
from driveferry.errors import PermissionDeniedError, UserError
from driveferry.providers.onedrive import from_remote_config
from driveferry.providers.onedrive.auth import AuthSettings, MsalTokens, StaticToken, login, token_source

pytest.importorskip("driveferry.emulator.identity_microsoft")
pytest.importorskip("driveferry.emulator.graph.routes")


def section(emu: Emulator, *, device: bool, **extra: Any) -> dict[str, Any]:
    ms = emu.credentials()["microsoft"]
    base = {"endpoint": emu.base_url, "ca_file": str(emu.ca_file), "tenant": ms["tenant_id"]}
    if device:
        return {**base, "auth": "device_code", "client_id": ms["public_client_id"], **extra}
    return {**base, "auth": "client_credentials", "client_id": ms["client_id"],
            "client_secret": ms["client_secret"], "drive_id": emu.credentials()["graph"]["drive_id"], **extra}


def device_login(emu: Emulator, state_dir: Path) -> tuple[MsalTokens, list[Mapping[str, Any]]]:
    shown: list[Mapping[str, Any]] = []
    tokens = token_source(section(emu, device=True), name="onedrive", state_dir=state_dir)
    assert isinstance(tokens, MsalTokens)
    user = tokens.login_device_code(prompt=shown.append)  # the emulator approves after the first poll
    assert user == emu.credentials()["microsoft"]["username"]
    return tokens, shown


def test_client_credentials_and_private_cache(emulator: Emulator, tmp_path: Path) -> None:
    p = from_remote_config(section(emulator, device=False), name="onedrive", state_dir=tmp_path / "state")
    assert p.root().path == ""
    cache = tmp_path / "state" / "msal-cache-onedrive.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert "AccessToken" in cache.read_text()


def test_device_code_sign_in_then_silent_reuse(emulator: Emulator, tmp_path: Path) -> None:
    tokens, shown = device_login(emulator, tmp_path)
    assert shown and shown[0]["user_code"] and "message" in shown[0]
    cache = tmp_path / "msal-cache-onedrive.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # a later process: the persisted cache signs in silently, and /me/drive is allowed for a user
    p = from_remote_config(section(emulator, device=True), name="onedrive", state_dir=tmp_path)
    assert p.client.drive_base == "/me/drive"
    assert p.root().kind.value == "folder"


def test_cache_keeps_only_this_clients_entries(emulator: Emulator, tmp_path: Path) -> None:
    """One cache file per remote: a remote that now signs in as another client drops the entries of
    the one before (msal keeps app metadata forever; a reused remote name grew its cache without end)."""
    import json
    device_login(emulator, tmp_path)
    cache = tmp_path / "msal-cache-onedrive.json"
    public = emulator.credentials()["microsoft"]["public_client_id"]
    before = json.loads(cache.read_text())
    assert {e["client_id"] for kind in ("AccessToken", "RefreshToken", "AppMetadata")
            for e in before[kind].values()} == {public}
    p = from_remote_config(section(emulator, device=False), name="onedrive", state_dir=tmp_path)
    assert p.root().path == ""  # signed in as the app client, with the same cache file
    after = json.loads(cache.read_text())
    app = emulator.credentials()["microsoft"]["client_id"]
    kept = {e["client_id"] for kind in ("AccessToken", "RefreshToken", "IdToken", "AppMetadata")
            for e in after.get(kind, {}).values()}
    assert kept == {app}
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_revoked_user_credentials_ask_for_login(fresh_emulator: Emulator, tmp_path: Path) -> None:
    device_login(fresh_emulator, tmp_path)
    p = from_remote_config(section(fresh_emulator, device=True), name="onedrive", state_dir=tmp_path)
    p.root()
    requests.post(fresh_emulator.base_url + "/_emulator/identity/revoke", verify=str(fresh_emulator.ca_file))
    with pytest.raises(PermissionDeniedError) as info:
        p.root()  # 401 -> forced refresh -> invalid_grant
    assert "driveferry auth login onedrive" in str(info.value)


def test_app_credentials_recover_after_token_revocation(fresh_emulator: Emulator, tmp_path: Path) -> None:
    p = from_remote_config(section(fresh_emulator, device=False), name="onedrive", state_dir=tmp_path)
    p.root()
    requests.post(fresh_emulator.base_url + "/_emulator/identity/revoke", verify=str(fresh_emulator.ca_file))
    assert p.root().path == ""  # the client secret still works: a fresh token after the 401


def test_static_token_and_wrong_secret(fresh_emulator: Emulator, tmp_path: Path) -> None:
    creds = fresh_emulator.credentials()
    sec = {**section(fresh_emulator, device=False), "access_token": creds["microsoft"]["access_token"]}
    p = from_remote_config(sec, name="onedrive", state_dir=tmp_path)
    assert isinstance(p.client.tokens, StaticToken) and p.root().path == ""
    requests.post(fresh_emulator.base_url + "/_emulator/identity/revoke", verify=str(fresh_emulator.ca_file))
    with pytest.raises(PermissionDeniedError, match="auth login onedrive"):
        p.root()
    bad = from_remote_config({**section(fresh_emulator, device=False), "client_secret": "wrong"},
                             name="onedrive", state_dir=tmp_path / "bad")
    with pytest.raises(PermissionDeniedError, match="invalid_client"):
        bad.root()


@pytest.mark.parametrize("broken, match", [
    ({"tenant": ""}, "tenant"), ({"auth": "password"}, "auth must be"), ({"endpoint": "http://127.0.0.1:1"}, "https"),
    ({"auth": "client_credentials", "client_secret": None}, "client_secret"),
])
def test_settings_errors(broken: dict[str, Any], match: str, tmp_path: Path) -> None:
    sec = {"tenant": "t", "client_id": "c", "client_secret": "s", **broken}
    with pytest.raises(UserError, match=match):
        AuthSettings.from_section(sec, name="onedrive", state_dir=tmp_path)
    shown = AuthSettings.from_section({"tenant": "t", "client_id": "c", "client_secret": "s3cr3t"},
                                      name="n", state_dir=tmp_path)
    assert "s3cr3t" not in repr(shown)


def test_login_entry_point_for_the_cli(emulator: Emulator, tmp_path: Path) -> None:
    shown: list[Mapping[str, Any]] = []
    who = login(section(emulator, device=True), name="onedrive", state_dir=tmp_path, prompt=shown.append)
    assert who == emulator.credentials()["microsoft"]["username"] and shown
    app = login(section(emulator, device=False), name="onedrive", state_dir=tmp_path / "app")
    assert app.startswith("app ")


def test_untrusted_certificate_is_a_configuration_error(emulator: Emulator, tmp_path: Path) -> None:
    other_ca = requests.certs.where()  # a CA bundle that did not sign the emulator's certificate
    with pytest.raises(UserError, match="ca_file"):
        from_remote_config(section(emulator, device=False, ca_file=other_ca), name="onedrive",
                           state_dir=tmp_path).root()
    static = {**section(emulator, device=False, ca_file=other_ca),
              "access_token": emulator.credentials()["microsoft"]["access_token"]}
    with pytest.raises(UserError, match="ca_file"):
        from_remote_config(static, name="onedrive", state_dir=tmp_path).root()
