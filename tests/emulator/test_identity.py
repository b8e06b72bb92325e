"""Identity endpoints with the official clients, unmodified: msal (client credentials, device code,
refresh) against the Entra endpoints, google-auth (refresh token, service account JWT) against /token;
revocation, denial, stable long-lived credentials across restarts, and OAuth error shapes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from driveferry.emulator import identity
from driveferry.emulator.graph.routes import GraphApi
from driveferry.emulator.server import Emulator
from driveferry.emulator.state import TokenInfo

GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
FILES_SCOPE = ["https://graph.microsoft.com/Files.ReadWrite.All"]
DRIVE_SCOPE = ["https://www.googleapis.com/auth/drive"]


def _http(emu: Emulator) -> requests.Session:
    s = requests.Session()
    s.verify, s.trust_env = str(emu.ca_file), False  # REQUESTS_CA_BUNDLE would override verify (15.2)
    return s


def _start(path: Path) -> Emulator:
    return Emulator(path, tls=True, modules=[*identity.modules(), GraphApi()]).start()


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    e = _start(tmp_path_factory.mktemp("ident"))
    yield e
    e.stop()


@pytest.fixture()
def own(tmp_path: Path) -> Iterator[Emulator]:
    """An emulator of the test's own, for revocation (which revokes everything)."""
    e = _start(tmp_path / "own")
    yield e
    e.stop()


def _cca(emu: Emulator, secret: str | None = None) -> msal.ConfidentialClientApplication:
    ms = emu.credentials()["microsoft"]
    return msal.ConfidentialClientApplication(ms["client_id"], client_credential=secret or ms["client_secret"],
                                              authority=ms["authority"], instance_discovery=False,
                                              http_client=_http(emu), http_cache={})


def _pca(emu: Emulator) -> msal.PublicClientApplication:
    ms = emu.credentials()["microsoft"]
    return msal.PublicClientApplication(ms["public_client_id"], authority=ms["authority"],
                                        instance_discovery=False, http_client=_http(emu), http_cache={})


