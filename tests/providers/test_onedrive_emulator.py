"""The OneDrive adapter against the emulator over real HTTPS (msal client credentials, Graph v1.0):
paging, delta, packages, ranges, expired download URLs, uploads and their edge cases, names."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.server import Emulator
from driveferry.errors import (
    AlreadyExistsError,
    NotFoundError,
    UnsupportedError,
    UploadSessionLostError,
    UserError,
)
from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.providers.base import Entry, Kind, UploadMeta
from driveferry.providers.onedrive import OneDriveProvider, from_remote_config
from driveferry.providers.onedrive.errors import UploadOutOfSyncError
from driveferry.providers.onedrive.upload import CHUNK_MULTIPLE

pytest.importorskip("driveferry.emulator.graph.routes")
pytest.importorskip("driveferry.emulator.identity_microsoft")


def graph_model(emu: Emulator) -> Any:
    return next(m for m in emu.modules if getattr(m, "route_prefix", "") == "graph.").model  # type: ignore[attr-defined]


def ms_section(emu: Emulator, **extra: Any) -> dict[str, Any]:
    """A remote section for app-only (client credentials) sign-in against the emulator."""
    creds = emu.credentials()
    ms, graph = creds["microsoft"], creds["graph"]
    return {"endpoint": emu.base_url, "ca_file": str(emu.ca_file), "tenant": ms["tenant_id"],
            "client_id": ms["client_id"], "client_secret": ms["client_secret"], "auth": "client_credentials",
            "drive_id": graph["drive_id"], **extra}


@pytest.fixture()
def od(emulator: Emulator, tmp_path: Path) -> OneDriveProvider:
    """A provider rooted at a fresh folder (the session emulator is shared between tests)."""
    top = from_remote_config(ms_section(emulator), name="onedrive", state_dir=tmp_path / "state")
    folder = f"t-{uuid.uuid4().hex[:8]}"
    top.mkdir(top.root(), folder)
    return from_remote_config(ms_section(emulator, root=folder), name="onedrive", state_dir=tmp_path / "state")


def upload(p: OneDriveProvider, parent: Entry, name: str, data: bytes, *, chunk: int = CHUNK_MULTIPLE,
           meta: UploadMeta | None = None) -> Entry:
    session = p.begin_upload(parent, name, len(data), meta or UploadMeta())
    result, offset = None, 0
    while offset < len(data) or result is None:
        piece = data[offset:offset + chunk]
        result = session.send(offset, piece, offset + len(piece) >= len(data))
        offset += len(piece)
    return result


def test_round_trip_hash_time_and_ranges(od: OneDriveProvider) -> None:
    data = os.urandom(3 * CHUNK_MULTIPLE + 12345)
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    entry = upload(od, od.root(), "data.bin", data, meta=UploadMeta(modified=when))
    expected = hash_bytes(data, [HashType.QUICKXOR])
    assert entry.kind is Kind.FILE and entry.size == len(data) and entry.path == "data.bin"
    assert entry.hashes == expected and entry.modified == when
    assert od.stat("data.bin").hashes == expected
    assert b"".join(od.open_range(entry)) == data
    for start, end in [(0, 1), (1000, 5000), (len(data) - 5, None), (CHUNK_MULTIPLE, 2 * CHUNK_MULTIPLE + 1)]:
        assert b"".join(od.open_range(entry, start, end)) == data[start:end]
    assert b"".join(od.open_range(entry, len(data), None)) == b""
    assert b"".join(od.open_range(entry, 10, 10_000_000)) == data[10:]
    unknown = Entry(entry.id, entry.path, entry.name, Kind.FILE)  # size not known: the server says where EOF is
    assert b"".join(od.open_range(unknown, len(data) - 3, len(data) + 50)) == data[-3:]
    assert b"".join(od.open_range(unknown, len(data) + 1)) == b""


def test_zero_byte_file_and_replace(od: OneDriveProvider) -> None:
    empty = upload(od, od.root(), "empty.txt", b"")
    assert empty.size == 0 and b"".join(od.open_range(empty)) == b""
    assert empty.hashes == hash_bytes(b"", [HashType.QUICKXOR])  # Graph sends none; the constant is ours
    with pytest.raises(AlreadyExistsError):
        upload(od, od.root(), "empty.txt", b"again")
    replaced = upload(od, od.root(), "empty.txt", b"again", meta=UploadMeta(replace=True))
    assert replaced.id == empty.id and b"".join(od.open_range(replaced)) == b"again"


def test_listing_2500_entries_across_pages(od: OneDriveProvider, emulator: Emulator) -> None:
    model, folder = graph_model(emulator), od.mkdir(od.root(), "many")
    for i in range(2500):  # straight into the model: creating them over HTTP would dominate the run time
        model.create_folder(folder.id, f"d{i:04d}")
    before = requests.get(emulator.base_url + "/_emulator/counters", verify=str(emulator.ca_file)).json()
    names = [e.name for e in od.list(folder)]
    after = requests.get(emulator.base_url + "/_emulator/counters", verify=str(emulator.ca_file)).json()
    assert sorted(names) == [f"d{i:04d}" for i in range(2500)]
    pages = after["requests"].get("graph.children", 0) - before["requests"].get("graph.children", 0)
    assert pages == 3  # $top=1000, nextLink followed verbatim


def test_delta_reports_later_changes(od: OneDriveProvider) -> None:
    sub = od.mkdir(od.root(), "sub")
    first = upload(od, sub, "first.txt", b"one")
    entries, cursor = od.delta(None)
    assert {"sub", "sub/first.txt"} <= {e.path for e in entries}
    upload(od, sub, "second.txt", b"two")
    od.delete(first)
    changes, cursor2 = od.delta(cursor)
    by_id = {e.id: e for e in changes}
    assert any(e.path == "sub/second.txt" and e.kind is Kind.FILE for e in changes)
    assert by_id[first.id].properties.get("deleted") == "true"
    assert all(e.path.startswith("sub") or e.properties.get("deleted") for e in changes)
    assert cursor2 != cursor
    again, cursor3 = od.delta(cursor2)
    assert again == []
    # a metadata-only change deep down: the parent is not in the answer, its path is looked up by id
    second = od.stat("sub/second.txt")
    od.set_modified(second, datetime(2021, 1, 1, tzinfo=UTC))
    touched, _ = od.delta(cursor3)
    assert [(e.path, e.modified) for e in touched] == [("sub/second.txt", datetime(2021, 1, 1, tzinfo=UTC))]


def test_delta_resync_after_expired_token(od: OneDriveProvider, emulator: Emulator) -> None:
    upload(od, od.root(), "r.txt", b"r")
    _, cursor = od.delta(None)
    requests.post(emulator.base_url + "/_emulator/graph/delta/expire", verify=str(emulator.ca_file))
    entries, _ = od.delta(cursor)  # 410 resyncRequired -> full enumeration from Location
    assert "r.txt" in {e.path for e in entries}


def test_onenote_package_is_reported_and_not_downloadable(od: OneDriveProvider, emulator: Emulator) -> None:
    graph_model(emulator).create_package(od.root().id, "Team notes")
    [entry] = [e for e in od.list(od.root()) if e.name == "Team notes"]
    assert entry.kind is Kind.PACKAGE and entry.properties["package_type"] == "oneNote"
    with pytest.raises(UnsupportedError):
        od.open_range(entry)
    fake = Entry(entry.id, entry.path, entry.name, Kind.FILE, size=None)  # the server refuses too (406)
    with pytest.raises(UnsupportedError):
        b"".join(od.open_range(fake))


def test_expired_download_url_is_requested_again(fresh_emulator: Emulator, tmp_path: Path) -> None:
    p = from_remote_config(ms_section(fresh_emulator), name="onedrive", state_dir=tmp_path)
    data = os.urandom(200_000)
    entry = upload(p, p.root(), "x.bin", data)
    stale = p.client.download_location(entry.id)
    requests.post(fresh_emulator.base_url + "/_emulator/clock", json={"advance_s": 7200},
                  verify=str(fresh_emulator.ca_file))
    # the stale URL answers 401; /content gives a new one (and the msal token, expired too, is renewed)
    assert b"".join(p.client.download(entry.id, 100, 5000, url=stale)) == data[100:5000]
    assert b"".join(p.open_range(entry, 7)) == data[7:]


def test_names_with_illegal_characters_round_trip(od: OneDriveProvider) -> None:
    names = ["a*b?.txt", "x:y|z<1>.md", "~$lock.docx", " lead", "trail.", "CON", "50% #1", "desktop.ini",
             "literal＊twin"]
    folder = od.mkdir(od.root(), 'dir "quoted"')
    for i, name in enumerate(names):
        upload(od, folder, name, str(i).encode())
    listed = {e.name: e for e in od.list(folder)}
    assert set(listed) == set(names)
    for i, name in enumerate(names):
        assert od.stat(f'dir "quoted"/{name}').id == listed[name].id
        assert b"".join(od.open_range(listed[name])) == str(i).encode()


def test_mkdir_is_reentrant_and_delete(od: OneDriveProvider) -> None:
    a = od.mkdir(od.root(), "A")
    assert od.mkdir(od.root(), "A").id == a.id
    f = upload(od, od.root(), "file", b"f")
    with pytest.raises(AlreadyExistsError):
        od.mkdir(od.root(), "file")
    od.delete(f)
    with pytest.raises(NotFoundError):
        od.stat("file")
    assert od.set_modified(a, datetime(2020, 1, 2, tzinfo=UTC)).modified == datetime(2020, 1, 2, tzinfo=UTC)


def test_upload_resend_overlap_and_out_of_order(od: OneDriveProvider) -> None:
    data = os.urandom(3 * CHUNK_MULTIPLE)
    s = od.begin_upload(od.root(), "f.bin", len(data), UploadMeta())
    assert s.committed() == 0
    assert s.send(0, data[:CHUNK_MULTIPLE], False) is None
    assert s.send(0, data[:CHUNK_MULTIPLE], False) is None  # idempotent: 416 overlap, re-based
    with pytest.raises(UploadOutOfSyncError) as info:
        s.send(2 * CHUNK_MULTIPLE, data[2 * CHUNK_MULTIPLE:], True)
    assert info.value.committed_offset == s.committed() == CHUNK_MULTIPLE
    # a chunk that straddles the committed offset: only its new part is sent
    assert s.send(CHUNK_MULTIPLE // 2, data[CHUNK_MULTIPLE // 2:2 * CHUNK_MULTIPLE], False) is None
    entry = s.send(2 * CHUNK_MULTIPLE, data[2 * CHUNK_MULTIPLE:], True)
    assert entry is not None and s.committed() == len(data)
    assert s.send(len(data), b"", True) == entry  # the relay's "finish" call
    assert b"".join(od.open_range(entry)) == data


def test_abort_and_lost_session(od: OneDriveProvider) -> None:
    s = od.begin_upload(od.root(), "gone.bin", 2 * CHUNK_MULTIPLE, UploadMeta())
    s.send(0, b"\0" * CHUNK_MULTIPLE, False)
    s.abort()
    with pytest.raises(UploadSessionLostError):
        od.resume_upload(s.token).committed()
    with pytest.raises(UploadSessionLostError):
        od.resume_upload("not json")
    with pytest.raises(NotFoundError):
        od.stat("gone.bin")


def test_app_only_sign_in_cannot_use_me(emulator: Emulator, tmp_path: Path) -> None:
    section = ms_section(emulator)
    del section["drive_id"]
    with pytest.raises(UserError):
        from_remote_config(section, name="onedrive", state_dir=tmp_path)
    creds = emulator.credentials()["microsoft"]
    by_user = from_remote_config({**section, "user": creds["username"]}, name="onedrive", state_dir=tmp_path)
    assert by_user.client.drive_base.startswith("/users/")


def test_create_root_and_oversized_chunk_split(emulator: Emulator, tmp_path: Path) -> None:
    folder = f"made-{uuid.uuid4().hex[:6]}/deep er"
    p = from_remote_config(ms_section(emulator, root=folder, create_root=True), name="onedrive",
                           state_dir=tmp_path)
    root = p.root()
    assert root.path == "" and root.kind is Kind.FOLDER
    data = os.urandom(5 * CHUNK_MULTIPLE + 3)
    session = p.begin_upload(root, "big.bin", len(data), UploadMeta())
    session.max_fragment = 2 * CHUNK_MULTIPLE  # stands in for the 60 MiB request limit
    counters = emulator.base_url + "/_emulator/counters"
    before = requests.get(counters, verify=str(emulator.ca_file)).json()["requests"].get("graph.upload.fragment", 0)
    entry = session.send(0, data, True)
    after = requests.get(counters, verify=str(emulator.ca_file)).json()["requests"]["graph.upload.fragment"]
    assert entry is not None and after - before == 3
    assert b"".join(p.open_range(entry)) == data


def test_final_fragment_whose_answer_was_lost(od: OneDriveProvider, emulator: Emulator) -> None:
    data = os.urandom(2 * CHUNK_MULTIPLE)
    when = datetime(2023, 3, 4, 5, 6, 7, tzinfo=UTC)
    old = upload(od, od.root(), "final.bin", os.urandom(len(data)), meta=UploadMeta(modified=datetime(2001, 1, 1,
                                                                                                     tzinfo=UTC)))
    s = od.begin_upload(od.root(), "final.bin", len(data), UploadMeta(modified=when, replace=True))
    s.send(0, data[:CHUNK_MULTIPLE], False)
    stale = od.resume_upload(s.token)
    url = json.loads(s.token)["upload_url"]
    # the last fragment reaches the server, but its answer never reaches us
    requests.put(url, data=data[CHUNK_MULTIPLE:], verify=str(emulator.ca_file),
                 headers={"Content-Range": f"bytes {CHUNK_MULTIPLE}-{len(data) - 1}/{len(data)}"}).raise_for_status()
    entry = s.send(CHUNK_MULTIPLE, data[CHUNK_MULTIPLE:], True)  # 404 now: the session finished
    assert entry is not None and entry.id == old.id and entry.modified == when
    assert stale.committed() == len(data) and stale.send(len(data), b"", True) == entry
    assert b"".join(od.open_range(entry)) == data


def test_an_older_file_of_the_same_size_is_not_taken_for_our_upload(od: OneDriveProvider) -> None:
    upload(od, od.root(), "same.bin", b"a" * 10, meta=UploadMeta(modified=datetime(2001, 1, 1, tzinfo=UTC)))
    s = od.begin_upload(od.root(), "same.bin", 10, UploadMeta(modified=datetime(2024, 1, 1, tzinfo=UTC),
                                                              replace=True))
    s.abort()
    with pytest.raises(UploadSessionLostError):
        od.resume_upload(s.token).committed()
