"""The emulator's HTTP layer (werkzeug): chunked request bodies (RFC 9112 section 7.1) on Drive's upload
protocols, resumable chunks by POST as well as PUT (api-notes 17), keep-alive, the Date header from the
emulator clock, the realism hook and faults on bodies of unknown length."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator import identity
from driveferry.emulator.drive.routes import DriveApi
from driveferry.emulator.faults import FaultPlan, FaultRule
from driveferry.emulator.http import Request, Response
from driveferry.emulator.realism import Realism
from driveferry.emulator.server import Emulator

CH = 256 * 1024
SUMS = "id,name,size,md5Checksum"


class Env:
    """A plain-HTTP Drive emulator and a bearer token for it."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        self.emu = Emulator(path, modules=[*identity.modules(), DriveApi()], **kwargs).start()
        self.token = self.emu.state.issue_token("google", "t@example.com", lifetime_s=3600)
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=30)

    def session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        return s

    def media(self, file_id: str) -> bytes:
        r = self.session().get(f"{self.emu.base_url}/drive/v3/files/{file_id}", params={"alt": "media"},
                               headers=self.auth)
        assert r.status_code == 200, r.text
        return r.content

    def initiate(self, total: int | None) -> str:
        headers = {**self.auth, **({"X-Upload-Content-Length": str(total)} if total is not None else {})}
        r = self.session().post(f"{self.emu.base_url}/upload/drive/v3/files",
                                params={"uploadType": "resumable", "fields": SUMS}, headers=headers,
                                json={"name": "r.bin"})
        assert r.status_code == 200, r.text
        return r.headers["Location"]


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.emu.stop()


