"""Drive emulator metadata API, driven by the official google-api-python-client: list, get, create,
update, delete, generateIds, export, about, and the error shapes of bad input."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError
from test_drive_support import *  # noqa: F403 - fixtures: shared_emu, svc, raw, folder
from test_drive_support import USER, error_reason, model_of, reason

from driveferry.emulator.server import Emulator

FOLDER = "application/vnd.google-apps.folder"


def mkdir(svc: Any, name: str, parent: str) -> str:
    return str(svc.files().create(body={"name": name, "mimeType": FOLDER, "parents": [parent]},
                                  fields="id").execute()["id"])


def names(resp: dict[str, Any]) -> list[str]:
    return [f["name"] for f in resp["files"]]


# --- files.list --------------------------------------------------------------------------------------------

def test_list_children_with_q_and_nested_fields(svc: Any, folder: str) -> None:
    sub = mkdir(svc, "sub", folder)
    svc.files().create(body={"name": "a.txt", "parents": [folder]}).execute()
    resp = svc.files().list(q=f"'{folder}' in parents and trashed = false",
                            fields="nextPageToken, files(id,name,mimeType,parents)").execute()
    assert sorted(names(resp)) == ["a.txt", "sub"]
    assert all(set(f) == {"id", "name", "mimeType", "parents"} and f["parents"] == [folder] for f in resp["files"])
    assert "nextPageToken" not in resp and "kind" not in resp
    assert sub in {f["id"] for f in resp["files"]}


def test_list_default_fields_are_kind_id_name_mimetype(svc: Any, folder: str) -> None:
    svc.files().create(body={"name": "x", "parents": [folder]}).execute()
    resp = svc.files().list(q=f"'{folder}' in parents").execute()
    assert resp["kind"] == "drive#fileList" and resp["incompleteSearch"] is False
    assert set(resp["files"][0]) == {"kind", "id", "name", "mimeType"}


def test_list_star_fields(svc: Any, folder: str) -> None:
    svc.files().create(body={"name": "x", "parents": [folder]}).execute()
    resp = svc.files().list(q=f"'{folder}' in parents", fields="files(*)").execute()
    assert {"createdTime", "modifiedTime", "parents", "trashed", "owners"} <= set(resp["files"][0])
    assert "kind" not in resp


def test_paging_tokens_absent_on_last_page(svc: Any, folder: str) -> None:
    for i in range(5):
        svc.files().create(body={"name": f"f{i}", "parents": [folder]}).execute()
    seen, token, pages = [], None, 0
    while True:
        resp = svc.files().list(q=f"'{folder}' in parents", pageSize=2, pageToken=token, orderBy="name",
                                fields="nextPageToken,files(name)").execute()
        pages += 1
        seen += names(resp)
        token = resp.get("nextPageToken")
        if token is None:
            break
    assert pages == 3 and seen == [f"f{i}" for i in range(5)]


def test_page_size_clamped(raw: requests.Session, shared_emu: Emulator) -> None:
    for size in ("0", "5000"):
        r = raw.get(shared_emu.base_url + "/drive/v3/files", params={"pageSize": size})
        assert r.status_code == 200


def test_bad_page_token_is_400(raw: requests.Session, shared_emu: Emulator) -> None:
    r = raw.get(shared_emu.base_url + "/drive/v3/files", params={"pageToken": "garbage!"})
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["location"] == "pageToken"


def test_order_by_folder_then_modified_desc(svc: Any, folder: str) -> None:
    svc.files().create(body={"name": "b", "parents": [folder], "modifiedTime": "2020-01-01T00:00:00Z"}).execute()
    svc.files().create(body={"name": "a", "parents": [folder], "modifiedTime": "2021-01-01T00:00:00Z"}).execute()
    mkdir(svc, "z", folder)
    resp = svc.files().list(q=f"'{folder}' in parents", orderBy="folder,modifiedTime desc").execute()
    assert names(resp) == ["z", "a", "b"]
    resp = svc.files().list(q=f"'{folder}' in parents", orderBy="name desc").execute()
    assert names(resp) == ["z", "b", "a"]


@pytest.mark.parametrize("q, expected", [
    ("name = 'it\\'s'", ["it's"]),
    ("name = 'back\\\\slash'", ["back\\slash"]),
    ("mimeType = 'application/vnd.google-apps.folder'", ["dir"]),
    ("mimeType != 'application/vnd.google-apps.folder'", ["back\\slash", "it's", "plain.txt"]),
    ("not mimeType = 'application/vnd.google-apps.folder' and (name = 'it\\'s' or name = 'plain.txt')",
     ["it's", "plain.txt"]),
    ("name contains 'pla'", ["plain.txt"]),
    ("properties has { key='color' and value='red' }", ["plain.txt"]),
    ("appProperties has {key='src' and value='od:1'}", ["it's"]),
    ("NAME = 'dir' OR name = 'plain.txt'", ["dir", "plain.txt"]),
])
def test_q_subset(svc: Any, folder: str, q: str, expected: list[str]) -> None:
    svc.files().create(body={"name": "it's", "parents": [folder], "appProperties": {"src": "od:1"}}).execute()
    svc.files().create(body={"name": "back\\slash", "parents": [folder]}).execute()
    svc.files().create(body={"name": "plain.txt", "parents": [folder], "properties": {"color": "red"}}).execute()
    mkdir(svc, "dir", folder)
    resp = svc.files().list(q=f"'{folder}' in parents and ({q})", orderBy="name").execute()
    assert names(resp) == expected


def test_trashed_false_hides_trashed_and_their_children(svc: Any, folder: str) -> None:
    sub = mkdir(svc, "sub", folder)
    inner = svc.files().create(body={"name": "inner", "parents": [sub]}, fields="id").execute()["id"]
    svc.files().update(fileId=sub, body={"trashed": True}).execute()
    assert names(svc.files().list(q=f"'{folder}' in parents and trashed = false").execute()) == []
    got = svc.files().get(fileId=inner, fields="trashed,explicitlyTrashed").execute()
    assert got == {"trashed": True, "explicitlyTrashed": False}
    # without q, everything is listed, trashed items included [DISC]
    assert "sub" in names(svc.files().list(q=f"'{folder}' in parents").execute())


@pytest.mark.parametrize("q", ["name = ", "foo = 'x'", "name = 'unterminated", "trashed = 'yes'", "(name = 'a'",
                               "name = 'a' and", "'x' in nothing"])
def test_bad_q_is_400_invalid_q(svc: Any, q: str) -> None:
    with pytest.raises(HttpError) as exc:
        svc.files().list(q=q).execute()
    assert exc.value.status_code == 400
    item = exc.value.error_details[0]
    assert item["reason"] == "invalid" and item["location"] == "q" and item["locationType"] == "parameter"


@pytest.mark.parametrize("fields", ["id", "files(nope)", "files(id", "nextPageToken,,"])
def test_invalid_list_fields_is_400(svc: Any, fields: str) -> None:
    with pytest.raises(HttpError) as exc:
        svc.files().list(fields=fields).execute()
    assert exc.value.status_code == 400


def test_long_q_goes_through_method_override(svc: Any, folder: str) -> None:
    svc.files().create(body={"name": "needle", "parents": [folder]}).execute()
    q = f"'{folder}' in parents and (" + " or ".join(f"name = 'n{i:04d}'" for i in range(150)) + " or name = 'needle')"
    assert names(svc.files().list(q=q).execute()) == ["needle"]


# --- get / create / update / delete -------------------------------------------------------------------------

def test_root_alias_and_ids(svc: Any, shared_emu: Emulator) -> None:
    root = svc.files().get(fileId="root", fields="id,name,mimeType").execute()
    assert root["id"] == model_of(shared_emu).root_id and root["mimeType"] == FOLDER
    f = svc.files().create(body={"name": "r"}, fields="id,parents").execute()
    assert f["parents"] == [root["id"]]
    assert re.fullmatch(r"[A-Za-z0-9_-]{33}", f["id"])


def test_duplicate_names_allowed(svc: Any, folder: str) -> None:
    a = svc.files().create(body={"name": "same", "parents": [folder]}).execute()
    b = svc.files().create(body={"name": "same", "parents": [folder]}).execute()
    assert a["id"] != b["id"]
    assert names(svc.files().list(q=f"'{folder}' in parents and name = 'same'").execute()) == ["same", "same"]


def test_get_default_fields_and_times(svc: Any, folder: str) -> None:
    f = svc.files().create(body={"name": "t", "parents": [folder]}).execute()
    assert set(f) == {"kind", "id", "name", "mimeType"}
    full = svc.files().get(fileId=f["id"], fields="createdTime,modifiedTime").execute()
    for v in full.values():
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", v)


def test_get_unknown_id_is_404_not_found(svc: Any) -> None:
    with pytest.raises(HttpError) as exc:
        svc.files().get(fileId="nope123456789").execute()
    assert exc.value.status_code == 404
    assert exc.value.reason == "File not found: nope123456789."
    assert exc.value.error_details[0]["reason"] == "notFound"


def test_update_moves_with_add_remove_parents(svc: Any, folder: str) -> None:
    a, b = mkdir(svc, "a", folder), mkdir(svc, "b", folder)
    f = svc.files().create(body={"name": "f", "parents": [a]}, fields="id").execute()["id"]
    moved = svc.files().update(fileId=f, addParents=b, removeParents=a, fields="parents").execute()
    assert moved["parents"] == [b]
    with pytest.raises(HttpError) as exc:  # a second parent is refused
        svc.files().update(fileId=f, addParents=a).execute()
    assert exc.value.status_code == 403


def test_update_properties_null_deletes_and_modified_time(svc: Any, folder: str) -> None:
    f = svc.files().create(body={"name": "p", "parents": [folder], "appProperties": {"a": "1", "b": "2"},
                                 "properties": {"pub": "x"}}, fields="id").execute()["id"]
    got = svc.files().update(fileId=f, body={"appProperties": {"a": None, "c": "3"}, "properties": {"pub": None},
                                             "modifiedTime": "2019-05-01T12:34:56.789Z", "name": "p2"},
                             fields="name,appProperties,properties,modifiedTime").execute()
    assert got == {"name": "p2", "appProperties": {"b": "2", "c": "3"}, "modifiedTime": "2019-05-01T12:34:56.789Z"}


@pytest.mark.parametrize("body", [
    {"appProperties": {f"k{i}": "v" for i in range(31)}},
    {"properties": {f"k{i}": "v" for i in range(31)}},
    {"appProperties": {"k": "é" * 62}},  # 1 + 124 bytes in UTF-8
])
def test_property_limits_are_400(svc: Any, folder: str, body: dict[str, Any]) -> None:
    with pytest.raises(HttpError) as exc:
        svc.files().create(body={"name": "lim", "parents": [folder], **body}).execute()
    assert exc.value.status_code == 400 and error_reason(exc.value) == "badRequest"


def test_property_limit_boundary_accepted(svc: Any, folder: str) -> None:
    props = {f"k{i:02d}": "v" for i in range(29)} | {"key": "x" * 121}  # 3 + 121 = 124 bytes
    f = svc.files().create(body={"name": "ok", "parents": [folder], "appProperties": props},
                           fields="appProperties").execute()
    assert f["appProperties"] == props


def test_delete_is_recursive_and_204(svc: Any, folder: str) -> None:
    sub = mkdir(svc, "sub", folder)
    leaf = svc.files().create(body={"name": "leaf", "parents": [sub]}, fields="id").execute()["id"]
    assert svc.files().delete(fileId=sub).execute() == ""
    for fid in (sub, leaf):
        with pytest.raises(HttpError) as exc:
            svc.files().get(fileId=fid).execute()
        assert exc.value.status_code == 404


def test_generate_ids_and_create_with_id(svc: Any, folder: str) -> None:
    resp = svc.files().generateIds(count=3, space="drive").execute()
    assert resp["kind"] == "drive#generatedIds" and len(resp["ids"]) == 3
    fid = resp["ids"][0]
    assert svc.files().create(body={"id": fid, "name": "g", "parents": [folder]}).execute()["id"] == fid
    with pytest.raises(HttpError) as exc:
        svc.files().create(body={"id": fid, "name": "g", "parents": [folder]}).execute()
    assert exc.value.status_code == 409
    with pytest.raises(HttpError):
        svc.files().generateIds(count=1001).execute()


def test_shortcut_details(svc: Any, folder: str) -> None:
    target = svc.files().create(body={"name": "t", "parents": [folder]}, fields="id").execute()["id"]
    sc = svc.files().create(body={"name": "sc", "parents": [folder], "mimeType": "application/vnd.google-apps.shortcut",
                                  "shortcutDetails": {"targetId": target}},
                            fields="shortcutDetails,md5Checksum").execute()
    assert sc == {"shortcutDetails": {"targetId": target, "targetMimeType": "application/octet-stream"}}


# --- native docs, export ------------------------------------------------------------------------------------

def test_native_doc_not_downloadable_but_exportable(svc: Any, shared_emu: Emulator, folder: str) -> None:
    doc = model_of(shared_emu).create_native("Notes", folder, text="hello doc")
    meta = svc.files().get(fileId=doc.id, fields="md5Checksum,sha1Checksum,sha256Checksum,mimeType").execute()
    assert meta == {"mimeType": "application/vnd.google-apps.document"}
    with pytest.raises(HttpError) as exc:
        svc.files().get_media(fileId=doc.id).execute()
    assert exc.value.status_code == 403 and error_reason(exc.value) == "fileNotDownloadable"
    assert svc.files().export(fileId=doc.id, mimeType="text/plain").execute() == b"hello doc"
    with pytest.raises(HttpError) as exc:
        svc.files().export(fileId=doc.id, mimeType="application/zip").execute()
    assert exc.value.status_code == 400


# --- shared drives ------------------------------------------------------------------------------------------

def test_shared_drive_items_need_supports_all_drives(svc: Any, shared_emu: Emulator) -> None:
    m = model_of(shared_emu)
    d = m.create_shared_drive("Team")
    f = m.create_file("t.bin", [b"abc"], parent=d.id)
    with pytest.raises(HttpError):
        svc.files().get(fileId=f.id).execute()
    got = svc.files().get(fileId=f.id, supportsAllDrives=True, fields="driveId").execute()
    assert got == {"driveId": d.id}
    resp = svc.files().list(corpora="drive", driveId=d.id, includeItemsFromAllDrives=True, supportsAllDrives=True,
                            q="trashed = false", fields="files(name,driveId)").execute()
    assert resp["files"] == [{"name": "t.bin", "driveId": d.id}]
    assert "t.bin" not in names(svc.files().list(q="name = 't.bin'").execute())


# --- about --------------------------------------------------------------------------------------------------

def test_about_requires_fields(svc: Any) -> None:
    with pytest.raises(HttpError) as exc:
        svc.about().get().execute()
    assert exc.value.status_code == 400
    about = svc.about().get(fields="user(emailAddress),storageQuota").execute()
    assert about["user"] == {"emailAddress": USER}
    assert int(about["storageQuota"]["usage"]) >= 0 and "limit" not in about["storageQuota"]


# --- error shapes -------------------------------------------------------------------------------------------

def test_malformed_json_is_400_parse_error(raw: requests.Session, shared_emu: Emulator) -> None:
    r = raw.post(shared_emu.base_url + "/drive/v3/files", data=b"{not json",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and reason(r) == "parseError"
    assert set(r.json()["error"]) == {"code", "message", "errors"}


def test_missing_token_is_401_auth_error(shared_emu: Emulator) -> None:
    r = requests.get(shared_emu.base_url + "/drive/v3/files", verify=str(shared_emu.ca_file))
    assert r.status_code == 401 and reason(r) == "authError"
    assert r.json()["error"]["errors"][0]["location"] == "Authorization"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_endpoint_is_json_404(raw: requests.Session, shared_emu: Emulator) -> None:
    r = raw.get(shared_emu.base_url + "/drive/v3/nothing")
    assert r.status_code == 404 and reason(r) == "notFound"


@pytest.mark.parametrize("params", [{"fields": "bogus"}, {"supportsAllDrives": "true", "fields": "id("}])
def test_invalid_get_fields_is_400(raw: requests.Session, shared_emu: Emulator, params: dict[str, str]) -> None:
    r = raw.get(shared_emu.base_url + "/drive/v3/files/root", params=params)
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["location"] == "fields"


def test_copy_keeps_bytes_and_hashes(svc: Any, shared_emu: Emulator, folder: str) -> None:
    src = model_of(shared_emu).create_file("src.bin", [b"copy me"], parent=folder, app_properties={"a": "1"})
    dest = mkdir(svc, "dest", folder)
    got = svc.files().copy(fileId=src.id, body={"parents": [dest], "appProperties": {"b": "2"}},
                           fields="id,name,parents,md5Checksum,appProperties").execute()
    assert got["id"] != src.id and got["name"] == "src.bin" and got["parents"] == [dest]
    assert got["md5Checksum"] == src.md5 and got["appProperties"] == {"a": "1", "b": "2"}
    assert svc.files().get_media(fileId=got["id"]).execute() == b"copy me"
    with pytest.raises(HttpError) as exc:
        svc.files().copy(fileId=folder, body={}).execute()
    assert exc.value.status_code == 403


def test_native_size_is_settable(svc: Any, shared_emu: Emulator, folder: str) -> None:
    m = model_of(shared_emu)
    doc = m.create_native("Sheet", folder, kind="spreadsheet", text="a,b\n1,2\n")
    assert svc.files().get(fileId=doc.id, fields="size").execute() == {"size": "8"}
    m.set_native_size(False)
    try:
        assert svc.files().get(fileId=doc.id, fields="size,md5Checksum").execute() == {}
    finally:
        m.set_native_size(True)
    assert svc.files().export(fileId=doc.id, mimeType="text/csv").execute() == b"a,b\n1,2\n"


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("POST", "/drive/v3/files", {"json": {"name": 123}}, 400),
    ("POST", "/drive/v3/files", {"json": {"parents": "x"}}, 400),
    ("POST", "/drive/v3/files", {"json": {"properties": {"a": {"b": 1}}}}, 400),
    ("POST", "/drive/v3/files", {"json": {"modifiedTime": "yesterday"}}, 400),
    ("POST", "/drive/v3/files", {"json": {"id": "bad id!"}}, 400),
    ("POST", "/drive/v3/files", {"json": {"mimeType": "application/vnd.google-apps.shortcut", "shortcutDetails": "x"}},
     400),
    ("POST", "/drive/v3/files", {"json": ["not", "an", "object"]}, 400),
    ("PATCH", "/drive/v3/files/root", {"json": {"parents": ["x"]}}, 403),
    ("PATCH", "/drive/v3/files/root", {"data": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}, 400),
    ("GET", "/drive/v3/files", {"params": {"pageSize": "abc"}}, 400),
    ("GET", "/drive/v3/files", {"params": {"orderBy": "name sideways"}}, 400),
    ("GET", "/drive/v3/files", {"params": {"corpora": "drive"}}, 400),
    ("GET", "/drive/v3/files", {"params": {"q": "modifiedTime > 'notadate'"}}, 400),
    ("GET", "/drive/v3/files/generateIds", {"params": {"count": "x"}}, 400),
    ("GET", "/drive/v3/files/root", {"params": {"alt": "media"}}, 403),
    ("GET", "/drive/v3/files/root/export", {}, 400),
    ("DELETE", "/drive/v3/files/root", {}, 403),
    ("POST", "/upload/drive/v3/files", {"params": {"uploadType": "resumable"},
                                        "headers": {"X-Upload-Content-Length": "abc"}, "json": {}}, 400),
    ("POST", "/upload/drive/v3/files", {"params": {"uploadType": "multipart"}, "data": b"x",
                                        "headers": {"Content-Type": "text/plain"}}, 400),
    ("PATCH", "/upload/drive/v3/files/missing-file-id", {"params": {"uploadType": "resumable"}, "json": {}}, 404),
    ("POST", "/_emulator/drive/corrupt", {"data": b"nope"}, 400),
])
def test_bad_input_gets_google_error_never_500(raw: requests.Session, shared_emu: Emulator, method: str, path: str,
                                               kwargs: dict[str, Any], status: int) -> None:
    r = raw.request(method, shared_emu.base_url + path, **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["errors"][0]["reason"] and err["errors"][0]["message"] == err["message"]
