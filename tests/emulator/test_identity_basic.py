"""Token endpoints take the client's credentials as HTTP Basic too (client_secret_basic, RFC 6749 §2.3.1),
the style Go's oauth2 package (rclone) tries first; a wrong secret there is still 401 invalid_client."""

from __future__ import annotations

import requests

from driveferry.emulator.server import Emulator


def _refresh(emu: Emulator, secret: str) -> requests.Response:
    g = emu.credentials()["google"]
    s = requests.Session()
    s.trust_env, s.verify = False, str(emu.ca_file)
    return s.post(g["token_uri"], data={"grant_type": "refresh_token", "refresh_token": g["refresh_token"]},
                  auth=(g["client_id"], secret), timeout=30)


def test_google_refresh_with_basic_client_credentials(emulator: Emulator) -> None:
    ok = _refresh(emulator, emulator.credentials()["google"]["client_secret"])
    assert ok.status_code == 200 and ok.json()["access_token"].startswith("ya29.")
    bad = _refresh(emulator, "not-the-secret")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
