"""Emulator: Graph file versions and Drive revisions, as the real services answer them.

Graph (learn.microsoft.com/en-us/graph/api/driveitem-list-versions): the current version is listed first,
a version has an id, size and time but no hashes, its content is a 302 to a download URL. Drive
(developers.google.com/drive/api/guides/manage-revisions): each content upload is a new head revision;
revisions.list without `fields` gives only id, mimeType, kind, modifiedTime; keepForever protects a
revision from the purge of purgeable ones (30 days, or beyond 100 when a new one arrives).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.drive.revisions import PURGE_COUNT
from driveferry.emulator.seed import seed_emulator, version_blocks
from driveferry.emulator.server import Emulator
from emulator_client import api_model, api_session

SPEC: dict[str, Any] = {"seed": 11, "onedrive": {"files": [{"path": "V/a.bin", "size": "12K", "versions": 3}]},
                        "gdrive": {"files": [{"path": "V/b.bin", "size": "9K", "versions": 2}]}}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(Path(tempfile.mkdtemp(prefix="versions-")), tls=True) as e:
        seed_emulator(e, SPEC)
        yield e


def _blocks(path: str, cloud: str, k: int, size: int, n: int) -> bytes:
    return b"".join(version_blocks(11, cloud, path, k, size, n))


def test_graph_lists_versions_current_first_without_hashes_and_serves_their_bytes(emu: Emulator) -> None:
    s, graph = api_session(emu, "microsoft"), api_model(emu, "graph.")
    api = emu.credentials()["graph"]["api_root"]
    item = graph.by_path("V/a.bin")
    r = s.get(f"{api}/me/drive/items/{item.id}/versions", timeout=30)
    assert r.status_code == 200, r.text
    versions = r.json()["value"]
    assert [v["id"] for v in versions] == ["4.0", "3.0", "2.0", "1.0"]
    assert all("hashes" not in v and "file" not in v for v in versions)
    assert versions[0]["size"] == 12 * 1024 and [v["size"] for v in versions[1:]] == [9216, 6144, 3072]
    for v, k in zip(versions[1:], (2, 1, 0), strict=True):
        content = s.get(f"{api}/me/drive/items/{item.id}/versions/{v['id']}/content", allow_redirects=False,
                        timeout=30)
        assert content.status_code == 302
        data = requests.get(content.headers["Location"], verify=str(emu.ca_file), timeout=30).content
        assert data == _blocks("V/a.bin", "onedrive", k, 12 * 1024, 3)
    one = s.get(f"{api}/me/drive/items/{item.id}/versions/2.0", timeout=30).json()
    assert one["id"] == "2.0" and one["size"] == 6144
    assert s.get(f"{api}/me/drive/items/{item.id}/versions/9.0", timeout=30).status_code == 404
    folder = graph.by_path("V")
    assert s.get(f"{api}/me/drive/items/{folder.id}/versions", timeout=30).status_code == 404
    # a replace over HTTP keeps the replaced content as the newest previous version
    put = s.put(f"{api}/me/drive/items/{item.id}/content", data=b"five", timeout=30)
    assert put.status_code == 200
    after = s.get(f"{api}/me/drive/items/{item.id}/versions", timeout=30).json()["value"]
    assert [v["id"] for v in after] == ["5.0", "4.0", "3.0", "2.0", "1.0"] and after[1]["size"] == 12 * 1024


def _revisions(s: requests.Session, base: str, fid: str, fields: str | None = None) -> list[dict[str, Any]]:
    r = s.get(f"{base}/files/{fid}/revisions", params={"fields": fields} if fields else None, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["revisions"])


def test_drive_keeps_a_revision_per_upload_with_md5_and_bytes(emu: Emulator) -> None:
    s, drive = api_session(emu, "google"), api_model(emu, "drive.")
    base = emu.base_url + "/drive/v3"
    f = drive.find_by_path("V/b.bin")[0]
    plain = _revisions(s, base, f.id)
    assert len(plain) == 3 and set(plain[0]) == {"id", "mimeType", "kind", "modifiedTime"}
    revs = _revisions(s, base, f.id, "revisions(id,md5Checksum,size,keepForever)")
    for rev, k in zip(revs[:2], (0, 1), strict=True):
        data = s.get(f"{base}/files/{f.id}/revisions/{rev['id']}", params={"alt": "media"}, timeout=30).content
        assert data == _blocks("V/b.bin", "gdrive", k, 9 * 1024, 2)
        assert rev["md5Checksum"] == hashlib.md5(data).hexdigest() and int(rev["size"]) == len(data)
    assert revs[-1]["md5Checksum"] == drive.get(f.id).md5  # the head is the current content
    # a content update is a new head; a metadata-only update is not
    up = s.patch(emu.base_url + f"/upload/drive/v3/files/{f.id}", params={"uploadType": "media"}, data=b"new",
                 timeout=30)
    assert up.status_code == 200, up.text
    assert s.patch(f"{base}/files/{f.id}", json={"description": "d"}, timeout=30).status_code == 200
    now = _revisions(s, base, f.id, "revisions(id,md5Checksum)")
    assert len(now) == 4 and now[-1]["md5Checksum"] == hashlib.md5(b"new").hexdigest()
    folder = drive.find_by_path("V")[0]
    r = s.get(f"{base}/files/{folder.id}/revisions", timeout=30)
    assert r.status_code == 403 and r.json()["error"]["errors"][0]["reason"] == "revisionsNotSupported"


def test_drive_purges_old_revisions_unless_kept_forever(emu: Emulator) -> None:
    s, drive = api_session(emu, "google"), api_model(emu, "drive.")
    base = emu.base_url + "/drive/v3"
    f = drive.create_file("purge.bin", [b"v0"])
    for k in range(1, 4):
        drive.update(f.id, {}, content=_content(drive, f"v{k}".encode()))
    revs = _revisions(s, base, f.id, "revisions(id,keepForever)")
    assert len(revs) == 4 and not any(r["keepForever"] for r in revs)
    kept = s.patch(f"{base}/files/{f.id}/revisions/{revs[0]['id']}", json={"keepForever": True},
                   params={"fields": "id,keepForever"}, timeout=30)
    assert kept.status_code == 200 and kept.json() == {"id": revs[0]["id"], "keepForever": True}
    emu.state.clock.advance(timedelta(days=31).total_seconds())
    s = api_session(emu, "google")  # the old token expired with the clock
    left = _revisions(s, base, f.id, "revisions(id,keepForever)")
    # the kept one and the head survive 30 days; the purgeable ones in between are gone
    assert [r["id"] for r in left] == [revs[0]["id"], revs[-1]["id"]]
    # beyond 100 purgeable revisions, a new upload drops the oldest purgeable ones (never a kept one)
    for k in range(PURGE_COUNT + 3):
        drive.update(f.id, {}, content=_content(drive, f"w{k}".encode()))
    many = _revisions(s, base, f.id, "revisions(id,keepForever)")
    assert many[0]["id"] == revs[0]["id"] and len(many) == 1 + PURGE_COUNT + 1
    last = s.delete(f"{base}/files/{f.id}/revisions/{many[-1]['id']}", timeout=30)
    assert last.status_code == 204  # deleting the head: the previous revision is the content again
    previous = _revisions(s, base, f.id, "revisions(id,md5Checksum)")[-1]
    assert drive.get(f.id).md5 == previous["md5Checksum"] == hashlib.md5(f"w{PURGE_COUNT + 1}".encode()).hexdigest()


def _content(drive: Any, data: bytes) -> Any:
    from driveferry.emulator.drive.hashing import write_blob
    return write_blob(drive.state.new_blob_path(), [data])
