"""Drive emulator content: downloads with Range, and the upload protocols (resumable, multipart, media),
one test per protocol rule of api-notes 4.1-4.4, mostly through the official client."""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import pytest
import requests
from googleapiclient.http import MediaIoBaseDownload, MediaIoBaseUpload
from test_drive_support import *  # noqa: F403 - fixtures: shared_emu, svc, raw, folder
from test_drive_support import model_of, reason

from driveferry.emulator.server import Emulator

CH = 256 * 1024
SUMS = "id,size,md5Checksum,sha1Checksum,sha256Checksum"


def digests(data: bytes) -> dict[str, str]:
    return {"size": str(len(data)), "md5Checksum": hashlib.md5(data).hexdigest(),
            "sha1Checksum": hashlib.sha1(data).hexdigest(), "sha256Checksum": hashlib.sha256(data).hexdigest()}


def upload(svc: Any, data: bytes, parent: str, name: str = "u.bin", chunksize: int = CH,
           resumable: bool = True) -> dict[str, Any]:
    media = MediaIoBaseUpload(io.BytesIO(data), "application/octet-stream", chunksize=chunksize, resumable=resumable)
    return dict(svc.files().create(body={"name": name, "parents": [parent]}, media_body=media,
                                   fields=SUMS).execute())


def download(svc: Any, file_id: str, chunksize: int = 100_000) -> bytes:
    buf = io.BytesIO()
    dl = MediaIoBaseDownload(buf, svc.files().get_media(fileId=file_id), chunksize=chunksize)
    done = False
    while not done:
        _, done = dl.next_chunk()
    return buf.getvalue()


def initiate(raw: requests.Session, emu: Emulator, parent: str, total: int | None = None,
             fields: str | None = None) -> str:
    headers = {"Content-Type": "application/json; charset=UTF-8"}
    if total is not None:
        headers["X-Upload-Content-Length"] = str(total)
    params = {"uploadType": "resumable", **({"fields": fields} if fields else {})}
    r = raw.post(emu.base_url + "/upload/drive/v3/files", params=params, headers=headers,
                 json={"name": "raw.bin", "parents": [parent]})
    assert r.status_code == 200, r.text
    return r.headers["Location"]


def put(uri: str, emu: Emulator, data: bytes, first: int | None, total: int | str,
        auth: bool = False) -> requests.Response:
    """A session PUT with no Authorization header (the session URI is the credential)."""
    headers = {}
    if first is None:
        headers["Content-Range"] = f"bytes */{total}"
    else:
        headers["Content-Range"] = f"bytes {first}-{first + len(data) - 1}/{total}"
    return requests.put(uri, data=data, headers=headers, verify=str(emu.ca_file))


# --- downloads ----------------------------------------------------------------------------------------------

def test_media_download_in_chunks(svc: Any, folder: str) -> None:
    data = os.urandom(300_001)
    f = upload(svc, data, folder)
    assert download(svc, f["id"]) == data


