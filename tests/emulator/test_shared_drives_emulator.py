"""Emulator: Google shared drives and SharePoint sites' document libraries, as the real services answer.

Drive (developers.google.com/drive/api/reference/rest/v3/drives, guides/enable-shareddrives): drives.create
is idempotent by requestId (a repeat is 409), a shared drive's items need supportsAllDrives=true (404
without), listings show them only with includeItemsFromAllDrives, they have no owner, and a shared drive
holds at most 400,000 items (403 teamDriveFileLimitExceeded). Graph (site-getbypath, drive-list): a site
found by path lists its libraries as drives of driveType documentLibrary, each addressed as any drive.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from driveferry.emulator.drive import shareddrives
from driveferry.emulator.server import Emulator
from emulator_client import api_model, api_session


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(Path(tempfile.mkdtemp(prefix="shared-")), tls=True) as e:
        yield e


def _reason(r: requests.Response) -> str:
    return str(r.json()["error"]["errors"][0]["reason"])


def test_shared_drives_are_created_once_per_request_id_and_listed(emu: Emulator) -> None:
    s, base = api_session(emu, "google"), emu.base_url + "/drive/v3"
    request_id = uuid.uuid4().hex
    made = s.post(f"{base}/drives", params={"requestId": request_id}, json={"name": "Finance"}, timeout=30)
    assert made.status_code == 200 and made.json()["kind"] == "drive#drive" and made.json()["name"] == "Finance"
    again = s.post(f"{base}/drives", params={"requestId": request_id}, json={"name": "Finance"}, timeout=30)
    assert again.status_code == 409 and _reason(again) == "duplicate"
    assert s.post(f"{base}/drives", json={"name": "x"}, timeout=30).status_code == 400  # requestId is required
    listed = s.get(f"{base}/drives", params={"pageSize": 100}, timeout=30).json()["drives"]
    assert [d["id"] for d in listed if d["name"] == "Finance"] == [made.json()["id"]]
    got = s.get(f"{base}/drives/{made.json()['id']}", timeout=30)
    assert got.status_code == 200 and got.json()["id"] == made.json()["id"]
    missing = s.get(f"{base}/drives/0AAnothing", timeout=30)
    assert missing.status_code == 404 and _reason(missing) == "notFound"
    assert s.get(f"{base}/drives", params={"pageSize": 101}, timeout=30).status_code == 400


def test_shared_drive_items_need_supports_all_drives_and_have_no_owner(emu: Emulator) -> None:
    s, base = api_session(emu, "google"), emu.base_url + "/drive/v3"
    drive = api_model(emu, "drive.")
    shared = drive.create_shared_drive("Projects")
    f = drive.create_file("a.bin", [b"abc"], parent=shared.id)
    assert s.get(f"{base}/files/{f.id}", timeout=30).status_code == 404  # as if it did not exist
    got = s.get(f"{base}/files/{f.id}", params={"supportsAllDrives": "true", "fields": "*"}, timeout=30).json()
    assert got["driveId"] == shared.id and got["ownedByMe"] is False and "owners" not in got
    q = {"q": f"'{shared.id}' in parents", "supportsAllDrives": "true"}
    assert s.get(f"{base}/files", params=q, timeout=30).json()["files"] == []
    everywhere = s.get(f"{base}/files", params={**q, "includeItemsFromAllDrives": "true", "corpora": "drive",
                                                "driveId": shared.id}, timeout=30).json()["files"]
    assert [x["id"] for x in everywhere] == [f.id]


def test_a_full_shared_drive_refuses_new_items(emu: Emulator) -> None:
    s, base = api_session(emu, "google"), emu.base_url + "/drive/v3"
    drive = api_model(emu, "drive.")
    shared = drive.create_shared_drive("Small")
    shareddrives.set_item_limit(emu.state, 2)
    try:
        drive.create_folder("one", shared.id)
        drive.create_file("two.bin", [b"2"], parent=shared.id)
        r = s.post(f"{base}/files", params={"supportsAllDrives": "true"},
                   json={"name": "three", "parents": [shared.id], "mimeType": "application/vnd.google-apps.folder"},
                   timeout=30)
        assert r.status_code == 403 and _reason(r) == "teamDriveFileLimitExceeded"
        assert s.post(f"{base}/files", json={"name": "mine"}, timeout=30).status_code == 200  # My Drive has no such limit
    finally:
        shareddrives.set_item_limit(emu.state, shareddrives.ITEM_LIMIT)


def test_a_site_lists_its_libraries_each_a_drive_of_its_own(emu: Emulator) -> None:
    s, graph = api_session(emu, "microsoft"), api_model(emu, "graph.")
    api = emu.credentials()["graph"]["api_root"]
    site = graph.sites.add_site("contoso.sharepoint.com", "sites/Legal", "Legal")
    docs = graph.sites.add_library(site.site_id, "Documents")
    graph.sites.add_library(site.site_id, "Contracts")
    found = s.get(f"{api}/sites/contoso.sharepoint.com:/sites/Legal", timeout=30)
    assert found.status_code == 200 and found.json()["id"] == site.site_id
    assert s.get(f"{api}/sites/contoso.sharepoint.com:/sites/Nope", timeout=30).status_code == 404
    drives = s.get(f"{api}/sites/{site.site_id}/drives", timeout=30).json()["value"]
    assert [(d["name"], d["driveType"]) for d in drives] == [("Documents", "documentLibrary"),
                                                            ("Contracts", "documentLibrary")]
    assert s.get(f"{api}/sites/{site.site_id}/drive", timeout=30).json()["id"] == docs.drive_id
    # a library is addressed as any drive; its items are its own, not the user's OneDrive's
    lib = f"{api}/drives/{docs.drive_id}"
    up = s.put(f"{lib}/root:/Case/brief.txt:/content", data=b"brief", timeout=30)
    assert up.status_code == 404  # the folder must exist first, as on the user's drive
    assert s.post(f"{lib}/root/children", json={"name": "Case", "folder": {}}, timeout=30).status_code == 201
    up = s.put(f"{lib}/root:/Case/brief.txt:/content", data=b"brief", timeout=30)
    assert up.status_code == 201, up.text
    assert up.json()["parentReference"]["driveId"] == docs.drive_id
    assert up.json()["parentReference"]["driveType"] == "documentLibrary"
    listed = s.get(f"{lib}/root:/Case:/children", timeout=30).json()["value"]
    assert [i["name"] for i in listed] == ["brief.txt"]
    assert s.get(f"{api}/me/drive/root:/Case", timeout=30).status_code == 404
    delta = s.get(f"{lib}/root/delta", timeout=30).json()["value"]
    assert {i["name"] for i in delta} == {"root", "Case", "brief.txt"}
    mine = s.get(f"{api}/me/drive/root/delta", timeout=30).json()["value"]
    assert not {i["id"] for i in mine} & {i["id"] for i in delta}


def test_a_library_rewrites_office_files_it_stores(emu: Emulator) -> None:
    """SharePoint's metadata merge into uploaded Office files (api-notes Part C §21) happens in a library."""
    s, graph = api_session(emu, "microsoft"), api_model(emu, "graph.")
    api = emu.credentials()["graph"]["api_root"]
    site = graph.sites.add_site("contoso.sharepoint.com", "sites/Ops", "Ops")
    lib = graph.sites.add_library(site.site_id, "Documents")
    kind = graph.rules
    graph.rules = replace(kind, sharepoint_rewrite_bytes=512)
    try:
        r = s.put(f"{api}/drives/{lib.drive_id}/root:/plan.docx:/content", data=b"x" * 1000, timeout=30)
        assert r.status_code == 201 and r.json()["size"] == 1000 + 512
    finally:
        graph.rules = kind


