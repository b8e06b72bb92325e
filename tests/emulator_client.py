"""Talking to a test's emulator from outside the product code: its control endpoint over its own TLS CA."""

from __future__ import annotations

from typing import Any

import requests

from driveferry.emulator.server import Emulator


class EmulatorClient:
    """Mixin for test fixtures that hold an `emu: Emulator`."""

    emu: Emulator

    def session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE would beat verify=
        s.verify = str(self.emu.ca_file)
        return s

    def control(self, method: str, path: str, body: Any = None) -> Any:
        r = self.session().request(method, self.emu.base_url + "/_emulator" + path, json=body, timeout=30)
        r.raise_for_status()
        return r.json() if r.content else None


def api_session(emu: Emulator, audience: str) -> requests.Session:
    """A session to `emu`'s cloud APIs signed in as its default user: audience "microsoft" (Graph) or
    "google" (Drive, as user@example.com)."""
    s = requests.Session()
    s.trust_env, s.verify = False, str(emu.ca_file)
    token = emu.credentials()["microsoft"]["access_token"] if audience == "microsoft" \
        else emu.state.issue_token("google", "user@example.com")
    s.headers["Authorization"] = "Bearer " + token
    return s


def api_model(emu: Emulator, prefix: str) -> Any:
    """The state model of `emu`'s API module at `prefix` (e.g. "/drive/v3"), for asserting what it holds."""
    return next(m for m in emu.modules if getattr(m, "route_prefix", "") == prefix).model
