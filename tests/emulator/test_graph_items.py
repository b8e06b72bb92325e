"""Graph emulator: drive, addressing, children paging, $select, folders, PATCH/DELETE, names, packages,
item shapes and error shapes, all through plain `requests` as the OneDrive provider sends them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from driveferry.emulator import identity
from driveferry.emulator.graph.routes import GraphApi
from driveferry.emulator.server import Emulator


class Graph:
    """A thin Graph client: `drive` is /v1.0/drives/{id}; relative paths are joined to it."""

    def __init__(self, emu: Emulator, api: GraphApi) -> None:
        creds = emu.credentials()
        self.emu, self.api = emu, api
        self.s = requests.Session()
        self.s.verify, self.s.trust_env = str(emu.ca_file), False
        self.s.headers["Authorization"] = "Bearer " + creds["microsoft"]["access_token"]
        self.root_url = creds["graph"]["api_root"]
        self.drive_id = creds["graph"]["drive_id"]
        self.drive = f"{self.root_url}/drives/{self.drive_id}"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.drive + path

    def req(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.s.request(method, self.url(path), **kw)

    def mkdir(self, name: str | None = None, parent: str = "root") -> dict[str, Any]:
        r = self.req("POST", f"/items/{parent}/children", json={"name": name or uuid.uuid4().hex[:10], "folder": {}})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def put(self, parent: str, name: str, data: bytes) -> dict[str, Any]:
        r = self.req("PUT", f"/items/{parent}:/{quote(name)}:/content", data=data)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graph]:
    api = GraphApi()
    with Emulator(tmp_path_factory.mktemp("graph"), tls=True, modules=[*identity.modules(), api]) as emu:
        yield Graph(emu, api)


def assert_graph_error(r: requests.Response, status: int, code: str, inner: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    assert {"date", "request-id", "client-request-id"} <= set(err["innerError"])
    if inner:
        assert err["innerError"]["code"] == inner


def test_me_drive_and_drive_by_id_with_quota(g: Graph) -> None:
    me = g.s.get(g.root_url + "/me/drive").json()
    by_id = g.req("GET", "").json()
    assert me["id"] == by_id["id"] == g.drive_id and me["driveType"] == "business"
    assert set(me["quota"]) >= {"total", "used", "remaining", "deleted", "state"}
    assert me["quota"]["state"] == "normal"


def test_unknown_drive_is_404_item_not_found(g: Graph) -> None:
    assert_graph_error(g.s.get(g.root_url + "/drives/b!nope/root"), 404, "itemNotFound")


def test_root_alias_and_item_by_id_on_both_drive_forms(g: Graph) -> None:
    root = g.req("GET", "/root").json()
    assert "root" in root and root["folder"]["childCount"] >= 0
    assert g.req("GET", "/items/root").json()["id"] == root["id"]
    folder = g.mkdir()
    assert g.s.get(f"{g.root_url}/me/drive/items/{folder['id']}").json()["id"] == folder["id"]
    assert g.req("GET", f"/items/{folder['id']}").json()["name"] == folder["name"]


def test_path_addressing_percent_decoded_trailing_colon_optional(g: Graph) -> None:
    top = g.mkdir()
    sub = g.mkdir("sub folder é", top["id"])
    f = g.put(sub["id"], "a b.txt", b"x")
    path = f"/root:/{top['name']}/{quote('sub folder é')}/{quote('a b.txt')}"
    assert g.req("GET", path + ":").json()["id"] == f["id"]
    assert g.req("GET", path).json()["id"] == f["id"]
    assert g.req("GET", f"/items/{sub['id']}:/{quote('a b.txt')}:").json()["id"] == f["id"]
    kids = g.req("GET", f"/root:/{top['name']}:/children").json()["value"]
    assert [k["id"] for k in kids] == [sub["id"]]
    assert g.req("GET", path + ":/content").content == b"x"
    assert_graph_error(g.req("GET", f"/root:/{top['name']}/missing:"), 404, "itemNotFound")


def test_children_paging_default_200_clamp_1000_and_absolute_next_links(g: Graph) -> None:
    folder = g.mkdir()
    for i in range(205):
        g.api.model.create_folder(folder["id"], f"d{i:03}")
    first = g.req("GET", f"/items/{folder['id']}/children").json()
    assert len(first["value"]) == 200 and first["@odata.nextLink"].startswith(g.emu.base_url + "/")
    second = g.s.get(first["@odata.nextLink"]).json()
    assert len(second["value"]) == 5 and "@odata.nextLink" not in second
    names = [i["name"] for i in first["value"] + second["value"]]
    assert names == sorted(names) and len(set(names)) == 205
    assert len(g.req("GET", f"/items/{folder['id']}/children", params={"$top": 5000}).json()["value"]) == 205
    pages, url = 0, g.url(f"/items/{folder['id']}/children?$top=100&$select=id,name")
    while url:
        page = g.s.get(url).json()
        assert all(set(i) == {"id", "name"} for i in page["value"])  # $select survives in nextLink
        pages, url = pages + 1, page.get("@odata.nextLink")
    assert pages == 3
    assert_graph_error(g.req("GET", f"/items/{folder['id']}/children", params={"$top": 0}), 400, "invalidRequest")


def test_select_limits_fields_and_accepts_download_url_spellings(g: Graph) -> None:
    f = g.put(g.mkdir()["id"], "s.bin", b"abc")
    sel = g.req("GET", f"/items/{f['id']}", params={"$select": "id,size"}).json()
    assert sel == {"id": f["id"], "size": 3}
    for spelling in ("@microsoft.graph.downloadUrl", "content.downloadUrl"):
        got = g.req("GET", f"/items/{f['id']}", params={"select": f"id,{spelling}"}).json()
        assert got["@microsoft.graph.downloadUrl"].startswith(g.emu.base_url + "/_graphdl/")


def test_create_folder_201_conflict_fail_409_and_rename(g: Graph) -> None:
    parent = g.mkdir()
    body = {"name": "Dup", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}
    assert g.req("POST", f"/items/{parent['id']}/children", json=body).status_code == 201
    assert_graph_error(g.req("POST", f"/items/{parent['id']}/children", json=body), 409, "nameAlreadyExists")
    assert_graph_error(g.req("POST", f"/items/{parent['id']}/children", json={**body, "name": "dup"}),
                       409, "nameAlreadyExists")  # names are case-insensitive
    r = g.req("POST", f"/items/{parent['id']}/children", json={**body, "@microsoft.graph.conflictBehavior": "rename"})
    assert r.status_code == 201 and r.json()["name"] == "Dup 1"


@pytest.mark.parametrize("name", ["a/b", "a\\b", "a*b", "a<b", "a>b", "a?b", "a:b", "a|b", "a#b", "a%b",
                                  "~lead", "trail.", ""])
def test_business_illegal_names_are_400_invalid_request(g: Graph, name: str) -> None:
    r = g.req("POST", "/items/root/children", json={"name": name, "folder": {}})
    assert_graph_error(r, 400, "invalidRequest")


def test_patch_renames_moves_and_sets_file_system_info(g: Graph) -> None:
    a, b = g.mkdir(), g.mkdir()
    f = g.put(a["id"], "old.txt", b"data")
    when = "2020-01-02T03:04:05Z"
    r = g.req("PATCH", f"/items/{f['id']}", json={"name": "new.txt", "parentReference": {"id": b["id"]},
                                                  "fileSystemInfo": {"lastModifiedDateTime": when}})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["name"] == "new.txt" and moved["parentReference"]["id"] == b["id"]
    assert moved["fileSystemInfo"]["lastModifiedDateTime"] == when and moved["eTag"] != f["eTag"]
    assert moved["parentReference"]["path"].endswith(f"root:/{b['name']}")
    assert g.req("GET", f"/items/{a['id']}/children").json()["value"] == []
    back = g.req("PATCH", f"/items/{f['id']}", json={"parentReference": {"path": f"/drives/{g.drive_id}/root:/{a['name']}"}})
    assert back.status_code == 200 and back.json()["parentReference"]["id"] == a["id"]


def test_patch_conflict_409_and_move_into_itself_400(g: Graph) -> None:
    p = g.mkdir()
    x, y = g.mkdir("x", p["id"]), g.mkdir("y", p["id"])
    assert_graph_error(g.req("PATCH", f"/items/{x['id']}", json={"name": "Y"}), 409, "nameAlreadyExists")
    inner = g.mkdir("inner", x["id"])
    r = g.req("PATCH", f"/items/{x['id']}", json={"parentReference": {"id": inner["id"]}})
    assert_graph_error(r, 400, "invalidRequest")
    assert_graph_error(g.req("PATCH", f"/items/{y['id']}", json={"name": "bad|name"}), 400, "invalidRequest")


def test_if_match_mismatch_is_412(g: Graph) -> None:
    d = g.mkdir()
    r = g.req("PATCH", f"/items/{d['id']}", json={"name": "z" + d["name"]}, headers={"If-Match": '"{X},9"'})
    assert_graph_error(r, 412, "resourceModified", "entityTagDoesNotMatch")


def test_delete_204_then_item_and_children_are_gone(g: Graph) -> None:
    d = g.mkdir()
    f = g.put(d["id"], "f.txt", b"1")
    assert g.req("DELETE", f"/items/{d['id']}").status_code == 204
    assert_graph_error(g.req("GET", f"/items/{d['id']}"), 404, "itemNotFound")
    assert_graph_error(g.req("GET", f"/items/{f['id']}"), 404, "itemNotFound")
    assert_graph_error(g.req("DELETE", f"/items/{d['id']}"), 404, "itemNotFound")


def test_onenote_package_has_package_facet_only_and_cannot_be_downloaded(g: Graph) -> None:
    folder = g.mkdir()
    nb = g.api.model.create_package(folder["id"], "Notebook")
    item = g.req("GET", f"/items/{nb.id}").json()
    assert item["package"] == {"type": "oneNote"} and "file" not in item and "folder" not in item
    assert "@microsoft.graph.downloadUrl" not in item
    assert_graph_error(g.req("GET", f"/items/{nb.id}/content", allow_redirects=False), 406, "notSupported")


ID_RE = re.compile(r"01[A-Z2-7]{32}\Z")
ETAG_RE = re.compile(r'"\{[0-9A-F-]{36}\},\d+"\Z')
CTAG_RE = re.compile(r'"c:\{[0-9A-F-]{36}\},\d+"\Z')


def test_drive_item_field_shapes(g: Graph) -> None:
    d = g.mkdir()
    f = g.put(d["id"], "shape.txt", b"hello")
    empty = g.put(d["id"], "empty.txt", b"")
    assert ID_RE.match(f["id"]) and ID_RE.match(d["id"])
    assert ETAG_RE.match(f["eTag"]) and ETAG_RE.match(d["eTag"]) and CTAG_RE.match(f["cTag"])
    assert "cTag" not in d and "@microsoft.graph.downloadUrl" not in d  # Business: no cTag on folders
    assert isinstance(f["size"], int) and f["size"] == 5
    assert f["file"]["hashes"] == {"quickXorHash": "aCgDG9jwBgAAAAAABQAAAAAAAAA="}  # quickXorHash only
    assert f["file"]["mimeType"] == "text/plain" and "hashes" not in empty["file"]
    ref = f["parentReference"]
    assert ref == {"driveId": g.drive_id, "driveType": "business", "id": d["id"],
                   "path": f"/drives/{g.drive_id}/root:/{d['name']}"}
    assert set(f["fileSystemInfo"]) >= {"createdDateTime", "lastModifiedDateTime"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", f["lastModifiedDateTime"])
    folder = g.req("GET", f"/items/{d['id']}").json()
    assert folder["folder"]["childCount"] == 2 and folder["size"] == 5


def test_missing_or_bad_token_is_401_invalid_authentication_token(g: Graph) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = requests.get(g.url("/root"), headers=headers, verify=str(g.emu.ca_file))
        assert_graph_error(r, 401, "InvalidAuthenticationToken")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_bad_requests_get_graph_status_and_shape_not_500(g: Graph) -> None:
    r = g.req("POST", "/items/root/children", data=b"{not json", headers={"Content-Type": "application/json"})
    assert_graph_error(r, 400, "invalidRequest")
    assert_graph_error(g.req("POST", "/items/root/children", json=["list"]), 400, "invalidRequest")
    assert_graph_error(g.req("GET", "/items/01NOPE"), 404, "itemNotFound")
    assert_graph_error(g.req("GET", "/items/01NOPE/children"), 404, "itemNotFound")
    assert_graph_error(g.req("PATCH", "/items/root", json={"fileSystemInfo": {"lastModifiedDateTime": "x"}}),
                       400, "invalidRequest")
    assert_graph_error(g.req("GET", "/items/root/children", params={"$skiptoken": "!!"}), 400, "invalidRequest")
    unknown = g.s.get(g.root_url + "/me/nothing-here")
    assert unknown.status_code in (400, 404) and "innerError" in unknown.json()["error"]


def test_client_request_id_is_echoed_in_errors(g: Graph) -> None:
    r = g.req("GET", "/items/01NOPE", headers={"client-request-id": "abc-123"})
    assert r.json()["error"]["innerError"]["client-request-id"] == "abc-123"


@pytest.mark.parametrize(("status", "retry_after"), [(429, "2.5"), (503, "7")])
def test_throttling_fault_uses_graph_throttle_body_and_retry_after(g: Graph, status: int, retry_after: str) -> None:
    ctl = g.emu.base_url + "/_emulator/faults"
    plan: dict[str, Any] = {"rules": [{"kind": "status", "route": "graph.item", "status": status,
                                       "retry_after": retry_after, "count": 1}]}
    assert g.s.put(ctl, json=plan).status_code == 200
    try:
        r = g.req("GET", "/root")
        assert_graph_error(r, status, "activityLimitReached", "throttledRequest")
        assert r.headers["Retry-After"] == retry_after
        if status == 429:
            assert r.headers["RateLimit-Remaining"] == "0"
        assert g.req("GET", "/root").status_code == 200
    finally:
        g.s.put(ctl, json={"rules": []})


def test_me_with_app_only_token_is_400(g: Graph) -> None:
    import msal
    creds = g.emu.credentials()["microsoft"]
    http = requests.Session()
    http.verify, http.trust_env = str(g.emu.ca_file), False
    app = msal.ConfidentialClientApplication(creds["client_id"], client_credential=creds["client_secret"],
                                             authority=creds["authority"], instance_discovery=False,
                                             http_client=http)
    token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    assert http.get(g.url("/root"), headers=h).status_code == 200
    assert_graph_error(http.get(g.root_url + "/me/drive/root", headers=h), 400, "BadRequest")


def test_model_api_by_path_children_and_create_file(g: Graph) -> None:
    m = g.api.model
    folder, created = m.create_folder(m.root_id, "model-" + uuid.uuid4().hex[:6])
    assert created and m.create_folder(m.root_id, folder.name, conflict="replace") == (folder, False)
    import datetime as dt
    when = dt.datetime(2021, 3, 11, 18, 49, 47, tzinfo=dt.UTC)
    f = m.create_file(folder.id, "m.txt", iter([b"hel", b"lo"]), modified=when)
    assert m.by_path(f"/{folder.name}/m.txt") == f and [c.id for c in m.children(folder.id)] == [f.id]
    got = g.req("GET", f"/items/{f.id}").json()
    assert got["fileSystemInfo"]["lastModifiedDateTime"] == "2021-03-11T18:49:47Z"
    assert got["file"]["hashes"]["quickXorHash"] == "aCgDG9jwBgAAAAAABQAAAAAAAAA="


MALFORMED: list[tuple[str, str, Any]] = [
    ("POST", "/items/root/children", {"name": "x", "folder": {}, "fileSystemInfo": "createdDateTime"}),
    ("POST", "/items/root/children", {"name": 5, "folder": {}}),
    ("POST", "/items/root/children", {"name": "f"}),  # no folder facet
    ("POST", "/items/root/children", {"name": "y", "folder": {}, "@microsoft.graph.conflictBehavior": 3}),
    ("PATCH", "/items/root", {"name": "renamed-root"}),
    ("PATCH", "/items/01NOPE", {"name": "n"}),
    ("PATCH", "/root:/nope:", {"name": "n"}),
    ("PATCH", "/items/root", {"parentReference": "up"}),
    ("PATCH", "/items/root", {"fileSystemInfo": ["x"]}),
    ("DELETE", "/items/root", None),
    ("POST", "/root:/x.bin:/createUploadSession", {"item": "x"}),
    ("POST", "/root:/x.bin:/createUploadSession", {"item": {"fileSize": "big"}}),
    ("POST", "/root:/x.bin:/createUploadSession", {"item": {"fileSize": -1}}),
    ("POST", "/root:/x.bin:/createUploadSession", {"item": {"name": "other.bin"}}),
    ("POST", "/root:/x.bin:/createUploadSession", {"item": {"fileSystemInfo": {"createdDateTime": 7}}}),
    ("POST", "/items/root/createUploadSession", {}),  # root is not a file
    ("GET", "/root/delta?$top=x", None),
    ("GET", "/items/root/children?$top=-4", None),
    ("GET", "/items/root/children?$skiptoken=W10", None),
    ("PUT", "/items/root/content", b"data"),
    ("PUT", "/root:/a%7Cb.txt:/content", b"data"),
    ("PUT", "/root:/missing/x.txt:/content", b"data"),
]


@pytest.mark.parametrize(("method", "path", "body"), MALFORMED)
def test_malformed_requests_get_graph_4xx_never_500(g: Graph, method: str, path: str, body: Any) -> None:
    kw: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}
    r = g.req(method, path, **kw)
    assert 400 <= r.status_code < 500, r.text
    err = r.json()["error"]
    assert err["code"] and err["message"] and "request-id" in err["innerError"]


def test_download_url_answers_head(g: Graph) -> None:
    f = g.put(g.mkdir()["id"], "h.bin", b"12345")
    r = requests.head(f["@microsoft.graph.downloadUrl"], verify=str(g.emu.ca_file))
    assert r.status_code == 200 and r.headers["Content-Length"] == "5"


def test_children_paging_is_stable_with_non_ascii_and_mixed_case_names(g: Graph) -> None:
    folder = g.mkdir()
    names = ["Éclair", "éclair2", "apple", "Banana", "ÄPFEL", "zebra", "Ärger", "émile", "Zoo"]
    for n in names:
        g.api.model.create_folder(folder["id"], n)
    seen, url = [], g.url(f"/items/{folder['id']}/children?$top=2")
    while url:
        page = g.s.get(url).json()
        seen += [i["name"] for i in page["value"]]
        url = page.get("@odata.nextLink")
    assert sorted(seen) == sorted(names) and len(seen) == len(names)


def test_if_none_match_gives_304_until_the_item_changes(g: Graph) -> None:
    f = g.put(g.mkdir()["id"], "etag.txt", b"v1")
    assert g.req("GET", f"/items/{f['id']}", headers={"If-None-Match": f["eTag"]}).status_code == 304
    r = g.req("GET", f"/items/{f['id']}/content", headers={"If-None-Match": f["cTag"]}, allow_redirects=False)
    assert r.status_code == 304
    g.put(f["parentReference"]["id"], "etag.txt", b"v2")
    assert g.req("GET", f"/items/{f['id']}", headers={"If-None-Match": f["eTag"]}).status_code == 200
