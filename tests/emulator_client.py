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