def test_range_gives_206_with_content_range(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    data = os.urandom(1000)
    fid = model_of(shared_emu).create_file("r.bin", [data], parent=folder).id
    url = shared_emu.base_url + f"/drive/v3/files/{fid}"
    r = raw.get(url, params={"alt": "media"}, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == "bytes 10-19/1000"
    r = raw.get(url, params={"alt": "media"}, headers={"Range": "bytes=990-5000"})
    assert r.status_code == 206 and r.content == data[990:] and r.headers["Content-Range"] == "bytes 990-999/1000"
    r = raw.get(url, params={"alt": "media"}, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = raw.get(url, params={"alt": "media"})
    assert r.status_code == 200 and r.content == data and "Content-Range" not in r.headers


def test_range_past_end_is_416_with_star_content_range(raw: requests.Session, shared_emu: Emulator,
                                                       folder: str) -> None:
    fid = model_of(shared_emu).create_file("r.bin", [b"x" * 10], parent=folder).id
    r = raw.get(shared_emu.base_url + f"/drive/v3/files/{fid}", params={"alt": "media"},
                headers={"Range": "bytes=10-20"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */10"
    assert reason(r) == "requestedRangeNotSatisfiable"


def test_zero_byte_file_416_and_client_download(svc: Any, raw: requests.Session, shared_emu: Emulator,
                                                folder: str) -> None:
    fid = model_of(shared_emu).create_file("empty", [], parent=folder).id
    r = raw.get(shared_emu.base_url + f"/drive/v3/files/{fid}", params={"alt": "media"},
                headers={"Range": "bytes=0-99"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */0"
    assert download(svc, fid) == b""  # the client relies on that header (issue #638)


# --- resumable uploads --------------------------------------------------------------------------------------

def test_resumable_upload_in_256k_chunks_checksums(svc: Any, shared_emu: Emulator, folder: str) -> None:
    data = os.urandom(3 * CH + 1000)
    before = shared_emu.state.counters.snapshot()["requests"].get("drive.upload.chunk", 0)
    got = upload(svc, data, folder)
    assert {k: got[k] for k in digests(data)} == digests(data)
    assert shared_emu.state.counters.snapshot()["requests"]["drive.upload.chunk"] - before == 4
    assert download(svc, got["id"]) == data


def test_initiation_is_200_with_location_under_base_url(raw: requests.Session, shared_emu: Emulator,
                                                        folder: str) -> None:
    uri = initiate(raw, shared_emu, folder, total=5)
    assert uri.startswith(shared_emu.base_url + "/upload/drive/v3/files?uploadType=resumable&upload_id=")


def test_308_without_range_when_nothing_stored(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    uri = initiate(raw, shared_emu, folder, total=2 * CH)
    r = put(uri, shared_emu, b"", None, 2 * CH)
    assert r.status_code == 308 and "Range" not in r.headers and "Location" not in r.headers


def test_308_range_after_chunk_and_status_query(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    uri = initiate(raw, shared_emu, folder, total=2 * CH)
    r = put(uri, shared_emu, os.urandom(CH), 0, 2 * CH)
    assert r.status_code == 308 and r.headers["Range"] == f"bytes=0-{CH - 1}"
    r = put(uri, shared_emu, b"", None, 2 * CH)
    assert r.status_code == 308 and r.headers["Range"] == f"bytes=0-{CH - 1}"


def test_unaligned_chunk_keeps_largest_256k_multiple(raw: requests.Session, shared_emu: Emulator,
                                                     folder: str) -> None:
    data = os.urandom(3 * CH)
    uri = initiate(raw, shared_emu, folder, total=len(data), fields=SUMS)
    r = put(uri, shared_emu, data[:CH + 5000], 0, len(data))
    assert r.status_code == 308 and r.headers["Range"] == f"bytes=0-{CH - 1}"
    r = put(uri, shared_emu, data[CH:], CH, len(data))
    assert r.status_code == 200 and {k: r.json()[k] for k in digests(data)} == digests(data)


def test_chunk_past_persisted_size_is_503(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    uri = initiate(raw, shared_emu, folder, total=3 * CH)
    put(uri, shared_emu, os.urandom(CH + 100), 0, 3 * CH)  # keeps CH bytes only
    r = put(uri, shared_emu, os.urandom(CH), CH + 100, 3 * CH)
    assert r.status_code == 503
    assert "exceeds already uploaded size of 262144 byte(s)" in r.json()["error"]["message"]


def test_overlapping_resend_is_ignored(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    data = os.urandom(2 * CH)
    uri = initiate(raw, shared_emu, folder, total=len(data), fields="md5Checksum")
    put(uri, shared_emu, data[:CH], 0, len(data))
    resend = b"\0" * CH + data[CH:]  # the overlapping half differs: the stored bytes must win
    r = put(uri, shared_emu, resend, 0, len(data))
    assert r.status_code == 200 and r.json() == {"md5Checksum": hashlib.md5(data).hexdigest()}


def test_put_without_content_range_is_whole_content(raw: requests.Session, shared_emu: Emulator,
                                                    folder: str) -> None:
    uri = initiate(raw, shared_emu, folder, fields="size,md5Checksum")
    r = requests.put(uri, data=b"whole", verify=str(shared_emu.ca_file))
    assert r.status_code == 200 and r.json() == {"size": "5", "md5Checksum": hashlib.md5(b"whole").hexdigest()}


def test_empty_file_through_client(svc: Any, folder: str) -> None:
    got = upload(svc, b"", folder, name="empty")
    assert {k: got[k] for k in digests(b"")} == digests(b"")


def test_final_body_uses_initiation_fields(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    uri = initiate(raw, shared_emu, folder, total=3, fields="id,name,parents")
    r = put(uri, shared_emu, b"abc", 0, 3)
    assert r.status_code == 200 and set(r.json()) == {"id", "name", "parents"}
    r = put(uri, shared_emu, b"", None, 3)  # asking again after completion returns the file
    assert r.status_code == 200 and set(r.json()) == {"id", "name", "parents"}


def test_unknown_session_is_404(shared_emu: Emulator) -> None:
    uri = shared_emu.base_url + "/upload/drive/v3/files?uploadType=resumable&upload_id=nope"
    r = put(uri, shared_emu, b"", None, 10)
    assert r.status_code == 404 and reason(r) == "notFound"


def test_bad_content_range_is_400(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    uri = initiate(raw, shared_emu, folder, total=10)
    for value in ("bytes 0-4/x", "bytes 5-2/10", "items 0-4/10", "bytes 0-9/10"):  # the last: wrong length
        r = requests.put(uri, data=b"abcd", headers={"Content-Range": value}, verify=str(shared_emu.ca_file))
        assert r.status_code == 400, value
        assert reason(r) == "badRequest"


def test_total_mismatch_is_400(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    uri = initiate(raw, shared_emu, folder, total=10)
    assert put(uri, shared_emu, b"abc", 0, 11).status_code == 400


def test_unknown_total_then_final(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    data = os.urandom(CH + 7)
    uri = initiate(raw, shared_emu, folder, fields="size")
    assert put(uri, shared_emu, data[:CH], 0, "*").status_code == 308
    r = put(uri, shared_emu, data[CH:], CH, len(data))
    assert r.status_code == 200 and r.json() == {"size": str(len(data))}


# --- multipart and media ------------------------------------------------------------------------------------

def test_multipart_through_client(svc: Any, folder: str) -> None:
    data = b"line1\nline2\r\n--not-a-boundary\n"
    got = upload(svc, data, folder, name="mp.txt", resumable=False)
    assert {k: got[k] for k in digests(data)} == digests(data)


def test_multipart_with_bare_newlines(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    body = (b'--===============42==\nContent-Type: application/json\nMIME-Version: 1.0\n\n'
            b'{"name": "bare.txt", "parents": ["' + folder.encode() + b'"]}\n'
            b'--===============42==\nContent-Type: text/plain\nMIME-Version: 1.0\n'
            b'Content-Transfer-Encoding: binary\n\nhello\nworld\n--===============42==--')
    r = raw.post(shared_emu.base_url + "/upload/drive/v3/files",
                 params={"uploadType": "multipart", "fields": "name,mimeType,md5Checksum"}, data=body,
                 headers={"Content-Type": 'multipart/related; boundary="===============42=="'})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "bare.txt", "mimeType": "text/plain",
                        "md5Checksum": hashlib.md5(b"hello\nworld").hexdigest()}


def test_simple_media_upload(svc: Any) -> None:
    media = MediaIoBaseUpload(io.BytesIO(b"media!"), "text/plain", resumable=False)
    got = svc.files().create(media_body=media, fields="name,mimeType,size,parents").execute()
    assert got["size"] == "6" and got["mimeType"] == "text/plain" and got["name"] == "Untitled"


@pytest.mark.parametrize("resumable", [True, False])
def test_media_update_replaces_content(svc: Any, folder: str, resumable: bool) -> None:
    f = upload(svc, b"old content", folder)
    new = os.urandom(CH + 3)
    media = MediaIoBaseUpload(io.BytesIO(new), "application/octet-stream", chunksize=CH, resumable=resumable)
    got = svc.files().update(fileId=f["id"], body={"name": "renamed"}, media_body=media,
                             fields="name," + SUMS).execute()
    assert got["id"] == f["id"] and got["name"] == "renamed"
    assert {k: got[k] for k in digests(new)} == digests(new)
    assert download(svc, f["id"]) == new


def test_one_larger_file_round_trip(svc: Any, folder: str) -> None:
    data = os.urandom(16 * 1024 * 1024 + 12345)
    got = upload(svc, data, folder, chunksize=4 * 1024 * 1024)
    assert {k: got[k] for k in digests(data)} == digests(data)
    assert hashlib.sha256(download(svc, got["id"], chunksize=5 * 1024 * 1024)).digest() == \
        hashlib.sha256(data).digest()


def test_upload_errors_are_google_json(raw: requests.Session, shared_emu: Emulator) -> None:
    r = raw.post(shared_emu.base_url + "/upload/drive/v3/files", params={"uploadType": "bogus"}, data=b"x")
    assert r.status_code == 400 and reason(r) == "badRequest"
    r = raw.post(shared_emu.base_url + "/upload/drive/v3/files", params={"uploadType": "resumable"},
                 data=b"{broken", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and reason(r) == "parseError"
    r = raw.post(shared_emu.base_url + "/upload/drive/v3/files", params={"uploadType": "resumable"},
                 json={"name": "x", "parents": ["missing-parent-id"]})
    assert r.status_code == 404 and reason(r) == "notFound"
    r = raw.post(shared_emu.base_url + "/upload/drive/v3/files", params={"uploadType": "multipart"},
                 data=b"no parts", headers={"Content-Type": "multipart/related; boundary=b"})
    assert r.status_code == 400 and reason(r) == "badRequest"


def test_cancel_session_with_delete(raw: requests.Session, shared_emu: Emulator, folder: str) -> None:
    uri = initiate(raw, shared_emu, folder, total=2 * CH)
    put(uri, shared_emu, os.urandom(CH), 0, 2 * CH)
    r = requests.delete(uri, verify=str(shared_emu.ca_file))
    assert r.status_code == 204
    assert put(uri, shared_emu, os.urandom(CH), CH, 2 * CH).status_code == 404
    assert raw.get(shared_emu.base_url + "/drive/v3/files", params={"q": f"'{folder}' in parents"}).json()["files"] == []


def test_parallel_client_uploads(shared_emu: Emulator, folder: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from test_drive_support import build_service

    blobs = [os.urandom(CH * 2 + i) for i in range(4)]

    def one(data: bytes) -> dict[str, Any]:
        return upload(build_service(shared_emu), data, folder, name=f"p{len(data)}")  # httplib2 isn't thread-safe

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, blobs))
    for data, got in zip(blobs, results, strict=True):
        assert {k: got[k] for k in digests(data)} == digests(data)
