"""Which providers the contract suite runs against: one factory per provider, a few lines each.

A factory gets the pytest request and a scratch directory and returns a `Subject`: a remotes-config
section (with `type`) that builds the provider through the registry. The same section rebuilds the
provider in a child process (the kill -9 resume test), so it must be plain data (JSON-able).

To add a provider:

    def _mine(request: pytest.FixtureRequest, tmp: Path) -> Subject:
        emu = request.getfixturevalue("emulator")            # the session emulator (TLS)
        return Subject({"type": "mine", "endpoint": emu.base_url, "ca_file": str(emu.ca_file), ...})

    FACTORIES["mine"] = _mine

The suite never assumes an empty drive: each test works in a fresh folder it creates under the root.
A factory whose provider module does not exist yet skips (pytest.importorskip).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driveferry.providers.base import Entry, Provider


@dataclass(frozen=True)
class Subject:
    """section: builds the provider (here and in child processes).
    populate: optional fast way to create many one-byte files named `names` in `folder` (else uploads)."""

    section: Mapping[str, Any]
    populate: Callable[[Provider, Entry, Sequence[str]], None] | None = None


def _local(request: pytest.FixtureRequest, tmp: Path) -> Subject:
    root = tmp / "local-root"
    root.mkdir()
    return Subject({"type": "local", "root": str(root)})


def _gdrive(request: pytest.FixtureRequest, tmp: Path) -> Subject:
    pytest.importorskip("driveferry.providers.gdrive.provider")
    emu = request.getfixturevalue("emulator")
    creds = emu.credentials().get("google") or {}
    section: dict[str, Any] = {"type": "gdrive", "endpoint": emu.base_url, "ca_file": str(emu.ca_file),
                               "root": f"conf-{uuid.uuid4().hex[:8]}", "create_root": True}
    if creds.get("refresh_token"):
        section.update(auth="oauth", **{k: creds[k] for k in ("client_id", "client_secret", "refresh_token",
                                                              "token_uri")})
    else:
        section.update(auth="access_token",
                       access_token=creds.get("access_token") or emu.state.issue_token("google", "user@example.com"))
    model = next(m for m in emu.modules if getattr(m, "route_prefix", "") == "drive.").model

    def populate(provider: Provider, parent: Entry, names: Sequence[str]) -> None:
        for name in names:  # straight into the emulator's model: 2,500 uploads over HTTP take ~20 s
            model.create_file(name, [b"x"], parent=parent.id)

    return Subject(section, populate)


def _onedrive(request: pytest.FixtureRequest, tmp: Path) -> Subject:
    pytest.importorskip("driveferry.providers.onedrive.provider")
    from driveferry.providers.registry import provider_from_section
    emu = request.getfixturevalue("emulator")
    creds = emu.credentials()
    ms, graph = creds["microsoft"], creds["graph"]
    section: dict[str, Any] = {"type": "onedrive", "endpoint": emu.base_url, "ca_file": str(emu.ca_file),
                               "tenant": ms["tenant_id"], "client_id": ms["client_id"],
                               "client_secret": ms["client_secret"], "auth": "client_credentials",
                               "drive_id": graph["drive_id"]}
    top = provider_from_section("onedrive", section, tmp / "state")
    folder = f"conf-{uuid.uuid4().hex[:8]}"
    top.mkdir(top.root(), folder)  # the provider's root folder must exist
    model = next(m for m in emu.modules if getattr(m, "route_prefix", "") == "graph.").model

    def populate(provider: Provider, parent: Entry, names: Sequence[str]) -> None:
        from driveferry.providers.onedrive.names import encode
        for name in names:  # straight into the emulator's model: 2,500 uploads over HTTP take ~25 s
            model.create_file(parent.id, encode(name), [b"x"])

    return Subject({**section, "root": folder}, populate)


FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], Subject]] = {
    "local": _local,
    "gdrive": _gdrive,
    "onedrive": _onedrive,
}