def blocks(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    """An iterable body: requests and http.client send it chunked, with no Content-Length."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def multipart(meta: dict[str, Any], data: bytes, boundary: str = "b0undary") -> bytes:
    return (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(meta)}\r\n"
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()


def test_chunked_multipart_upload_and_the_next_request_on_the_same_connection(env: Env) -> None:
    data = os.urandom(700_000)
    conn = env.conn()
    conn.request("POST", f"/upload/drive/v3/files?uploadType=multipart&fields={SUMS}",
                 body=blocks(multipart({"name": "go.bin"}, data)), encode_chunked=True,
                 headers={**env.auth, "Content-Type": "multipart/related; boundary=b0undary"})
    sock = conn.sock
    r = conn.getresponse()
    body = json.loads(r.read())
    assert r.status == 200, body
    assert r.getheader("Connection") is None  # kept alive
    assert (body["name"], body["size"], body["md5Checksum"]) == ("go.bin", str(len(data)),
                                                                  hashlib.md5(data).hexdigest())
    # the same connection carries the next request: the chunk framing was consumed, not parsed as a request
    conn.request("GET", f"/drive/v3/files/{body['id']}?alt=media", headers=env.auth)
    r2 = conn.getresponse()
    assert r2.status == 200 and r2.read() == data
    assert conn.sock is sock
    conn.close()
    assert env.media(body["id"]) == data


def test_chunked_media_upload_stores_what_was_sent(env: Env) -> None:
    data = os.urandom(3 * CH + 17)
    r = env.session().post(f"{env.emu.base_url}/upload/drive/v3/files", params={"uploadType": "media",
                           "fields": SUMS}, data=blocks(data), headers=env.auth)
    assert r.status_code == 200, r.text
    assert r.json()["md5Checksum"] == hashlib.md5(data).hexdigest() and r.json()["size"] == str(len(data))
    assert env.media(r.json()["id"]) == data


def test_resumable_chunks_by_post(env: Env) -> None:
    data = os.urandom(3 * CH + 1000)
    uri, s = env.initiate(len(data)), env.session()
    offsets = [0, CH, 2 * CH, 3 * CH, len(data)]
    for a, b in zip(offsets, offsets[1:], strict=False):
        r = s.post(uri, data=data[a:b], headers={"Content-Range": f"bytes {a}-{b - 1}/{len(data)}"})
        if b < len(data):
            assert r.status_code == 308 and r.headers["Range"] == f"bytes=0-{b - 1}", r.text
    assert r.status_code == 200, r.text
    assert r.json()["md5Checksum"] == hashlib.md5(data).hexdigest()
    assert env.media(r.json()["id"]) == data
    # a POST status query on a finished session answers the file, it never starts a new upload
    again = s.post(uri, headers={"Content-Range": f"bytes */{len(data)}"})
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    listed = s.get(f"{env.emu.base_url}/drive/v3/files", headers=env.auth, params={"fields": "files(id)"})
    assert [f["id"] for f in listed.json()["files"]] == [r.json()["id"]]


def test_resumable_mixing_post_put_and_a_chunked_chunk(env: Env) -> None:
    data = os.urandom(4 * CH + 5)
    total = len(data)
    uri, s = env.initiate(None), env.session()  # total unknown until the last chunk
    r = s.post(uri, data=data[:CH], headers={"Content-Range": f"bytes 0-{CH - 1}/*"})
    assert r.status_code == 308
    r = s.put(uri, data=blocks(data[CH:3 * CH]), headers={"Content-Range": f"bytes {CH}-{3 * CH - 1}/*"})
    assert r.status_code == 308 and r.headers["Range"] == f"bytes=0-{3 * CH - 1}", r.text
    r = s.post(uri, data=blocks(data[3 * CH:]), headers={"Content-Range": f"bytes {3 * CH}-{total - 1}/{total}"})
    assert r.status_code == 200, r.text
    assert (r.json()["size"], r.json()["md5Checksum"]) == (str(total), hashlib.md5(data).hexdigest())
    assert env.media(r.json()["id"]) == data


def test_a_chunked_chunk_longer_or_shorter_than_its_range_keeps_nothing(env: Env) -> None:
    data = os.urandom(2 * CH)
    uri, s = env.initiate(len(data)), env.session()
    long = s.put(uri, data=blocks(data[:CH + 10]), headers={"Content-Range": f"bytes 0-{CH - 1}/{len(data)}"})
    short = s.put(uri, data=blocks(data[:CH - 10]), headers={"Content-Range": f"bytes 0-{CH - 1}/{len(data)}"})
    assert (long.status_code, short.status_code) == (400, 400)
    status = s.put(uri, headers={"Content-Range": f"bytes */{len(data)}"})
    assert status.status_code == 308 and "Range" not in status.headers  # nothing kept
    r = s.put(uri, data=blocks(data), headers={"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})
    assert r.status_code == 200 and r.json()["md5Checksum"] == hashlib.md5(data).hexdigest()


def test_a_chunked_whole_upload_without_content_range(env: Env) -> None:
    data = os.urandom(CH + 3)
    uri = env.initiate(None)
    r = env.session().put(uri, data=blocks(data))
    assert r.status_code == 200, r.text
    assert r.json()["size"] == str(len(data)) and r.json()["md5Checksum"] == hashlib.md5(data).hexdigest()


def test_raw_chunk_framing_and_keep_alive_over_one_socket(env: Env) -> None:
    """What Go's client writes, byte for byte: chunk sizes in hex, a trailing zero chunk, then the next request."""
    data = b"hello, chunked world"
    body = multipart({"name": "raw.bin"}, data)
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:7], body[7:50], body[50:])) + b"0\r\n\r\n"
    head = (f"POST /upload/drive/v3/files?uploadType=multipart&fields=id,md5Checksum HTTP/1.1\r\n"
            f"Host: www.googleapis.com\r\nAuthorization: Bearer {env.token}\r\n"
            f"Content-Type: multipart/related; boundary=b0undary\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    about = (f"GET /drive/v3/about?fields=user HTTP/1.1\r\nHost: www.googleapis.com\r\n"
             f"Authorization: Bearer {env.token}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", env.emu.port), timeout=30) as sock:
        sock.sendall(head + framed + about)  # pipelined: the second request follows the zero chunk at once
        reader = _Shared(sock.makefile("rb"))
        first = _response(sock, reader)
        assert first.status == 200
        assert json.loads(first.read())["md5Checksum"] == hashlib.md5(data).hexdigest()
        second = _response(sock, reader)
        assert second.status == 200 and json.loads(second.read())["user"]["emailAddress"] == "t@example.com"


class _Shared:
    """One socket reader for several responses (http.client closes a response's reader when it is done)."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def close(self) -> None:
        pass


def _response(sock: socket.socket, reader: _Shared) -> http.client.HTTPResponse:
    r = http.client.HTTPResponse(sock)
    r.fp = reader  # type: ignore[assignment]
    r.begin()
    return r


def test_every_response_carries_the_emulator_clock_as_date(env: Env) -> None:
    s = env.session()
    s.post(f"{env.emu.base_url}/_emulator/clock", json={"advance_s": 3 * 86400}).raise_for_status()
    for r in (s.get(f"{env.emu.base_url}/drive/v3/about", params={"fields": "user"}, headers=env.auth),
              s.get(f"{env.emu.base_url}/drive/v3/about"),  # 401
              s.get(f"{env.emu.base_url}/nowhere")):  # 404
        ahead = (parsedate_to_datetime(r.headers["Date"]) - datetime.now(UTC)).total_seconds()
        assert abs(ahead - 3 * 86400) < 60, (r.status_code, r.headers["Date"])


class _Refuse(Realism):
    """Answers 429 for one route and records who asked."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []

    def before(self, req: Request) -> Response | None:
        self.seen.append((req.route, req.user))
        if req.route == "drive.files.list":
            return Response.json({"error": {"code": 429, "message": "slow down"}}, 429, [("Retry-After", "7")])
        return None


