"""Graph emulator: upload sessions (api-notes 11.2): creation, fragments and their rules, conflict
behaviours, quota, status/cancel, expiry, and continuing a session after an emulator restart."""

from __future__ import annotations

import os
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

KIB320 = 320 * 1024


class Env:
    def __init__(self, path: Path) -> None:
        self.emu = Emulator(path, tls=True, modules=[*identity.modules(), GraphApi()]).start()
        creds = self.emu.credentials()
        self.s = self._session(creds["microsoft"]["access_token"])
        self.anon = self._session(None)  # fragment PUTs carry no Authorization (api-notes 11.2)
        self.drive = f"{creds['graph']['api_root']}/drives/{creds['graph']['drive_id']}"

    def _session(self, token: str | None) -> requests.Session:
        s = requests.Session()
        s.verify, s.trust_env = str(self.emu.ca_file), False
        if token:
            s.headers["Authorization"] = f"Bearer {token}"
        return s

    def folder(self) -> str:
        return str(self.s.post(f"{self.drive}/root/children", json={"name": uuid.uuid4().hex[:8], "folder": {}})
                   .json()["id"])

    def session(self, parent: str, name: str, **item: Any) -> requests.Response:
        return self.s.post(f"{self.drive}/items/{parent}:/{name}:/createUploadSession", json={"item": item})

    def frag(self, url: str, data: bytes, start: int, total: int, **headers: str) -> requests.Response:
        end = start + len(data) - 1
        return self.anon.put(url, data=data, headers={"Content-Range": f"bytes {start}-{end}/{total}", **headers})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(tmp_path_factory.mktemp("graphu"))
    yield e
    e.emu.stop()


def _upload_url(env: Env, parent: str | None = None, name: str = "f.bin", **item: Any) -> str:
    r = env.session(parent or env.folder(), name, **{"@microsoft.graph.conflictBehavior": "fail", **item})
    assert r.status_code == 200, r.text
    return str(r.json()["uploadUrl"])


