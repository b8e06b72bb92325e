"""Realism profile, Graph: a SharePoint library rewrites uploaded Office files (size and quickXorHash differ
from the bytes sent), a fragment PUT right after createUploadSession can answer a transient 404, and
Business ignores createUploadSession's fileSize. Over real HTTP; time moves through the emulator clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from realism_env import RealismEnv

from driveferry.integrity.hashes import HashType, hash_bytes, hex_to_b64

KIB320 = 320 * 1024


def qxh(data: bytes) -> str:
    return hex_to_b64(hash_bytes(data, [HashType.QUICKXOR])[HashType.QUICKXOR])


class Env(RealismEnv):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.s = self.session(self.creds["microsoft"]["access_token"])
        self.anon = self.ctl
        self.root = f"{self.creds['graph']['api_root']}/me/drive"

    def put_file(self, name: str, data: bytes) -> dict[str, Any]:
        r = self.s.put(f"{self.root}/root:/{name}:/content", data=data)
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out

    def session_url(self, name: str, **item: Any) -> requests.Response:
        return self.s.post(f"{self.root}/root:/{name}:/createUploadSession", json={"item": item})

    def frag(self, url: str, data: bytes, start: int, total: int) -> requests.Response:
        end = start + len(data) - 1
        return self.anon.put(url, data=data, headers={"Content-Range": f"bytes {start}-{end}/{total}"})

    def download(self, item_id: str) -> bytes:
        r = self.s.get(f"{self.root}/items/{item_id}/content")
        assert r.status_code == 200, r.text
        return r.content


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path / "emu")
    yield e
    e.emu.stop()


def test_sharepoint_library_rewrites_office_uploads(env: Env) -> None:
    env.realism({"graph": {"sharepoint_rewrite_bytes": 1024}})
    sent = b"PK\x03\x04 pretend docx " * 1000
    item = env.put_file("report.docx", sent)
    assert item["size"] == len(sent) + 1024
    assert item["file"]["hashes"]["quickXorHash"] != qxh(sent)
    stored = env.download(item["id"])
    assert stored.startswith(sent) and len(stored) == item["size"]
    assert item["file"]["hashes"]["quickXorHash"] == qxh(stored)  # what is reported is what is served
    # an upload session's commit is rewritten too; a non-Office file is left alone
    data = bytes(range(256)) * (KIB320 // 256) + b"tail"
    r = env.session_url("sheet.XLSX")
    assert r.status_code == 200, r.text
    assert env.frag(r.json()["uploadUrl"], data[:KIB320], 0, len(data)).status_code == 202
    done = env.frag(r.json()["uploadUrl"], data[KIB320:], KIB320, len(data))
    assert done.status_code == 201 and done.json()["size"] == len(data) + 1024
    assert env.download(done.json()["id"])[: len(data)] == data
    plain = env.put_file("notes.txt", sent)
    assert plain["size"] == len(sent) and plain["file"]["hashes"]["quickXorHash"] == qxh(sent)
    assert env.counters()["graph.sharepoint_rewrites"] == 2


def test_without_the_profile_office_files_keep_their_bytes(env: Env) -> None:
    item = env.put_file("report.docx", b"exact bytes")
    assert item["size"] == 11 and env.download(item["id"]) == b"exact bytes"


def test_first_fragment_right_after_creation_is_a_transient_404(env: Env) -> None:
    env.realism({"graph": {"fragment_404_count": 1, "fragment_404_window_s": 10}})
    data = b"z" * 1000
    url = env.session_url("a.bin").json()["uploadUrl"]
    first = env.frag(url, data, 0, len(data))
    assert first.status_code == 404
    err = first.json()["error"]
    assert err["code"] == "itemNotFound" and err["innerError"]["code"] == "uploadSessionNotFound"
    again = env.frag(url, data, 0, len(data))  # the same fragment again, as rclone does after 5 s
    assert again.status_code == 201 and again.json()["size"] == 1000
    # after the window a new session's first fragment goes through
    late = env.session_url("b.bin").json()["uploadUrl"]
    env.advance(11)
    assert env.frag(late, data, 0, len(data)).status_code == 201
    assert env.counters()["graph.fragment_404"] == 1


def test_business_ignores_file_size_in_create_upload_session(env: Env) -> None:
    assert env.anon.post(env.base + "/_emulator/graph/quota", json={"total": 1 << 20}).status_code == 200
    kind = env.session_url("big.bin", fileSize=10 << 30)
    assert kind.status_code == 507  # the default emulator checks it early, as OneDrive Personal does
    env.realism({"graph": {"ignore_file_size": True}})
    r = env.session_url("big.bin", fileSize=10 << 30)
    assert r.status_code == 200, r.text
    data = b"q" * 5000  # neither the declared size nor the quota check come from fileSize
    done = env.frag(r.json()["uploadUrl"], data, 0, len(data))
    assert done.status_code == 201 and done.json()["size"] == 5000
    over = env.session_url("over.bin", fileSize=1)
    assert over.status_code == 200  # the quota is checked when the bytes are committed
    body = b"x" * KIB320 * 4
    assert env.frag(over.json()["uploadUrl"], body, 0, len(body)).status_code == 507
    assert env.counters()["graph.file_size_ignored"] == 2
