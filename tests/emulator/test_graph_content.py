"""Graph emulator: /content redirects, pre-authenticated download URLs (Range, expiry), simple upload,
quickXorHash values (published vectors, api-notes 14.2) and the corrupt control route."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator import identity
from driveferry.emulator.graph.routes import GraphApi
from driveferry.emulator.server import Emulator
from driveferry.integrity.hashes import HashType, hash_bytes, hex_to_b64


def _session(emu: Emulator, token: str | None = None) -> requests.Session:
    s = requests.Session()
    s.verify, s.trust_env = str(emu.ca_file), False
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def _start(path: Path) -> tuple[Emulator, GraphApi, requests.Session, str]:
    api = GraphApi()
    emu = Emulator(path, tls=True, modules=[*identity.modules(), api]).start()
    creds = emu.credentials()
    return emu, api, _session(emu, creds["microsoft"]["access_token"]), \
        f"{creds['graph']['api_root']}/drives/{creds['graph']['drive_id']}"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, GraphApi, requests.Session, str]]:
    emu, api, s, drive = _start(tmp_path_factory.mktemp("graphc"))
    yield emu, api, s, drive
    emu.stop()


def _folder(s: requests.Session, drive: str) -> str:
    r = s.post(f"{drive}/root/children", json={"name": uuid.uuid4().hex[:8], "folder": {}})
    return str(r.json()["id"])


def _put(s: requests.Session, drive: str, parent: str, name: str, data: bytes, **params: str) -> requests.Response:
    return s.put(f"{drive}/items/{parent}:/{name}:/content", data=data, params=params)


def test_content_redirects_302_to_preauthenticated_url(env: Any) -> None:
    emu, _, s, drive = env
    item = _put(s, drive, _folder(s, drive), "r.bin", b"0123456789").json()
    r = s.get(f"{drive}/items/{item['id']}/content", allow_redirects=False)
    assert r.status_code == 302
    loc = r.headers["Location"]
    assert loc.startswith(emu.base_url + "/_graphdl/")
    anon = _session(emu).get(loc)  # no Authorization at all
    assert anon.status_code == 200 and anon.content == b"0123456789"
    assert item["@microsoft.graph.downloadUrl"].startswith(emu.base_url + "/_graphdl/")
    assert _session(emu).get(item["@microsoft.graph.downloadUrl"]).content == b"0123456789"


def test_download_range_206_suffix_and_416(env: Any) -> None:
    emu, _, s, drive = env
    url = _put(s, drive, _folder(s, drive), "g.bin", bytes(range(100))).json()["@microsoft.graph.downloadUrl"]
    anon = _session(emu)
    r = anon.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == bytes(range(10, 20))
    assert r.headers["Content-Range"] == "bytes 10-19/100"
    r = anon.get(url, headers={"Range": "bytes=95-"})
    assert r.status_code == 206 and r.content == bytes(range(95, 100))
    r = anon.get(url, headers={"Range": "bytes=-3"})
    assert r.status_code == 206 and r.content == bytes([97, 98, 99])
    r = anon.get(url, headers={"Range": "bytes=100-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */100"


def test_download_url_expires_after_an_hour_with_graph_401(tmp_path: Path) -> None:
    emu, _, s, drive = _start(tmp_path / "e")
    try:
        url = _put(s, drive, "root", "x.bin", b"abc").json()["@microsoft.graph.downloadUrl"]
        anon = _session(emu)
        s.post(emu.base_url + "/_emulator/clock", json={"advance_s": 3500})
        assert anon.get(url).status_code == 200
        s.post(emu.base_url + "/_emulator/clock", json={"advance_s": 200})
        r = anon.get(url)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
        assert anon.get(forged).status_code == 401
    finally:
        emu.stop()


def test_simple_upload_201_new_200_replace_keeps_id(env: Any) -> None:
    _, _, s, drive = env
    parent = _folder(s, drive)
    first = _put(s, drive, parent, "v.txt", b"one")
    assert first.status_code == 201
    second = _put(s, drive, parent, "v.txt", b"two!")
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    assert second.json()["size"] == 4 and second.json()["cTag"] != first.json()["cTag"]
    by_id = s.put(f"{drive}/items/{first.json()['id']}/content", data=b"three")
    assert by_id.status_code == 200 and by_id.json()["size"] == 5


def test_simple_upload_conflict_fail_in_query_is_409(env: Any) -> None:
    _, _, s, drive = env
    parent = _folder(s, drive)
    _put(s, drive, parent, "c.txt", b"1")
    r = _put(s, drive, parent, "c.txt", b"2", **{"@microsoft.graph.conflictBehavior": "fail"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "nameAlreadyExists"
    r = _put(s, drive, parent, "c.txt", b"2", **{"@microsoft.graph.conflictBehavior": "rename"})
    assert r.status_code == 201 and r.json()["name"] == "c 1.txt"


def test_simple_upload_over_4_mib_is_413(env: Any) -> None:
    _, _, s, drive = env
    r = _put(s, drive, _folder(s, drive), "big.bin", b"\0" * (4 * 1024 * 1024 + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "requestTooLarge"
    assert _put(s, drive, _folder(s, drive), "ok.bin", b"\0" * (4 * 1024 * 1024)).status_code == 201


# api-notes 14.2: published quickXorHash vectors
VECTORS = [
    (b"", None),  # zero-byte files carry no hash on Business
    (b"a", "YQAAAAAAAAAAAAAAAQAAAAAAAAA="),
    (b"hello", "aCgDG9jwBgAAAAAABQAAAAAAAAA="),
    (b"hello world", "aCgDG9jwBhDc4Q1yawMZAAAAAAA="),
    (b"\x00" * 1000, "AAAAAAAAAAAAAAAA6AMAAAAAAAA="),
    (b"\xff" * 1000, "Yxvb2MY2trGNbWxj89jYOc5xjnM="),
    (bytes(range(256)), "QkGEfSisZcA7k+FCh71r2dbCayY="),
    (bytes(range(256)) * 3, "rxAOGe1RimTF/e+k/m0O5nnSZT8="),
    (base64.b64decode("Sg=="), "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
    (base64.b64decode("NbYXsp5/K6mR+NmHwExjvWeWDJFnXTKWVlzYHoesp2E="), "wjuAuWDiq04qDt1R8hHWDDcwVoQ="),
]


@pytest.mark.parametrize(("data", "expected"), VECTORS)
def test_quickxorhash_matches_published_vectors_and_integrity_hashes(env: Any, data: bytes,
                                                                     expected: str | None) -> None:
    _, _, s, drive = env
    item = _put(s, drive, _folder(s, drive), "v.bin", data).json()
    hashes = item["file"].get("hashes")
    if expected is None:
        assert hashes is None
        return
    assert hashes == {"quickXorHash": expected}
    assert hex_to_b64(hash_bytes(data, [HashType.QUICKXOR])[HashType.QUICKXOR]) == expected


def test_corrupt_control_changes_bytes_but_not_metadata_hash(env: Any) -> None:
    emu, _, s, drive = env
    item = _put(s, drive, _folder(s, drive), "k.bin", b"important bytes").json()
    r = s.post(emu.base_url + "/_emulator/graph/corrupt", json={"item_id": item["id"]})
    assert r.status_code == 200
    again = s.get(f"{drive}/items/{item['id']}").json()
    assert again["file"]["hashes"] == item["file"]["hashes"] and again["size"] == item["size"]
    body = _session(emu).get(again["@microsoft.graph.downloadUrl"]).content
    assert len(body) == 15 and body != b"important bytes"
    bad = s.post(emu.base_url + "/_emulator/graph/corrupt", json={"item_id": "01NOPE"})
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "itemNotFound"


def test_folder_content_is_not_downloadable(env: Any) -> None:
    _, _, s, drive = env
    r = s.get(f"{drive}/items/{_folder(s, drive)}/content", allow_redirects=False)
    assert r.status_code == 406 and r.json()["error"]["code"] == "notSupported"


def test_drop_hash_control_makes_the_file_report_no_hash(env: Any) -> None:
    emu, _, s, drive = env
    item = _put(s, drive, _folder(s, drive), "nohash.bin", b"abc").json()
    assert s.post(emu.base_url + "/_emulator/graph/drop-hash", json={"item_id": item["id"]}).status_code == 200
    again = s.get(f"{drive}/items/{item['id']}").json()
    assert "hashes" not in again["file"] and again["size"] == 3
    r = s.post(emu.base_url + "/_emulator/graph/drop-hash", json={"item_id": _folder(s, drive)})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalidRequest"
