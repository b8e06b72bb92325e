"""Drive emulator state: quotas on the emulator clock, session expiry, restart persistence, resuming a
session from a new process, faults in Drive's error shape, control routes and the model API."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaFileUpload, MediaIoBaseUpload
from test_drive_support import *  # noqa: F403 - fixtures: own_emu
from test_drive_support import build_service, model_of, raw_session, reason, start

from driveferry.emulator.drive.errors import DAILY_CAP_MESSAGE
from driveferry.emulator.server import Emulator

CH = 256 * 1024


def new_session(emu: Emulator, total: int, fields: str = "id,size,md5Checksum,sha256Checksum") -> str:
    r = raw_session(emu).post(emu.base_url + "/upload/drive/v3/files",
                              params={"uploadType": "resumable", "fields": fields},
                              headers={"X-Upload-Content-Length": str(total)}, json={"name": "s.bin"})
    assert r.status_code == 200, r.text
    return r.headers["Location"]


def put(uri: str, emu: Emulator, data: bytes, first: int | None, total: int) -> requests.Response:
    rng = f"bytes */{total}" if first is None else f"bytes {first}-{first + len(data) - 1}/{total}"
    return requests.put(uri, data=data, headers={"Content-Range": rng}, verify=str(emu.ca_file))


def control(emu: Emulator) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(emu.ca_file)
    return s


# --- daily upload cap and storage quota ---------------------------------------------------------------------

def test_daily_cap_exact_error_and_rolling_window(own_emu: Emulator) -> None:
    svc, ctl = build_service(own_emu), control(own_emu)
    r = ctl.put(own_emu.base_url + "/_emulator/drive/limits", json={"daily_upload_bytes": CH})
    assert r.status_code == 200 and r.json()["daily_upload_bytes"] == CH
    media = MediaIoBaseUpload(io.BytesIO(os.urandom(CH)), "application/octet-stream", resumable=False)
    svc.files().create(body={"name": "a"}, media_body=media).execute()
    assert ctl.get(own_emu.base_url + "/_emulator/drive/usage").json()["uploaded_bytes"] == CH
    media = MediaIoBaseUpload(io.BytesIO(b"more"), "application/octet-stream", chunksize=CH, resumable=True)
    with pytest.raises(HttpError) as exc:
        svc.files().create(body={"name": "b"}, media_body=media).execute()
    body = json.loads(exc.value.content)["error"]
    assert exc.value.status_code == 403 and body["message"] == DAILY_CAP_MESSAGE == "User rate limit exceeded."
    assert body["errors"][0] == {"domain": "usageLimits", "reason": "userRateLimitExceeded",
                                 "message": "User rate limit exceeded."}
    own_emu.state.advance_clock(24 * 3600 + 1)  # the window rolls on the emulator clock
    svc = build_service(own_emu)  # (the old token expired with the clock)
    media = MediaIoBaseUpload(io.BytesIO(b"more"), "application/octet-stream", chunksize=CH, resumable=True)
    assert svc.files().create(body={"name": "c"}, media_body=media, fields="size").execute() == {"size": "4"}


def test_daily_cap_lets_a_running_session_complete(own_emu: Emulator) -> None:
    """"Uploads that are in progress will complete" (Google admin help 172541): the session opened before
    the cap crosses it and finishes; a session opened afterwards is refused."""
    model_of(own_emu).set_limits(daily_upload_bytes=CH)
    uri = new_session(own_emu, 3 * CH)
    assert put(uri, own_emu, os.urandom(CH), 0, 3 * CH).status_code == 308
    assert put(uri, own_emu, os.urandom(CH), CH, 3 * CH).status_code == 308  # past the cap
    assert put(uri, own_emu, os.urandom(CH), 2 * CH, 3 * CH).status_code in (200, 201)
    r = raw_session(own_emu).post(own_emu.base_url + "/upload/drive/v3/files", params={"uploadType": "resumable"},
                                  headers={"X-Upload-Content-Length": str(CH)}, json={"name": "next.bin"})
    assert r.status_code == 403 and reason(r) == "userRateLimitExceeded"


def test_storage_quota(own_emu: Emulator) -> None:
    svc = build_service(own_emu)
    model_of(own_emu).set_limits(storage_limit_bytes=1000)
    assert svc.about().get(fields="storageQuota(limit)").execute() == {"storageQuota": {"limit": "1000"}}
    media = MediaIoBaseUpload(io.BytesIO(os.urandom(2000)), "application/octet-stream", resumable=False)
    with pytest.raises(HttpError) as exc:
        svc.files().create(body={"name": "big"}, media_body=media).execute()
    body = json.loads(exc.value.content)["error"]
    assert exc.value.status_code == 403 and body["errors"][0]["reason"] == "storageQuotaExceeded"
    assert body["message"] == "The user's Drive storage quota has been exceeded."


# --- sessions: expiry, restart, new process -----------------------------------------------------------------

def test_session_expires_after_7_days(own_emu: Emulator) -> None:
    uri = new_session(own_emu, 2 * CH)
    put(uri, own_emu, os.urandom(CH), 0, 2 * CH)
    own_emu.state.advance_clock(6 * 24 * 3600)
    assert put(uri, own_emu, b"", None, 2 * CH).status_code == 308
    own_emu.state.advance_clock(24 * 3600 + 1)
    r = put(uri, own_emu, b"", None, 2 * CH)
    assert r.status_code == 404 and reason(r) == "notFound"


def test_session_survives_restart(tmp_path: Path) -> None:
    data = os.urandom(3 * CH + 17)
    emu = start(tmp_path / "emu")
    try:
        uri = new_session(emu, len(data))
        assert put(uri, emu, data[:2 * CH], 0, len(data)).headers["Range"] == f"bytes=0-{2 * CH - 1}"
        kept = model_of(emu).create_file("kept.bin", [b"kept"])
    finally:
        emu.stop()
    emu = start(tmp_path / "emu")  # a new port: the session is found by its upload_id
    try:
        uri = emu.base_url + "/upload/drive/v3/files?" + uri.split("?", 1)[1]
        r = put(uri, emu, b"", None, len(data))
        assert r.status_code == 308 and r.headers["Range"] == f"bytes=0-{2 * CH - 1}"
        r = put(uri, emu, data[2 * CH:], 2 * CH, len(data))  # hashes rebuilt from the blob after restart
        assert r.status_code == 200
        assert r.json()["md5Checksum"] == hashlib.md5(data).hexdigest()
        assert r.json()["sha256Checksum"] == hashlib.sha256(data).hexdigest()
        assert model_of(emu).get(kept.id).md5 == hashlib.md5(b"kept").hexdigest()
    finally:
        emu.stop()


_CHILD = textwrap.dedent("""
    import io, json, os, signal, sys
    import google_auth_httplib2
    from google.oauth2.credentials import Credentials
    from googleapiclient import discovery_cache
    from googleapiclient.discovery import build_from_document
    from googleapiclient.http import MediaFileUpload, build_http
    base, ca, token, path = sys.argv[1:5]
    doc = json.loads(discovery_cache.get_static_doc("drive", "v3"))
    doc["rootUrl"], doc["baseUrl"] = base + "/", base + "/drive/v3/"
    h = build_http(); h.ca_certs = ca
    svc = build_from_document(doc, http=google_auth_httplib2.AuthorizedHttp(Credentials(token=token), http=h))
    req = svc.files().create(body={"name": "resumed.bin"}, fields="id,md5Checksum",
                             media_body=MediaFileUpload(path, resumable=True, chunksize=256 * 1024))
    status, done = req.next_chunk()
    print(req.resumable_uri, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # die mid-upload, as a crashed relay would
""")


def test_resume_stored_session_uri_in_new_process(own_emu: Emulator, tmp_path: Path) -> None:
    data = os.urandom(3 * CH + 999)
    path = tmp_path / "src.bin"
    path.write_bytes(data)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    token = own_emu.state.issue_token("google", "user@example.com")
    proc = subprocess.run([sys.executable, str(script), own_emu.base_url, str(own_emu.ca_file), token, str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    uri = proc.stdout.strip()
    assert put(uri, own_emu, b"", None, len(data)).headers["Range"] == f"bytes=0-{CH - 1}"
    svc = build_service(own_emu, token)
    req = svc.files().create(body={"name": "ignored"}, fields="id,md5Checksum,name",
                             media_body=MediaFileUpload(str(path), resumable=True, chunksize=CH))
    req.resumable_uri = uri
    req._in_error_state = True  # api-notes 4.5 (b): query the server first
    resp = None
    while resp is None:
        _, resp = req.next_chunk()
    # the body follows the first process's initiation (its fields and metadata), not this request's
    assert set(resp) == {"id", "md5Checksum"} and resp["md5Checksum"] == hashlib.md5(data).hexdigest()
    assert svc.files().get(fileId=resp["id"]).execute()["name"] == "resumed.bin"


# --- faults in Drive's shape --------------------------------------------------------------------------------

def test_status_fault_uses_code_as_reason(own_emu: Emulator) -> None:
    ctl, svc = control(own_emu), build_service(own_emu)
    plan = {"rules": [{"kind": "status", "route": "drive.files.list", "status": 503, "code": "backendError",
                       "message": "Backend Error", "count": 1},
                      {"kind": "status", "route": "drive.files.get", "status": 403, "code": "rateLimitExceeded",
                       "message": "Rate Limit Exceeded", "count": 1}]}
    assert ctl.put(own_emu.base_url + "/_emulator/faults", json=plan).status_code == 200
    with pytest.raises(HttpError) as exc:
        svc.files().list().execute()
    assert exc.value.status_code == 503 and exc.value.error_details[0]["reason"] == "backendError"
    with pytest.raises(HttpError) as exc:
        svc.files().get(fileId="root").execute()
    assert exc.value.error_details[0] == {"domain": "usageLimits", "reason": "rateLimitExceeded",
                                          "message": "Rate Limit Exceeded"}
    assert svc.files().list().execute()["kind"] == "drive#fileList"  # count=1: only once


def test_reset_mid_chunk_keeps_nothing_and_client_resumes(own_emu: Emulator) -> None:
    # httplib2 retries a reset request once with the already-consumed body slice (api-notes 4.6), which
    # then hangs until the socket timeout: keep that timeout short here.
    ctl, svc = control(own_emu), build_service(own_emu, timeout_s=1.5)
    data = os.urandom(4 * CH)
    plan = {"seed": 3, "rules": [{"kind": "reset", "route": "drive.upload.chunk", "after": 1, "count": 1}]}
    ctl.put(own_emu.base_url + "/_emulator/faults", json=plan)
    req = svc.files().create(body={"name": "cut.bin"}, fields="md5Checksum",
                             media_body=MediaIoBaseUpload(io.BytesIO(data), "application/octet-stream",
                                                          chunksize=CH, resumable=True))
    resp, errors = None, 0
    while resp is None:
        try:
            _, resp = req.next_chunk()
        except (OSError, HttpError, ConnectionError) as exc:  # the dropped connection of the 2nd chunk
            errors += 1
            assert errors < 3, exc
    assert errors == 1 and resp["md5Checksum"] == hashlib.md5(data).hexdigest()


def test_download_corrupt_fault_and_counters(own_emu: Emulator) -> None:
    ctl = control(own_emu)
    data = os.urandom(5000)
    fid = model_of(own_emu).create_file("c.bin", [data]).id
    ctl.put(own_emu.base_url + "/_emulator/faults", json={"rules": [{"kind": "corrupt", "route": "drive.files.media"}]})
    got = raw_session(own_emu).get(own_emu.base_url + f"/drive/v3/files/{fid}", params={"alt": "media"}).content
    assert len(got) == len(data) and got != data
    snap = ctl.get(own_emu.base_url + "/_emulator/counters").json()
    assert snap["faults"]["drive.files.media:corrupt"] == 1 and snap["bytes_out"]["drive.files.media"] == 5000


# --- control routes and the model API -----------------------------------------------------------------------

def test_control_corrupt_keeps_metadata_hashes(own_emu: Emulator) -> None:
    ctl, svc = control(own_emu), build_service(own_emu)
    data = b"0123456789"
    f = model_of(own_emu).create_file("x.bin", [data])
    r = ctl.post(own_emu.base_url + "/_emulator/drive/corrupt", json={"file_id": f.id, "offset": 3})
    assert r.status_code == 200
    assert svc.files().get(fileId=f.id, fields="md5Checksum").execute()["md5Checksum"] == \
        hashlib.md5(data).hexdigest()
    assert svc.files().get_media(fileId=f.id).execute() == b"012\xcc456789"
    r = ctl.post(own_emu.base_url + "/_emulator/drive/corrupt", json={"file_id": "missing-file-id"})
    assert r.status_code == 404 and reason(r) == "notFound"
    r = ctl.put(own_emu.base_url + "/_emulator/drive/limits", json={"daily_upload_bytes": "lots"})
    assert r.status_code == 400


def test_model_api(own_emu: Emulator) -> None:
    from datetime import UTC, datetime
    m = model_of(own_emu)
    a = m.create_folder("a")
    b1 = m.create_folder("b", a.id)
    b2 = m.create_folder("b", a.id)
    when = datetime(2020, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    f = m.create_file("c.txt", iter([b"he", b"llo"]), parent=b2.id, mime="text/plain", modified=when,
                      app_properties={"src": "1"})
    assert f.size == 5 and f.md5 == hashlib.md5(b"hello").hexdigest() and f.modified == "2020-02-03T04:05:06.789Z"
    assert [x.id for x in m.find_by_path("a/b")] == [b1.id, b2.id]
    assert [x.id for x in m.find_by_path("/a/b/c.txt")] == [f.id]
    assert [x.id for x in m.children(b2.id)] == [f.id] and m.get(f.id).app_properties == {"src": "1"}
    m.corrupt(f.id, 0)
    path = m.blob_path(m.get(f.id))
    assert path is not None and path.read_bytes() == bytes([ord("h") ^ 0xFF]) + b"ello"
    assert m.get(f.id).md5 == hashlib.md5(b"hello").hexdigest()
    m.set_limits(daily_upload_bytes=5, storage_limit_bytes=10)
    assert m.limits() == {"daily_upload_bytes": 5, "storage_limit_bytes": 10}


def test_route_names_for_faults_and_counters(own_emu: Emulator) -> None:
    svc, m = build_service(own_emu), model_of(own_emu)
    doc = m.create_native("d", text="x")
    f = svc.files().create(body={"name": "f"}, media_body=MediaIoBaseUpload(
        io.BytesIO(b"abc"), "text/plain", chunksize=CH, resumable=True)).execute()
    svc.files().create(body={"name": "g"}, media_body=MediaIoBaseUpload(io.BytesIO(b"abc"), "text/plain")).execute()
    svc.files().create(body={"name": "h"}).execute()
    svc.files().list().execute()
    svc.files().get(fileId=f["id"]).execute()
    svc.files().get_media(fileId=f["id"]).execute()
    svc.files().update(fileId=f["id"], body={"name": "f2"}).execute()
    svc.files().generateIds(count=1).execute()
    svc.files().export(fileId=doc.id, mimeType="text/plain").execute()
    svc.about().get(fields="user").execute()
    svc.files().delete(fileId=f["id"]).execute()
    names = set(own_emu.state.counters.snapshot()["requests"])
    assert {"drive.files.list", "drive.files.get", "drive.files.media", "drive.files.create", "drive.files.update",
            "drive.files.delete", "drive.files.generateIds", "drive.files.export", "drive.about",
            "drive.upload.initiate", "drive.upload.chunk", "drive.upload.simple"} <= names
