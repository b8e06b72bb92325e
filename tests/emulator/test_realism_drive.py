"""Realism profile, Drive: search lag (files.list q misses new and renamed items, files.get sees them) and
appProperties private to the OAuth client that wrote them (`properties` shared), with a second client's
token from the emulator's Google token endpoint. Over real HTTP; time moves through the emulator clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from realism_env import RealismEnv

FOLDER = "application/vnd.google-apps.folder"
OTHER_CLIENT = "987654321098-colab.apps.googleusercontent.com"


class Env(RealismEnv):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.a = self.session(self.creds["google"]["access_token"])

    def files(self, s: requests.Session, q: str) -> list[dict[str, Any]]:
        r = s.get(self.base + "/drive/v3/files", params={"q": q, "fields": "files(id,name,appProperties)"})
        assert r.status_code == 200, r.text
        out: list[dict[str, Any]] = r.json()["files"]
        return out

    def get(self, s: requests.Session, fid: str, fields: str) -> dict[str, Any]:
        r = s.get(f"{self.base}/drive/v3/files/{fid}", params={"fields": fields})
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def create(self, s: requests.Session, body: dict[str, Any]) -> str:
        r = s.post(self.base + "/drive/v3/files", json=body, params={"fields": "id"})
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    def second_client(self) -> requests.Session:
        """Sign the same user in through another OAuth client (another app) at the token endpoint."""
        reg = self.ctl.post(self.base + "/_emulator/identity/google/clients", json={"client_id": OTHER_CLIENT})
        assert reg.status_code == 200, reg.text
        c = reg.json()
        tok = self.ctl.post(c["token_uri"], data={"grant_type": "refresh_token", "refresh_token": c["refresh_token"],
                                                  "client_id": OTHER_CLIENT, "client_secret": c["client_secret"]})
        assert tok.status_code == 200, tok.text
        # the other app's refresh token is bound to it: the emulator's own client id cannot use it
        wrong = self.ctl.post(c["token_uri"], data={"grant_type": "refresh_token", "refresh_token": c["refresh_token"],
                                                    "client_id": self.creds["google"]["client_id"],
                                                    "client_secret": self.creds["google"]["client_secret"]})
        assert wrong.status_code == 400 and wrong.json()["error"] == "unauthorized_client"
        return self.session(tok.json()["access_token"])


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path / "emu")
    yield e
    e.emu.stop()


def test_search_misses_new_and_renamed_items_until_the_lag_passes(env: Env) -> None:
    env.realism({"drive": {"search_lag_new_s": 60, "search_lag_renamed_s": 45}})
    fid = env.create(env.a, {"name": "Photos", "mimeType": FOLDER})
    by_name = f"name = 'Photos' and mimeType = '{FOLDER}' and 'root' in parents and trashed = false"
    assert env.files(env.a, by_name) == []  # a parallel uploader would now create a twin (rclone#2485)
    assert env.get(env.a, fid, "id,name") == {"id": fid, "name": "Photos"}  # by id: at once
    env.advance(61)
    assert [f["id"] for f in env.files(env.a, by_name)] == [fid]
    r = env.a.patch(f"{env.base}/drive/v3/files/{fid}", json={"name": "Pictures"})
    assert r.status_code == 200, r.text
    assert env.files(env.a, "name = 'Pictures'") == [] and env.files(env.a, "name = 'Photos'") == []
    env.advance(46)
    assert [f["id"] for f in env.files(env.a, "name = 'Pictures'")] == [fid]
    assert env.counters()["drive.lag_hidden"] == 2  # the two hidden matches (the old name matches nothing)


def test_without_the_profile_search_sees_new_items_at_once(env: Env) -> None:
    fid = env.create(env.a, {"name": "Now", "mimeType": FOLDER})
    assert [f["id"] for f in env.files(env.a, "name = 'Now'")] == [fid]
    assert "drive.lag_hidden" not in env.counters()


def test_app_properties_are_private_to_their_oauth_client(env: Env) -> None:
    env.realism({"drive": {"private_app_properties": True}})
    fid = env.create(env.a, {"name": "x.bin", "appProperties": {"src": "od:1"}, "properties": {"pub": "1"}})
    b = env.second_client()
    assert env.get(b, fid, "id,appProperties,properties") == {"id": fid, "properties": {"pub": "1"}}
    assert env.files(b, "appProperties has { key='src' and value='od:1' }") == []
    assert [f["id"] for f in env.files(b, "properties has { key='pub' and value='1' }")] == [fid]
    # each app writes its own map; the other's stays as it was
    r = b.patch(f"{env.base}/drive/v3/files/{fid}", json={"appProperties": {"src": "colab"}},
                params={"fields": "appProperties"})
    assert r.status_code == 200 and r.json() == {"appProperties": {"src": "colab"}}
    assert env.get(env.a, fid, "appProperties") == {"appProperties": {"src": "od:1"}}
    assert [f["id"] for f in env.files(env.a, "appProperties has { key='src' and value='od:1' }")] == [fid]
    assert env.files(b, "appProperties has { key='src' and value='od:1' }") == []
    # a file the second app creates carries only its map
    gid = env.create(b, {"name": "y.bin", "appProperties": {"k": "b"}})
    assert env.get(env.a, gid, "id,appProperties") == {"id": gid}
    assert env.counters()["drive.app_properties_hidden"] >= 3


def test_without_the_profile_every_client_sees_the_same_app_properties(env: Env) -> None:
    fid = env.create(env.a, {"name": "x.bin", "appProperties": {"src": "od:1"}})
    b = env.second_client()
    assert env.get(b, fid, "appProperties") == {"appProperties": {"src": "od:1"}}


def test_a_resumable_upload_writes_the_opening_apps_app_properties(env: Env) -> None:
    env.realism({"drive": {"private_app_properties": True}})
    b = env.second_client()
    data = b"resumable bytes"
    start = b.post(env.base + "/upload/drive/v3/files", params={"uploadType": "resumable", "fields": "id,appProperties"},
                   json={"name": "r.bin", "appProperties": {"src": "colab"}},
                   headers={"X-Upload-Content-Length": str(len(data))})
    assert start.status_code == 200, start.text
    # the session URI needs no token; the file is still written as the app that opened the session
    done = env.ctl.put(start.headers["Location"], data=data,
                       headers={"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})
    assert done.status_code == 200, done.text
    fid = done.json()["id"]
    assert done.json()["appProperties"] == {"src": "colab"}
    assert env.get(b, fid, "appProperties") == {"appProperties": {"src": "colab"}}
    assert env.get(env.a, fid, "id,appProperties") == {"id": fid}
