"""Graph emulator: driveItem copy (202 + monitor URL, asyncJobStatus, conflicts) and simple uploads whose
body is chunked (no Content-Length)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.graph.routes import GraphApi
from driveferry.emulator.server import Emulator
from driveferry.integrity.hashes import HashType, hash_bytes, hex_to_b64

CONFLICT = "@microsoft.graph.conflictBehavior"


class Env:
    def __init__(self, path: Path) -> None:
        self.emu = Emulator(path, modules=[GraphApi()]).start()
        token = self.emu.state.issue_token("microsoft", "user@contoso.example", lifetime_s=3600)
        self.s = requests.Session()
        self.s.trust_env = False
        self.s.headers["Authorization"] = f"Bearer {token}"
        self.anon = requests.Session()  # monitor URLs need no Authorization, as on Graph
        self.anon.trust_env = False
        self.drive_id = self.emu.credentials()["graph"]["drive_id"]
        self.api = f"{self.emu.base_url}/v1.0"
        self.drive = f"{self.api}/drives/{self.drive_id}"

    def folder(self, name: str, parent: str = "root") -> dict[str, Any]:
        r = self.s.post(f"{self.drive}/items/{parent}/children", json={"name": name, "folder": {}})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def put(self, parent: str, name: str, data: bytes | Iterator[bytes]) -> requests.Response:
        return self.s.put(f"{self.drive}/items/{parent}:/{name}:/content", data=data)

    def content(self, item_id: str) -> bytes:
        r = self.s.get(f"{self.drive}/items/{item_id}/content")
        assert r.status_code == 200, r.text
        return r.content

    def wait(self, monitor: str) -> list[dict[str, Any]]:
        """Poll a monitor until the job is no longer in progress; every report, in order."""
        reports = []
        for _ in range(400):
            r = self.anon.get(monitor)
            assert r.status_code in (200, 202), r.text
            reports.append(r.json() | {"http": r.status_code})
            if r.json()["status"] not in ("inProgress", "notStarted"):
                return reports
            time.sleep(0.02)
        raise AssertionError(f"copy still running: {reports[-1]}")


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.emu.stop()


def qxh(data: bytes) -> str:
    return hex_to_b64(hash_bytes(data, [HashType.QUICKXOR])[HashType.QUICKXOR])


def test_copy_answers_202_with_a_monitor_and_the_copy_matches_the_original(env: Env) -> None:
    src, dst = env.folder("src"), env.folder("dst")
    data = os.urandom(1_500_000)
    original = env.put(src["id"], "a.bin", data).json()
    r = env.s.post(f"{env.drive}/items/{original['id']}/copy",
                   json={"parentReference": {"driveId": env.drive_id, "id": dst["id"]}, "name": "b.bin"})
    assert r.status_code == 202 and r.content == b"", r.text
    monitor = r.headers["Location"]
    assert monitor.startswith(env.emu.base_url)
    reports = env.wait(monitor)
    assert reports[0]["status"] == "inProgress" and reports[0]["http"] == 202  # never done at the first look
    assert all(r["status"] == "inProgress" and 0 <= r["percentageComplete"] < 100 for r in reports[:-1])
    done = reports[-1]
    assert (done["status"], done["http"], done["percentageComplete"], done["operation"]) == \
        ("completed", 200, 100.0, "ItemCopy")
    copy = env.s.get(f"{env.drive}/items/{done['resourceId']}").json()
    assert copy["id"] != original["id"]
    assert (copy["name"], copy["size"], copy["parentReference"]["id"]) == ("b.bin", len(data), dst["id"])
    assert copy["file"]["hashes"]["quickXorHash"] == original["file"]["hashes"]["quickXorHash"] == qxh(data)
    assert env.content(copy["id"]) == data and env.content(original["id"]) == data


def test_copy_onto_an_existing_name_is_409_unless_rename(env: Env) -> None:
    src = env.folder("src")
    original = env.put(src["id"], "a.txt", b"first").json()
    url = f"{env.drive}/items/{original['id']}/copy"
    conflict = env.s.post(url, json={})  # same folder, same name
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "nameAlreadyExists"
    renamed = env.s.post(url, params={CONFLICT: "rename"}, json={})
    assert renamed.status_code == 202, renamed.text
    done = env.wait(renamed.headers["Location"])[-1]
    copy = env.s.get(f"{env.drive}/items/{done['resourceId']}").json()
    assert copy["name"] == "a 1.txt" and env.content(copy["id"]) == b"first"
    names = sorted(i["name"] for i in env.s.get(f"{env.drive}/items/{src['id']}/children").json()["value"])
    assert names == ["a 1.txt", "a.txt"]


def test_copy_a_folder_tree_through_the_me_and_drive_aliases(env: Env) -> None:
    tree = env.folder("tree")
    sub = env.folder("sub", tree["id"])
    files = {"x.bin": os.urandom(70_000), "y.bin": b""}
    for name, data in files.items():
        assert env.put(sub["id"], name, data).status_code == 201
    r = env.s.post(f"{env.api}/me/drive/items/{tree['id']}/copy", json={"name": "tree2"})
    assert r.status_code == 202, r.text
    done = env.wait(r.headers["Location"])[-1]
    assert done["status"] == "completed"
    sub2 = env.s.get(f"{env.drive}/items/{done['resourceId']}:/sub").json()
    assert sub2["id"] != sub["id"]
    kids = {i["name"]: i for i in env.s.get(f"{env.drive}/items/{sub2['id']}/children").json()["value"]}
    assert sorted(kids) == ["x.bin", "y.bin"]
    assert env.content(kids["x.bin"]["id"]) == files["x.bin"]
    assert kids["x.bin"]["file"]["hashes"]["quickXorHash"] == qxh(files["x.bin"])
    assert kids["y.bin"]["size"] == 0
    again = env.s.post(f"{env.api}/drive/items/{sub['id']}/copy",
                       json={"parentReference": {"id": tree["id"]}, "name": "sub3"})
    assert again.status_code == 202 and env.wait(again.headers["Location"])[-1]["status"] == "completed"


def test_copy_refusals_up_front(env: Env) -> None:
    tree = env.folder("t")
    inner = env.folder("in", tree["id"])
    f = env.put(tree["id"], "f.bin", b"x").json()
    into_itself = env.s.post(f"{env.drive}/items/{tree['id']}/copy",
                             json={"parentReference": {"id": inner["id"]}})
    other_drive = env.s.post(f"{env.drive}/items/{f['id']}/copy",
                             json={"parentReference": {"driveId": "b!elsewhere", "id": inner["id"]}})
    bad_name = env.s.post(f"{env.drive}/items/{f['id']}/copy", json={"name": "a:b"})
    missing = env.s.post(f"{env.drive}/items/01NOSUCHITEM/copy", json={})
    unauthenticated = env.anon.post(f"{env.drive}/items/{f['id']}/copy", json={"name": "z"})
    assert [r.status_code for r in (into_itself, other_drive, bad_name, missing, unauthenticated)] == \
        [400, 404, 400, 404, 401]
    assert env.anon.get(f"{env.emu.base_url}/_graphmonitor/nosuchjob").status_code == 404
    names = [i["name"] for i in env.s.get(f"{env.drive}/items/{tree['id']}/children").json()["value"]]
    assert sorted(names) == ["f.bin", "in"]  # nothing was copied


def _chunks(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_simple_upload_with_a_chunked_body(env: Env) -> None:
    folder = env.folder("c")
    data = os.urandom(1_000_001)
    r = env.put(folder["id"], "c.bin", _chunks(data))
    assert r.status_code == 201, r.text
    assert r.json()["size"] == len(data) and r.json()["file"]["hashes"]["quickXorHash"] == qxh(data)
    assert env.content(r.json()["id"]) == data


def test_a_chunked_simple_upload_over_the_limit_is_413_and_stores_nothing(env: Env) -> None:
    folder = env.folder("big")
    r = env.put(folder["id"], "big.bin", _chunks(os.urandom(4 * 1024 * 1024 + 1)))
    assert r.status_code == 413 and r.json()["error"]["code"] == "requestTooLarge"
    assert env.s.get(f"{env.drive}/items/{folder['id']}/children").json()["value"] == []
