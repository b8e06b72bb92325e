"""Shared wiring for the Drive emulator tests: an emulator, the official client built on it, a raw session.

The client is built exactly as api-notes 1.2 Option A says (bundled discovery doc, rootUrl pointed at
the emulator), over TLS with httplib2 trusting the emulator CA. Nothing here patches the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google_auth_httplib2
import pytest
import requests
from google.oauth2.credentials import Credentials
from googleapiclient import discovery_cache
from googleapiclient.discovery import build_from_document
from googleapiclient.http import build_http

from driveferry.emulator.drive.models import DriveModel
from driveferry.emulator.drive.routes import DriveApi, drive_model
from driveferry.emulator.server import Emulator

USER = "user@example.com"


def start(data_dir: Path) -> Emulator:
    """A TLS emulator serving Drive only (the other API modules are not needed here)."""
    return Emulator(data_dir, tls=True, modules=[DriveApi()]).start()


def model_of(emu: Emulator) -> DriveModel:
    return drive_model(emu)


def build_service(emu: Emulator, token: str | None = None, timeout_s: float | None = None) -> Any:
    token = token or emu.state.issue_token("google", USER)
    doc = json.loads(discovery_cache.get_static_doc("drive", "v3"))
    doc["rootUrl"] = emu.base_url + "/"
    doc["baseUrl"] = emu.base_url + "/drive/v3/"
    h = build_http()
    h.ca_certs = str(emu.ca_file)
    if timeout_s is not None:
        h.timeout = timeout_s
    return build_from_document(doc, http=google_auth_httplib2.AuthorizedHttp(Credentials(token=token), http=h))


def raw_session(emu: Emulator, token: str | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(emu.ca_file)
    s.headers["Authorization"] = "Bearer " + (token or emu.state.issue_token("google", USER))
    return s


def reason(resp: requests.Response) -> str:
    return str(resp.json()["error"]["errors"][0]["reason"])


def error_reason(exc: Any) -> str:
    """The Drive reason of a googleapiclient HttpError (api-notes 5.1: e.reason is the message)."""
    return str(json.loads(exc.content)["error"]["errors"][0]["reason"])


@pytest.fixture(scope="module")
def shared_emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One Drive emulator per test module: tests create their own folders and never assume emptiness."""
    emu = start(tmp_path_factory.mktemp("drive"))
    yield emu
    emu.stop()


@pytest.fixture()
def own_emu(tmp_path: Path) -> Iterator[Emulator]:
    """An emulator of this test's own (quotas, clock, faults, restarts)."""
    emu = start(tmp_path / "emu")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def svc(shared_emu: Emulator) -> Any:
    return build_service(shared_emu)


@pytest.fixture(scope="module")
def raw(shared_emu: Emulator) -> requests.Session:
    return raw_session(shared_emu)


@pytest.fixture()
def folder(svc: Any, request: pytest.FixtureRequest) -> str:
    """A fresh folder under My Drive, named after the test."""
    body = {"name": request.node.name, "mimeType": "application/vnd.google-apps.folder"}
    return str(svc.files().create(body=body, fields="id").execute()["id"])
