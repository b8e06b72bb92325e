"""Drive emulator `changes` (getStartPageToken, list), driven by google-api-python-client: what each kind of
change reports, one entry per file at its latest change, paging to newStartPageToken, filters, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload
from test_drive_support import *  # noqa: F403 - fixtures: shared_emu, svc, raw, folder, own_emu
from test_drive_support import build_service, error_reason, model_of, start

from driveferry.emulator.server import Emulator

FIELDS = "nextPageToken,newStartPageToken,changes(fileId,removed,time,changeType,file(id,name,trashed,parents,md5Checksum))"


def start_token(svc: Any) -> str:
    return str(svc.changes().getStartPageToken().execute()["startPageToken"])


def all_changes(svc: Any, token: str, **kw: Any) -> tuple[list[dict[str, Any]], str, int]:
    """Every change since `token`, following nextPageToken; (changes, newStartPageToken, pages)."""
    out: list[dict[str, Any]] = []
    pages = 0
    while True:
        page = svc.changes().list(pageToken=token, fields=FIELDS, **kw).execute()
        pages += 1
        out.extend(page["changes"])
        if "nextPageToken" in page:
            assert "newStartPageToken" not in page
            token = page["nextPageToken"]
            continue
        return out, str(page["newStartPageToken"]), pages


@pytest.fixture()
def own_svc(own_emu: Emulator) -> Any:
    return build_service(own_emu)


def test_each_kind_of_change_is_listed_with_the_current_state(own_emu: Emulator, own_svc: Any) -> None:
    m = model_of(own_emu)
    keep = m.create_file("keep.bin", [b"old"])
    gone = m.create_file("gone.bin", [b"x"])
    binned = m.create_file("binned.bin", [b"y"])
    untouched = m.create_file("untouched.bin", [b"z"])
    token = start_token(own_svc)
    assert own_svc.changes().list(pageToken=token).execute()["changes"] == []  # nothing since the token
    new = m.create_file("new.bin", [b"fresh"])
    m.update(keep.id, {"name": "kept.bin"})
    m.update(binned.id, {"trashed": True})
    m.delete(gone.id)
    changes, _, _ = all_changes(own_svc, token)
    by_id = {c["fileId"]: c for c in changes}
    assert [c["fileId"] for c in changes] == [new.id, keep.id, binned.id, gone.id]  # oldest change first
    assert untouched.id not in by_id
    assert by_id[new.id]["file"]["md5Checksum"] == hashlib.md5(b"fresh").hexdigest()
    assert by_id[keep.id]["file"]["name"] == "kept.bin" and by_id[keep.id]["removed"] is False
    assert by_id[binned.id]["removed"] is False and by_id[binned.id]["file"]["trashed"] is True
    assert by_id[gone.id]["removed"] is True and "file" not in by_id[gone.id]
    assert all(c["changeType"] == "file" and c["time"].endswith("Z") for c in changes)


def test_a_file_changed_twice_appears_once_at_its_latest_change(own_emu: Emulator, own_svc: Any) -> None:
    m = model_of(own_emu)
    a = m.create_file("a", [b"1"])
    token = start_token(own_svc)
    m.update(a.id, {"name": "a1"})
    b = m.create_file("b", [b"2"])
    m.update(a.id, {"name": "a2"})
    changes, _, _ = all_changes(own_svc, token)
    assert [(c["fileId"], c["file"]["name"]) for c in changes] == [(b.id, "b"), (a.id, "a2")]


def test_paging_ends_with_a_start_token_that_lists_only_later_changes(own_emu: Emulator, own_svc: Any) -> None:
    m = model_of(own_emu)
    token = start_token(own_svc)
    made = [m.create_file(f"f{i}", [b"x"]).id for i in range(7)]
    changes, new_token, pages = all_changes(own_svc, token, pageSize=3)
    assert [c["fileId"] for c in changes] == made and pages == 3
    assert all_changes(own_svc, new_token)[0] == []
    later = m.create_file("later", [b"y"])
    assert [c["fileId"] for c in all_changes(own_svc, new_token)[0]] == [later.id]
    assert own_svc.changes().getStartPageToken().execute()["startPageToken"] != new_token


def test_include_removed_false_drops_deletions(own_emu: Emulator, own_svc: Any) -> None:
    m = model_of(own_emu)
    gone = m.create_file("gone", [b"x"])
    token = start_token(own_svc)
    kept = m.create_file("kept", [b"y"])
    m.delete(gone.id)
    assert [c["fileId"] for c in all_changes(own_svc, token, includeRemoved=False)[0]] == [kept.id]


def test_shared_drive_items_need_include_items_from_all_drives(own_emu: Emulator, own_svc: Any) -> None:
    m = model_of(own_emu)
    token = start_token(own_svc)
    shared = m.create_shared_drive("Team")
    inside = m.create_file("t.bin", [b"t"], parent=shared.id)
    mine = m.create_file("m.bin", [b"m"])
    assert [c["fileId"] for c in all_changes(own_svc, token)[0]] == [mine.id]
    both = all_changes(own_svc, token, includeItemsFromAllDrives=True, supportsAllDrives=True)[0]
    assert [c["fileId"] for c in both] == [inside.id, mine.id]  # the drive's root is no file change
    only = all_changes(own_svc, token, driveId=shared.id, includeItemsFromAllDrives=True, supportsAllDrives=True)[0]
    assert [c["fileId"] for c in only] == [inside.id]
    assert [c["fileId"] for c in all_changes(own_svc, token, includeItemsFromAllDrives=True,
                                              supportsAllDrives=True, restrictToMyDrive=True)[0]] == [mine.id]


def test_changes_of_uploads_over_http_are_logged(shared_emu: Emulator, svc: Any, folder: str) -> None:
    token = start_token(svc)
    made = svc.files().create(body={"name": "up.txt", "parents": [folder]},
                              media_body=MediaInMemoryUpload(b"uploaded", resumable=True), fields="id").execute()
    changes, _, _ = all_changes(svc, token)
    assert made["id"] in [c["fileId"] for c in changes]
    (mine,) = [c for c in changes if c["fileId"] == made["id"]]
    assert mine["file"]["parents"] == [folder]


@pytest.mark.parametrize("kw, reason", [({"pageToken": "abc"}, "invalid"), ({"pageToken": "999999999"}, "invalid"),
                                        ({"pageToken": "1", "pageSize": 0}, "invalid"),
                                        ({"pageToken": "1", "pageSize": 1001}, "invalid"),
                                        ({"pageToken": "1", "spaces": "nowhere"}, "invalid"),
                                        ({"pageToken": "1", "fields": "changes(bogus)"}, "invalidParameter")])
def test_bad_input_is_a_400(svc: Any, kw: dict[str, Any], reason: str) -> None:
    with pytest.raises(HttpError) as exc:
        svc.changes().list(**kw).execute()
    assert exc.value.resp.status == 400
    assert error_reason(exc.value) == reason


def test_page_tokens_survive_a_restart(tmp_path: Path) -> None:
    emu = start(tmp_path / "emu")
    try:
        before = model_of(emu).create_file("before", [b"1"])
        token = start_token(build_service(emu))
    finally:
        emu.stop()
    emu = start(tmp_path / "emu")
    try:
        after = model_of(emu).create_file("after", [b"2"])
        ids = [c["fileId"] for c in all_changes(build_service(emu), token)[0]]
        assert ids == [after.id] and before.id not in ids
    finally:
        emu.stop()