def _graph_ok(emu: Emulator, token: str) -> int:
    g = emu.credentials()["graph"]
    r = _http(emu).get(f"{g['api_root']}/drives/{g['drive_id']}/root", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


def _device_login(emu: Emulator) -> tuple[msal.PublicClientApplication, dict[str, Any]]:
    app = _pca(emu)
    flow = app.initiate_device_flow(scopes=FILES_SCOPE)
    assert "user_code" in flow, flow
    return app, app.acquire_token_by_device_flow(flow)


def test_openid_configuration_has_https_endpoints_from_base_url(emu: Emulator) -> None:
    ms = emu.credentials()["microsoft"]
    cfg = _http(emu).get(ms["authority"] + "/v2.0/.well-known/openid-configuration").json()
    for key in ("token_endpoint", "authorization_endpoint", "device_authorization_endpoint", "issuer"):
        assert cfg[key].startswith(emu.base_url + "/") and cfg[key].startswith("https://")
    assert cfg["token_endpoint"] == f"{ms['authority']}/oauth2/v2.0/token"
    bad = _http(emu).get(emu.base_url + "/not-a-tenant/v2.0/.well-known/openid-configuration")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_tenant"


def test_msal_client_credentials_token_works_on_graph(emu: Emulator) -> None:
    result = _cca(emu).acquire_token_for_client(GRAPH_DEFAULT)
    assert result["token_type"] == "Bearer" and result["expires_in"] > 3000, result
    assert _graph_ok(emu, result["access_token"]) == 200


def test_msal_client_credentials_wrong_secret_is_invalid_client(emu: Emulator) -> None:
    result = _cca(emu, secret="wrong").acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error"] == "invalid_client" and result["error_description"].startswith("AADSTS")
    assert result["error_codes"] and "access_token" not in result


def test_msal_client_credentials_needs_default_scope(emu: Emulator) -> None:
    result = _cca(emu).acquire_token_for_client(FILES_SCOPE)
    assert result["error"] == "invalid_scope"


def test_device_flow_is_approved_after_first_poll_and_refreshes(emu: Emulator) -> None:
    started = time.monotonic()
    app, result = _device_login(emu)
    assert "access_token" in result, result
    assert time.monotonic() - started < 10
    assert isinstance(result["scope"], str) and "Files.ReadWrite.All" in result["scope"]
    assert _graph_ok(emu, result["access_token"]) == 200
    claims = result["id_token_claims"]
    ms = emu.credentials()["microsoft"]
    assert claims["aud"] == ms["public_client_id"] and claims["tid"] == ms["tenant_id"]
    assert claims["preferred_username"] == ms["username"] and {"iss", "iat", "exp", "oid", "name"} <= set(claims)
    accounts = app.get_accounts()
    assert [a["username"] for a in accounts] == [ms["username"]]
    assert accounts[0]["home_account_id"] == f"{claims['oid']}.{ms['tenant_id']}"  # from client_info
    again = app.acquire_token_silent(FILES_SCOPE, account=accounts[0], force_refresh=True)
    assert again and again["access_token"] != result["access_token"]
    assert _graph_ok(emu, again["access_token"]) == 200


def test_deny_makes_the_next_device_flow_fail(emu: Emulator) -> None:
    assert _http(emu).post(emu.base_url + "/_emulator/identity/deny").status_code == 200
    _, result = _device_login(emu)
    assert result.get("error") == "authorization_declined", result
    _, ok = _device_login(emu)  # only the next one
    assert "access_token" in ok


def test_device_flow_without_auto_approve_waits_for_control(tmp_path: Path) -> None:
    from driveferry.emulator.identity_google import GoogleIdentity
    from driveferry.emulator.identity_microsoft import MicrosoftIdentity
    e = Emulator(tmp_path / "m", tls=True, modules=[GoogleIdentity(), MicrosoftIdentity(device_auto_approve=False)])
    with e:
        app = _pca(e)
        flow = app.initiate_device_flow(scopes=FILES_SCOPE)
        flow["expires_at"] = time.time() + 2  # stop polling soon
        assert app.acquire_token_by_device_flow(flow)["error"] == "authorization_pending"
        r = _http(e).post(e.base_url + "/_emulator/identity/approve", json={"user_code": flow["user_code"]})
        assert r.status_code == 200
        flow["expires_at"] = time.time() + 30
        assert "access_token" in app.acquire_token_by_device_flow(flow)


def test_unknown_device_code_and_grant_type_errors(emu: Emulator) -> None:
    token_url = emu.credentials()["microsoft"]["authority"] + "/oauth2/v2.0/token"
    ms = emu.credentials()["microsoft"]
    device = "urn:ietf:params:oauth:grant-type:device_code"
    r = _http(emu).post(token_url, data={"grant_type": device, "device_code": "nope",
                                         "client_id": ms["public_client_id"]})
    assert r.status_code == 400 and r.json()["error"] == "bad_verification_code"
    r = _http(emu).post(token_url, data={"grant_type": device, "device_code": "nope", "client_id": "unknown"})
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    r = _http(emu).post(token_url, data={"grant_type": "refresh_token", "refresh_token": "0.nope",
                                         "client_id": ms["public_client_id"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    body = _http(emu).post(token_url, data={"grant_type": "password"}).json()
    assert body["error"] == "unsupported_grant_type"
    assert {"error_description", "error_codes", "timestamp", "trace_id", "correlation_id"} <= set(body)


def test_revoke_makes_api_calls_401_and_refresh_fail(own: Emulator) -> None:
    app, result = _device_login(own)
    creds = own.credentials()
    gcreds = user_credentials.Credentials(None, refresh_token=creds["google"]["refresh_token"],  # type: ignore[no-untyped-call]
                                          token_uri=creds["google"]["token_uri"],
                                          client_id=creds["google"]["client_id"],
                                          client_secret=creds["google"]["client_secret"])
    assert _graph_ok(own, creds["microsoft"]["access_token"]) == 200
    assert _http(own).post(own.base_url + "/_emulator/identity/revoke").status_code == 200
    assert _graph_ok(own, creds["microsoft"]["access_token"]) == 401
    assert _graph_ok(own, result["access_token"]) == 401
    refreshed = app.acquire_token_silent_with_error(FILES_SCOPE, account=app.get_accounts()[0], force_refresh=True)
    assert refreshed is not None and refreshed.get("error") == "invalid_grant", refreshed
    with pytest.raises(RefreshError, match="invalid_grant"):
        gcreds.refresh(GoogleRequest(_http(own)))  # type: ignore[no-untyped-call]
    fresh = own.credentials()  # a new sign-in yields working credentials again
    assert fresh["microsoft"]["access_token"] != creds["microsoft"]["access_token"]
    assert _graph_ok(own, fresh["microsoft"]["access_token"]) == 200


def test_google_refresh_token_flow(emu: Emulator) -> None:
    g = emu.credentials()["google"]
    c = user_credentials.Credentials(None, refresh_token=g["refresh_token"], token_uri=g["token_uri"],  # type: ignore[no-untyped-call]
                                     client_id=g["client_id"], client_secret=g["client_secret"], scopes=DRIVE_SCOPE)
    c.refresh(GoogleRequest(_http(emu)))  # type: ignore[no-untyped-call]
    assert c.valid and c.token and emu.state.check_token(c.token, "google") is not None
    assert emu.state.check_token(c.token, "microsoft") is None  # audiences are separate


def test_google_unknown_refresh_token_is_invalid_grant(emu: Emulator) -> None:
    g = emu.credentials()["google"]
    r = _http(emu).post(g["token_uri"], data={"grant_type": "refresh_token", "refresh_token": "1//nope",
                                              "client_id": g["client_id"], "client_secret": g["client_secret"]})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    r = _http(emu).post(g["token_uri"], data={"grant_type": "refresh_token", "refresh_token": g["refresh_token"],
                                              "client_id": g["client_id"], "client_secret": "wrong"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_google_service_account_jwt_bearer_with_subject(emu: Emulator) -> None:
    info = emu.credentials()["google"]["service_account_info"]
    sa = service_account.Credentials.from_service_account_info(info, scopes=DRIVE_SCOPE)  # type: ignore[no-untyped-call]
    sa.refresh(GoogleRequest(_http(emu)))
    assert emu.state.check_token(sa.token, "google") == TokenInfo(info["client_email"], info["client_id"])
    delegated = sa.with_subject("someone@example.com")
    delegated.refresh(GoogleRequest(_http(emu)))
    assert emu.state.check_token(delegated.token, "google") == TokenInfo("someone@example.com", info["client_id"])


def test_google_jwt_signed_by_another_key_is_rejected(emu: Emulator) -> None:
    info = dict(emu.credentials()["google"]["service_account_info"])
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()
    sa = service_account.Credentials.from_service_account_info(info, scopes=DRIVE_SCOPE)  # type: ignore[no-untyped-call]
    with pytest.raises(RefreshError, match="invalid_grant"):
        sa.refresh(GoogleRequest(_http(emu)))


def test_long_lived_credentials_are_stable_across_restart(tmp_path: Path) -> None:
    first = _start(tmp_path / "s")
    try:
        before = first.credentials()
    finally:
        first.stop()
    second = _start(tmp_path / "s")
    try:
        after = second.credentials()
        for cloud in ("google", "microsoft"):
            assert {k: v for k, v in after[cloud].items() if k not in ("token_uri", "authority",
                                                                       "service_account_info")} == \
                {k: v for k, v in before[cloud].items() if k not in ("token_uri", "authority",
                                                                     "service_account_info")}
        assert after["google"]["service_account_info"]["private_key"] == \
            before["google"]["service_account_info"]["private_key"]
        assert after["graph"]["drive_id"] == before["graph"]["drive_id"]
        assert _graph_ok(second, before["microsoft"]["access_token"]) == 200
        key_file = tmp_path / "s" / "identity" / "google_service_account.pem"
        assert key_file.stat().st_mode & 0o077 == 0
    finally:
        second.stop()


def test_credentials_carry_the_documented_keys(emu: Emulator) -> None:
    c = emu.credentials()
    assert set(c["google"]) >= {"access_token", "token_uri", "client_id", "client_secret", "refresh_token",
                                "service_account_info"}
    assert set(c["google"]["service_account_info"]) >= {"type", "project_id", "private_key_id", "private_key",
                                                         "client_email", "token_uri"}
    assert c["google"]["token_uri"] == emu.base_url + "/token"
    assert set(c["microsoft"]) >= {"access_token", "authority", "tenant_id", "client_id", "client_secret",
                                   "public_client_id", "username"}
    assert c["microsoft"]["authority"] == f"{emu.base_url}/{c['microsoft']['tenant_id']}"


@pytest.mark.parametrize(("route", "status", "error"), [
    ("identity.google.token", 503, "temporarily_unavailable"),  # google-auth retries these (api-notes 1.4)
    ("identity.google.token", 500, "server_error"),
    ("identity.ms.token", 503, "temporarily_unavailable"),
])
def test_token_endpoint_faults_use_oauth_error_shapes(emu: Emulator, route: str, status: int, error: str) -> None:
    http = _http(emu)
    ctl = emu.base_url + "/_emulator/faults"
    http.put(ctl, json={"rules": [{"kind": "status", "route": route, "status": status, "count": 1,
                                   "retry_after": "1"}]})
    try:
        url = emu.credentials()["google"]["token_uri"] if route.startswith("identity.google") \
            else emu.credentials()["microsoft"]["authority"] + "/oauth2/v2.0/token"
        r = http.post(url, data={"grant_type": "refresh_token", "refresh_token": "x"})
        assert r.status_code == status and r.json()["error"] == error and r.headers["Retry-After"] == "1"
        if route.startswith("identity.ms"):
            assert r.json()["error_description"].startswith("AADSTS")
    finally:
        http.put(ctl, json={"rules": []})