def test_the_realism_hook_answers_after_the_token_check(tmp_path: Path) -> None:
    realism = _Refuse()
    e = Env(tmp_path, realism=realism)
    try:
        s = e.session()
        listed = s.get(f"{e.emu.base_url}/drive/v3/files", headers=e.auth)
        about = s.get(f"{e.emu.base_url}/drive/v3/about", params={"fields": "user"}, headers=e.auth)
        anonymous = s.get(f"{e.emu.base_url}/drive/v3/files")  # 401 before the hook
        counters = s.get(f"{e.emu.base_url}/_emulator/counters").json()  # control routes skip the hook
        assert (listed.status_code, listed.headers["Retry-After"], about.status_code, anonymous.status_code) == \
            (429, "7", 200, 401)
        assert realism.seen == [("drive.files.list", "t@example.com"), ("drive.about", "t@example.com")]
        assert counters["statuses"]["429"] == 1 and counters["requests"]["drive.files.list"] == 2
    finally:
        e.emu.stop()


def test_a_reset_in_a_chunked_body_drops_the_connection_and_stores_nothing(tmp_path: Path) -> None:
    plan = FaultPlan(seed=3, rules=[FaultRule(kind="reset", route="drive.upload.simple", count=1)])
    e = Env(tmp_path, faults=plan)
    try:
        data = os.urandom(2 << 20)
        url = f"{e.emu.base_url}/upload/drive/v3/files"
        with pytest.raises(requests.ConnectionError):
            e.session().post(url, params={"uploadType": "media"}, data=blocks(data), headers=e.auth)
        r = e.session().post(url, params={"uploadType": "media", "fields": SUMS}, data=blocks(data), headers=e.auth)
        assert r.status_code == 200 and r.json()["md5Checksum"] == hashlib.md5(data).hexdigest()
        listed = e.session().get(f"{e.emu.base_url}/drive/v3/files", headers=e.auth, params={"fields": "files(id)"})
        assert [f["id"] for f in listed.json()["files"]] == [r.json()["id"]]
        counters = e.session().get(f"{e.emu.base_url}/_emulator/counters").json()
        assert counters["faults"] == {"drive.upload.simple:reset": 1}
    finally:
        e.emu.stop()


def _seed(env: Env, data: bytes) -> str:
    r = env.session().post(f"{env.emu.base_url}/upload/drive/v3/files", params={"uploadType": "media"},
                           data=data, headers=env.auth)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_plain_http_downloads_whole_and_ranged_are_counted(env: Env) -> None:
    data = os.urandom(9 << 20)  # more than one sendfile block
    fid = _seed(env, data)
    s = env.session()
    s.post(f"{env.emu.base_url}/_emulator/counters/reset").raise_for_status()
    url = f"{env.emu.base_url}/drive/v3/files/{fid}"
    whole = s.get(url, params={"alt": "media"}, headers=env.auth)
    part = s.get(url, params={"alt": "media"}, headers={**env.auth, "Range": "bytes=100-8388707"})
    assert whole.content == data and whole.headers["Content-Length"] == str(len(data))
    assert part.status_code == 206 and part.content == data[100:8388708]
    out = s.get(f"{env.emu.base_url}/_emulator/counters").json()["bytes_out"]["drive.files.media"]
    assert out == len(data) + 8388608


@pytest.mark.parametrize("kind", ["truncate", "corrupt", "reset"])
def test_download_byte_faults_on_plain_http(tmp_path: Path, kind: str) -> None:
    plan = FaultPlan(seed=5, rules=[FaultRule(kind=kind, route="drive.files.media", count=1)])
    e = Env(tmp_path, faults=plan)
    try:
        data = os.urandom(3 << 20)
        fid = _seed(e, data)
        conn = e.conn()
        conn.request("GET", f"/drive/v3/files/{fid}?alt=media", headers=e.auth)
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Length") == str(len(data))
        if kind == "corrupt":
            got = r.read()
            assert len(got) == len(data) and got != data
            assert sum(a != b for a, b in zip(got, data, strict=True)) == 1
        else:  # truncated or reset: fewer bytes than promised, then the connection ends (RST)
            got = bytearray()
            try:
                while block := r.read(65536):
                    got += block
            except (http.client.IncompleteRead, ConnectionResetError):
                pass
            assert len(got) < len(data) and data.startswith(got)
        conn.close()
        assert e.media(fid) == data  # the stored bytes are intact; the next download is clean
    finally:
        e.emu.stop()


