"""What the realism tests share: an emulator of the test's own, sessions with or without a bearer token,
and the realism and clock control calls. Each test file subclasses it with its own requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from driveferry.emulator.server import Emulator


class RealismEnv:
    def __init__(self, path: Path, **kw: Any) -> None:
        self.emu = Emulator(path, **kw).start()
        self.base = self.emu.base_url
        self.creds = self.emu.credentials()
        self.ctl = self.session(None)  # control calls (and Graph fragment PUTs) carry no token

    @staticmethod
    def session(token: str | None) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        if token:
            s.headers["Authorization"] = f"Bearer {token}"
        return s

    def realism(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """PUT `settings` (or GET with None); the answer: settings and counters."""
        r = self.ctl.put(self.base + "/_emulator/realism", json=settings) if settings is not None \
            else self.ctl.get(self.base + "/_emulator/realism")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def counters(self) -> dict[str, int]:
        out: dict[str, int] = self.realism()["counters"]
        return out

    def advance(self, seconds: float) -> None:
        assert self.ctl.post(self.base + "/_emulator/clock", json={"advance_s": seconds}).status_code == 200
