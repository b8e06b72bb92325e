"""Drive's one-request upload (providers/gdrive/multipart.py) over real HTTPS against the emulator:
one request per small file, with its metadata in it; a repeat of a request that went through makes no
twin (409 on the pre-generated id, then files.get); resuming its token finds the file, or says lost."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_gdrive_emulator import _control, drive_emulator, make_provider

from driveferry.errors import UploadSessionLostError
from driveferry.integrity.hashes import HashType
from driveferry.providers.base import UploadMeta
from driveferry.providers.gdrive.multipart import MultipartSession, MultipartToken

WHEN = datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC)


def _requests(emu: Any) -> dict[str, int]:
    return dict(_control(emu).get(f"{emu.base_url}/_emulator/counters").json()["requests"])


def test_one_request_per_small_file_and_no_twin_on_a_repeat(tmp_path: Path) -> None:
    with drive_emulator(tmp_path / "emu") as emu:
        gd = make_provider(emu, tmp_path)
        root = gd.root()
        data = bytes(range(256)) * 300
        meta = UploadMeta(modified=WHEN, properties={"df_run": "r1"}, one_send=True)
        before = _requests(emu)
        session = gd.begin_upload(root, "one.bin", len(data), meta)
        done = session.send(0, memoryview(data), True)
        after = _requests(emu)
        spent = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
        assert spent.pop("drive.upload.simple") == 1 and spent.pop("drive.files.generateIds", 0) <= 1
        assert not {k for k in spent if k.startswith("drive.")}, spent
        assert done is not None and done.size == len(data) and done.modified == WHEN
        assert done.hashes[HashType.SHA256] == hashlib.sha256(data).hexdigest()
        assert done.properties["df_run"] == "r1"

        # the same request again (its first reply lost): 409 on the id, the file is fetched, no twin
        inner: Any = gd.inner  # type: ignore[attr-defined]
        token = MultipartToken.loads(session.token)
        again = MultipartSession(inner.api, token, {"name": "one.bin", "parents": [root.id]}, None, inner.to_entry)
        assert again.send(0, data, True) == done
        assert [e.id for e in gd.list(root) if e.name == "one.bin"] == [done.id]

        resumed = gd.resume_upload(session.token)  # a finished one-request upload resumes as finished
        assert resumed.send(len(data), b"", True) == done


def test_unsent_one_request_upload_resumes_as_lost(tmp_path: Path) -> None:
    with drive_emulator(tmp_path / "emu") as emu:
        gd = make_provider(emu, tmp_path)
        session = gd.begin_upload(gd.root(), "never.bin", 10, UploadMeta(one_send=True))
        with pytest.raises(UploadSessionLostError):
            gd.resume_upload(session.token)
        with pytest.raises(ValueError):  # one send, whole: a partial chunk is the caller's mistake
            session.send(0, b"01234", False)