def test_werkzeug_request_logging_stays_at_debug(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    s = env.session()
    s.get(f"{env.emu.base_url}/drive/v3/about", params={"fields": "user"}, headers=env.auth)
    s.get(f"{env.emu.base_url}/nowhere")
    with socket.create_connection(("127.0.0.1", env.emu.port), timeout=30) as sock:
        sock.sendall(b"NOT-HTTP\r\n\r\n")
        sock.recv(1000)
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


def test_method_override_reads_the_query_from_the_body_before_routing(env: Env) -> None:
    """googleapiclient sends a GET whose URL would be too long as POST + X-HTTP-Method-Override with the
    whole query (alt=media included) as a form body."""
    data = os.urandom(5000)
    fid = _seed(env, data)
    s = env.session()
    s.post(f"{env.emu.base_url}/_emulator/counters/reset").raise_for_status()
    form = "alt=media&" + "&".join(f"x{i}=" + "v" * 40 for i in range(60))
    r = s.post(f"{env.emu.base_url}/drive/v3/files/{fid}", data=form,
               headers={**env.auth, "X-HTTP-Method-Override": "GET",
                        "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.content == data
    counters = s.get(f"{env.emu.base_url}/_emulator/counters").json()
    assert counters["requests"]["drive.files.media"] == 1 and counters["bytes_in"] == {"drive.files.media": len(form)}


def test_a_silent_client_on_the_tls_port_stalls_no_one(tmp_path: Path) -> None:
    """TLS handshakes run in each connection's thread, not in the accept loop."""
    emu = Emulator(tmp_path, tls=True, modules=[DriveApi()]).start()
    try:
        with socket.create_connection(("127.0.0.1", emu.port)) as silent, \
                socket.create_connection(("127.0.0.1", emu.port)) as not_tls:
            not_tls.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP on the TLS port: refused quietly
            s = requests.Session()
            s.trust_env, s.verify = False, str(emu.ca_file)
            r = s.get(f"{emu.base_url}/_emulator/counters", timeout=20)
            assert r.status_code == 200 and r.headers["Date"]
            assert silent.fileno() >= 0
    finally:
        emu.stop()


def test_ipv6_loopback_keeps_the_connection_alive(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        emu = Emulator(tmp_path, host="::1", modules=[DriveApi()]).start()
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    try:
        assert emu.base_url.startswith("http://[::1]:")
        conn = http.client.HTTPConnection("::1", emu.port, timeout=30)
        for _ in range(3):
            conn.request("GET", "/_emulator/counters")
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["requests"]["control.counters"] >= 1
            sock = conn.sock
        conn.request("GET", "/_emulator/counters")
        assert json.loads(conn.getresponse().read())["requests"]["control.counters"] == 4
        assert conn.sock is sock
        conn.close()
    finally:
        emu.stop()


@pytest.mark.parametrize("nl", [b"\r\n", b"\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("tail", [b"\r", b"\n", b"\r\n", b"\n\n"], ids=["cr", "lf", "crlf", "lflf"])
def test_multipart_media_ending_in_a_line_break_keeps_every_byte(env: Env, nl: bytes, tail: bytes) -> None:
    """The break before a delimiter belongs to the delimiter (RFC 2046 5.1.1); a media part that itself
    ends in \\r or \\n (1 in 128 random files) must keep it."""
    data = os.urandom(1000) + tail
    body = (b"--B" + nl + b"Content-Type: application/json" + nl + nl + b'{"name": "t.bin"}' + nl + b"--B" + nl +
            b"Content-Type: application/octet-stream" + nl + nl + data + nl + b"--B--" + nl)
    r = env.session().post(f"{env.emu.base_url}/upload/drive/v3/files", params={"uploadType": "multipart",
                           "fields": SUMS}, data=body,
                           headers={**env.auth, "Content-Type": "multipart/related; boundary=B"})
    assert r.status_code == 200, r.text
    assert (r.json()["size"], r.json()["md5Checksum"]) == (str(len(data)), hashlib.md5(data).hexdigest())