def assert_err(r: requests.Response, status: int, code: str, inner: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    if inner:
        assert err["innerError"]["code"] == inner


def test_create_session_returns_200_with_preauthenticated_url(env: Env) -> None:
    r = env.session(env.folder(), "a.bin")
    assert r.status_code == 200
    body = r.json()
    assert body["uploadUrl"].startswith(env.emu.base_url + "/_graphup/")
    assert body["nextExpectedRanges"] == ["0-"] and body["expirationDateTime"].endswith("Z")


def test_fragments_202_with_next_ranges_then_201_with_item_and_hash(env: Env) -> None:
    data = os.urandom(2 * KIB320 + 1000)
    url = _upload_url(env, fileSystemInfo={"lastModifiedDateTime": "2019-05-06T07:08:09Z"})
    r = env.frag(url, data[:KIB320], 0, len(data))
    assert r.status_code == 202 and r.json()["nextExpectedRanges"] == [f"{KIB320}-"]
    r = env.frag(url, data[KIB320:2 * KIB320], KIB320, len(data))
    assert r.status_code == 202 and r.json()["nextExpectedRanges"] == [f"{2 * KIB320}-"]
    r = env.frag(url, data[2 * KIB320:], 2 * KIB320, len(data))
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["size"] == len(data) and item["name"] == "f.bin"
    assert item["file"]["hashes"]["quickXorHash"] == hex_to_b64(hash_bytes(data, [HashType.QUICKXOR])[HashType.QUICKXOR])
    assert item["fileSystemInfo"]["lastModifiedDateTime"] == "2019-05-06T07:08:09Z"
    assert env.anon.get(item["@microsoft.graph.downloadUrl"]).content == data
    assert_err(env.anon.get(url), 404, "itemNotFound")  # a committed session is gone


def test_unaligned_non_final_fragment_is_400(env: Env) -> None:
    url = _upload_url(env)
    assert_err(env.frag(url, b"x" * 1000, 0, 5000), 400, "invalidRequest", "invalidFragmentLength")
    assert env.anon.get(url).json()["nextExpectedRanges"] == ["0-"]


def test_fragment_of_60_mib_is_413(env: Env) -> None:
    url = _upload_url(env)
    size = 60 * 1024 * 1024  # "less than 60 MiB" per request
    assert_err(env.frag(url, bytes(size), 0, size * 2), 413, "invalidRequest", "maxFragmentLengthExceeded")


def test_overlap_and_out_of_order_are_416(env: Env) -> None:
    url = _upload_url(env)
    total = 3 * KIB320
    assert env.frag(url, bytes(KIB320), 0, total).status_code == 202
    assert_err(env.frag(url, bytes(KIB320), 0, total), 416, "invalidRange", "fragmentOverlap")
    assert_err(env.frag(url, bytes(KIB320), 2 * KIB320, total), 416, "invalidRange", "fragmentOutOfOrder")
    assert env.anon.get(url).json()["nextExpectedRanges"] == [f"{KIB320}-"]


def test_total_mismatch_is_400_fragment_length_mismatch(env: Env) -> None:
    url = _upload_url(env)
    assert env.frag(url, bytes(KIB320), 0, 5 * KIB320).status_code == 202
    assert_err(env.frag(url, bytes(KIB320), KIB320, 4 * KIB320), 400, "invalidRequest", "fragmentLengthMismatch")
    declared = _upload_url(env, fileSize=1000)
    assert_err(env.frag(declared, bytes(999), 0, 999), 400, "invalidRequest", "fragmentLengthMismatch")


def test_bad_or_missing_content_range_is_400(env: Env) -> None:
    url = _upload_url(env)
    assert_err(env.anon.put(url, data=b"abc"), 400, "invalidRequest")
    assert_err(env.anon.put(url, data=b"abc", headers={"Content-Range": "bytes 0-9/10"}), 400, "invalidRequest")
    assert_err(env.anon.put(url, data=b"abc", headers={"Content-Range": "items 0-2/3"}), 400, "invalidRequest")


def test_unknown_session_is_404(env: Env) -> None:
    url = env.emu.base_url + "/_graphup/not-a-session"
    assert_err(env.frag(url, b"abc", 0, 3), 404, "itemNotFound")
    assert_err(env.anon.get(url), 404, "itemNotFound")
    assert_err(env.anon.delete(url), 404, "itemNotFound")


def test_status_get_and_cancel_204(env: Env) -> None:
    url = _upload_url(env)
    env.frag(url, bytes(KIB320), 0, 2 * KIB320)
    status = env.anon.get(url)
    assert status.status_code == 200 and status.json()["nextExpectedRanges"] == [f"{KIB320}-"]
    assert env.anon.delete(url).status_code == 204
    assert_err(env.anon.get(url), 404, "itemNotFound")


def test_conflict_fail_at_commit_is_409_name_already_exists(env: Env) -> None:
    parent = env.folder()
    url = _upload_url(env, parent, "race.txt")
    env.s.put(f"{env.drive}/items/{parent}:/race.txt:/content", data=b"winner")  # taken meanwhile
    assert_err(env.frag(url, b"loser", 0, 5), 409, "nameAlreadyExists")
    assert_err(env.session(parent, "race.txt", **{"@microsoft.graph.conflictBehavior": "fail"}),
               409, "nameAlreadyExists")


def test_conflict_replace_keeps_id_and_rename_picks_new_name(env: Env) -> None:
    parent = env.folder()
    old = env.s.put(f"{env.drive}/items/{parent}:/doc.txt:/content", data=b"old").json()
    url = _upload_url(env, parent, "doc.txt", **{"@microsoft.graph.conflictBehavior": "replace"})
    r = env.frag(url, b"newer", 0, 5)
    assert r.status_code == 200 and r.json()["id"] == old["id"] and r.json()["size"] == 5
    url = _upload_url(env, parent, "doc.txt", **{"@microsoft.graph.conflictBehavior": "rename"})
    r = env.frag(url, b"third", 0, 5)
    assert r.status_code == 201 and r.json()["name"] == "doc 1.txt"


def test_file_size_over_quota_is_507_and_no_session(tmp_path: Path) -> None:
    e = Env(tmp_path / "q")
    try:
        assert e.s.post(e.emu.base_url + "/_emulator/graph/quota", json={"total": 1000}).status_code == 200
        assert_err(e.session("root", "big.bin", fileSize=1001), 507, "quotaLimitReached")
        assert e.session("root", "ok.bin", fileSize=1000).status_code == 200
        assert e.s.get(e.drive).json()["quota"]["total"] == 1000
    finally:
        e.emu.stop()


def test_expired_session_is_404(tmp_path: Path) -> None:
    e = Env(tmp_path / "x")
    try:
        url = _upload_url(e, "root")
        e.s.post(e.emu.base_url + "/_emulator/clock", json={"advance_s": 25 * 3600})
        assert_err(e.frag(url, b"abc", 0, 3), 404, "itemNotFound")
        url2 = _upload_url(e, "root", "abandoned.bin")
        e.s.post(e.emu.base_url + "/_emulator/clock", json={"advance_s": 25 * 3600})
    finally:
        e.emu.stop()
    blobs_before = sum(1 for p in (tmp_path / "x" / "blobs").rglob("*") if p.is_file())
    e2 = Env(tmp_path / "x")  # the restart sweeps the abandoned session and its blob
    try:
        assert sum(1 for p in (tmp_path / "x" / "blobs").rglob("*") if p.is_file()) == blobs_before - 1
        assert_err(e2.anon.get(e2.emu.base_url + "/_graphup/" + url2.split("/_graphup/")[1]), 404, "itemNotFound")
    finally:
        e2.emu.stop()


def test_bad_session_requests_get_graph_errors(env: Env) -> None:
    parent = env.folder()
    r = env.s.post(f"{env.drive}/items/{parent}:/x.bin:/createUploadSession", data=b"{oops",
                   headers={"Content-Type": "application/json"})
    assert_err(r, 400, "invalidRequest")
    assert_err(env.session(parent, "x.bin", **{"@microsoft.graph.conflictBehavior": "sometimes"}), 400,
               "invalidRequest")
    assert_err(env.session(parent, "bad%7Cname.bin"), 400, "invalidRequest")
    assert_err(env.session("01NOPE", "x.bin"), 404, "itemNotFound")


def test_session_survives_restart_and_continues(tmp_path: Path) -> None:
    data = os.urandom(3 * KIB320 + 7)
    e = Env(tmp_path / "r")
    try:
        url = _upload_url(e, "root", "resume.bin", fileSize=len(data))
        assert e.frag(url, data[:2 * KIB320], 0, len(data)).status_code == 202
    finally:
        e.emu.stop()
    e2 = Env(tmp_path / "r")
    try:
        url2 = e2.emu.base_url + "/_graphup/" + url.split("/_graphup/")[1]  # the new server has a new port
        assert e2.anon.get(url2).json()["nextExpectedRanges"] == [f"{2 * KIB320}-"]
        r = e2.frag(url2, data[2 * KIB320:], 2 * KIB320, len(data))
        assert r.status_code == 201, r.text
        want = hex_to_b64(hash_bytes(data, [HashType.QUICKXOR])[HashType.QUICKXOR])
        assert r.json()["file"]["hashes"]["quickXorHash"] == want
        assert e2.anon.get(r.json()["@microsoft.graph.downloadUrl"]).content == data
    finally:
        e2.emu.stop()


def test_fragment_cut_short_is_discarded_whole(env: Env) -> None:
    """A reset fault drops the connection mid-body: the session stays at its last fragment boundary."""
    url = _upload_url(env)
    total = 2 * KIB320
    ctl = env.emu.base_url + "/_emulator/faults"
    env.s.put(ctl, json={"rules": [{"kind": "reset", "route": "graph.upload.fragment", "count": 1}]})
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            env.frag(url, bytes(KIB320), 0, total)
    finally:
        env.s.put(ctl, json={"rules": []})
    assert env.anon.get(url).json()["nextExpectedRanges"] == ["0-"]
    assert env.frag(url, bytes(KIB320), 0, total).status_code == 202


def test_parallel_sessions_and_racing_duplicate_fragments(env: Env) -> None:
    """Eight uploads at once each commit their own bytes; two copies of one fragment racing on the same
    session give one 202 and one 416 (the session serialises fragments)."""
    from concurrent.futures import ThreadPoolExecutor

    parent = env.folder()
    blobs = {f"p{i}.bin": os.urandom(2 * KIB320 + i + 1) for i in range(8)}

    def upload(name: str) -> dict[str, Any]:
        data = blobs[name]
        url = _upload_url(env, parent, name)
        assert env.frag(url, data[:2 * KIB320], 0, len(data)).status_code == 202
        r = env.frag(url, data[2 * KIB320:], 2 * KIB320, len(data))
        assert r.status_code == 201, r.text
        return dict(r.json())

    with ThreadPoolExecutor(8) as pool:
        items = list(pool.map(upload, blobs))
    for item in items:
        data = blobs[item["name"]]
        assert item["file"]["hashes"]["quickXorHash"] == hex_to_b64(
            hash_bytes(data, [HashType.QUICKXOR])[HashType.QUICKXOR])
    url = _upload_url(env, parent, "race.bin")
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(lambda _: env.frag(url, bytes(KIB320), 0, 2 * KIB320).status_code, range(2)))
    assert codes == [202, 416]


def test_defer_commit_waits_for_post_to_upload_url(env: Env) -> None:
    parent = env.folder()
    r = env.s.post(f"{env.drive}/items/{parent}:/later.bin:/createUploadSession",
                   json={"item": {"@microsoft.graph.conflictBehavior": "fail"}, "deferCommit": True})
    url = r.json()["uploadUrl"]
    assert_err(env.anon.post(url), 400, "invalidRequest", "uploadSessionIncomplete")
    done = env.frag(url, b"all of it", 0, 9)
    assert done.status_code == 202 and done.json()["nextExpectedRanges"] == []
    assert_err(env.s.get(f"{env.drive}/items/{parent}:/later.bin:"), 404, "itemNotFound")
    r = env.anon.post(url)
    assert r.status_code == 201 and r.json()["size"] == 9
    assert env.s.get(f"{env.drive}/items/{parent}:/later.bin:").status_code == 200