def test_a_seed_spec_makes_libraries_with_their_files_and_versions(tmp_path: Path) -> None:
    from driveferry.emulator.seed import SeedSpecError, check_spec, content_bytes, seed_emulator
    spec = {"seed": 4, "onedrive": {"libraries": [{"site": "contoso.sharepoint.com:/sites/HR", "name": "Policies",
                                                   "files": [{"path": "2024/leave.docx", "size": "5K", "versions": 2}]}]}}
    with Emulator(tmp_path / "emu", tls=True) as emu:
        assert seed_emulator(emu, spec) == {"onedrive": 1}
        s, api = api_session(emu, "microsoft"), emu.credentials()["graph"]["api_root"]
        site = s.get(f"{api}/sites/contoso.sharepoint.com:/sites/HR", timeout=30).json()
        [lib] = s.get(f"{api}/sites/{site['id']}/drives", timeout=30).json()["value"]
        assert lib["name"] == "Policies"
        item = s.get(f"{api}/drives/{lib['id']}/root:/2024/leave.docx", timeout=30).json()
        data = requests.get(item["@microsoft.graph.downloadUrl"], verify=str(emu.ca_file), timeout=30).content
        assert data == content_bytes(4, "onedrive", "2024/leave.docx", 5 * 1024)
        versions = s.get(f"{api}/drives/{lib['id']}/items/{item['id']}/versions", timeout=30).json()["value"]
        assert len(versions) == 3
    with pytest.raises(SeedSpecError, match=r"onedrive.libraries\[0\].name: expected a non-empty string"):
        check_spec({"onedrive": {"libraries": [{"site": "contoso.sharepoint.com:/sites/HR"}]}})
