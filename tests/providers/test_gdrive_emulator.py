"""The Drive adapter against the emulator over real HTTPS: paths, kinds, duplicates, ranges, uploads,
resume across processes, injected faults, the daily cap and revoked credentials."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.server import Emulator
from driveferry.errors import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    UnsupportedError,
    UploadSessionLostError,
)
from driveferry.integrity.hashes import HashType
from driveferry.providers.base import Entry, Kind, UploadMeta
from driveferry.providers.gdrive import GDriveProvider, from_remote_config
from driveferry.providers.pacing import Pacer
from driveferry.providers.retrying import RetryingProvider, RetryPolicy, call_with_retry

FAST = RetryPolicy(max_attempts=12, base_delay_s=0.01, max_delay_s=0.05, first_contact_attempts=12)
CHUNK = 256 * 1024


@contextmanager
def drive_emulator(data_dir: Path) -> Iterator[Emulator]:
    """All modules when they exist; otherwise just Drive (tokens are then issued directly)."""
    routes = pytest.importorskip("driveferry.emulator.drive.routes")
    try:
        from driveferry.emulator import identity
        modules = [*identity.modules(), routes.DriveApi()]
    except ImportError:
        modules = [routes.DriveApi()]
    with Emulator(data_dir, tls=True, modules=modules) as emu:
        yield emu


def drive_model(emu: Emulator) -> Any:
    return next(m for m in emu.modules if getattr(m, "route_prefix", "") == "drive.").model  # type: ignore[attr-defined]


def google_section(emu: Emulator, *, oauth: bool = True) -> dict[str, Any]:
    """A remote config section with the emulator's Google credentials (OAuth refresh token if offered)."""
    creds = emu.credentials().get("google") or {}
    base: dict[str, Any] = {"endpoint": emu.base_url, "ca_file": str(emu.ca_file)}
    if oauth and creds.get("refresh_token"):
        keys = ("client_id", "client_secret", "refresh_token", "token_uri")
        return {**base, "auth": "oauth", **{k: creds[k] for k in keys}}
    token = creds.get("access_token") or emu.state.issue_token("google", "user@example.com")
    return {**base, "auth": "access_token", "access_token": token}


def make_provider(emu: Emulator, state_dir: Path, *, oauth: bool = True, **extra: Any) -> GDriveProvider:
    """A provider rooted at a fresh folder of its own (tests share one emulator)."""
    section = {**google_section(emu, oauth=oauth), "root": f"t-{uuid.uuid4().hex[:8]}", "create_root": True,
               "download_chunk_bytes": 300_000, **extra}
    # the retry layer, as build_provider composes it, with a quick policy and a pacer of this test's own
    provider = RetryingProvider(from_remote_config(section, name="gdrive", state_dir=state_dir), FAST,
                                Pacer(f"gdrive-{uuid.uuid4().hex[:6]}"))
    return provider  # type: ignore[return-value]


def upload(provider: GDriveProvider, parent: Entry, name: str, data: bytes, *, chunk: int = CHUNK,
           meta: UploadMeta | None = None, start: int = 0, token: str | None = None) -> Entry:
    """Send `data` chunk by chunk, each send retried on TransientError (send is idempotent per offset)."""
    session = (provider.resume_upload(token) if token
               else provider.begin_upload(parent, name, len(data), meta or UploadMeta()))
    offset = start
    while True:
        piece = data[offset:offset + chunk]
        last = offset + len(piece) >= len(data)
        result = call_with_retry(lambda o=offset, p=piece, la=last: session.send(o, p, la), FAST, "send")  # type: ignore[misc]
        offset += len(piece)
        if last:
            assert result is not None
            return result


def _data(n: int, seed: int = 0) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1))[:n] if n else b""


def _read(provider: GDriveProvider, entry: Entry, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(provider.open_range(entry, start, end))


def _control(emu: Emulator) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(emu.ca_file)
    return s


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with drive_emulator(tmp_path_factory.mktemp("gdrive-emu")) as e:
        yield e


@pytest.fixture()
def gd(emu: Emulator, tmp_path: Path) -> GDriveProvider:
    return make_provider(emu, tmp_path)


def test_stat_list_and_kinds(emu: Emulator, gd: GDriveProvider) -> None:
    model, root = drive_model(emu), gd.root()
    folder = model.create_folder("a b", parent=root.id)
    sub = model.create_folder("it's", parent=folder.id)
    data = _data(1000)
    model.create_file("x.bin", [data], parent=sub.id, app_properties={"k": "v"})
    doc = model.create_native("Notes", parent=folder.id)
    model.create_shortcut("link", doc.id, parent=folder.id)
    gone = model.create_file("old.txt", [b"old"], parent=folder.id)
    model.update(gone.id, {"trashed": True})

    entry = gd.stat("a b/it's/x.bin")
    assert (entry.kind, entry.size, entry.path, entry.name) == (Kind.FILE, 1000, "a b/it's/x.bin", "x.bin")
    assert entry.hashes == {HashType.MD5: hashlib.md5(data).hexdigest(),
                            HashType.SHA1: hashlib.sha1(data).hexdigest(),
                            HashType.SHA256: hashlib.sha256(data).hexdigest()}
    assert entry.modified is not None and entry.modified.utcoffset() is not None
    assert entry.properties == {"k": "v"} and entry.parent_id == sub.id
    kinds = {e.name: (e.kind, e.size) for e in gd.list(gd.stat("a b"))}
    assert kinds == {"it's": (Kind.FOLDER, None), "Notes": (Kind.NATIVE_DOC, None), "link": (Kind.SHORTCUT, None)}
    assert gd.stat("") == root and gd.stat("/a b/") .kind is Kind.FOLDER
    with pytest.raises(NotFoundError):
        gd.stat("a b/old.txt")  # trashed items are invisible
    with pytest.raises(NotFoundError):
        gd.stat("a b/missing/x")
    with pytest.raises(UnsupportedError):
        _read(gd, gd.stat("a b/Notes"))
    with pytest.raises(UnsupportedError):  # and the server agrees (403 fileNotDownloadable)
        gd.api.get_range(doc.id, 0, 10)


def test_duplicates_resolve_to_the_oldest(emu: Emulator, gd: GDriveProvider) -> None:
    model, root = drive_model(emu), gd.root()
    first = model.create_file("dup.txt", [b"one"], parent=root.id)
    emu.state.advance_clock(1)
    model.create_file("dup.txt", [b"two"], parent=root.id)
    listed = [e for e in gd.list(root) if e.name == "dup.txt"]
    assert len(listed) == 2 and listed[0].id == first.id  # all listed, the winner first
    assert gd.stat("dup.txt").id == first.id
    dups = gd.duplicates(root)
    assert list(dups) == ["dup.txt"] and [e.id for e in dups["dup.txt"]][0] == first.id
    assert len(dups["dup.txt"]) == 2


def test_round_trip_ranges_and_metadata(gd: GDriveProvider) -> None:
    folder = gd.mkdir(gd.root(), "up")
    assert gd.mkdir(gd.root(), "up").id == folder.id  # mkdir returns the existing folder
    nested = gd.mkdir(gd.root(), "up/x/y")
    assert nested.path == "up/x/y" and gd.stat("up/x/y").id == nested.id
    data = _data(3 * CHUNK + 12345, seed=1)
    when = datetime(2021, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
    entry = upload(gd, folder, "big.bin", data, meta=UploadMeta(modified=when, mime_type="application/x-test",
                                                                properties={"src": "od:1"}))
    assert entry.path == "up/big.bin" and entry.size == len(data) and entry.modified == when
    assert entry.hashes[HashType.MD5] == hashlib.md5(data).hexdigest() and entry.properties == {"src": "od:1"}
    assert gd.stat("up/big.bin").id == entry.id
    assert _read(gd, entry) == data
    for start, end in [(0, 1), (5, 300_001), (CHUNK - 1, 2 * CHUNK + 7), (len(data) - 3, None), (len(data), None)]:
        assert _read(gd, entry, start, end) == data[start:end]
    empty = upload(gd, folder, "empty", b"")
    assert empty.size == 0 and empty.hashes[HashType.MD5] == hashlib.md5(b"").hexdigest()
    assert _read(gd, empty) == b""
    with pytest.raises(AlreadyExistsError):
        gd.mkdir(folder, "empty")
    later = datetime(2022, 1, 1, tzinfo=UTC)
    assert gd.set_modified(entry, later).modified == later
    assert gd.set_properties(entry, {"h": "1"}).properties == {"src": "od:1", "h": "1"}
    replaced = upload(gd, folder, "big.bin", b"new", meta=UploadMeta(replace=True))
    assert replaced.id == entry.id and _read(gd, gd.stat("up/big.bin")) == b"new"
    gd.delete(folder)
    with pytest.raises(NotFoundError):
        gd.stat("up/big.bin")


def test_resent_chunks_are_idempotent(gd: GDriveProvider) -> None:
    data = _data(2 * CHUNK + 100, seed=2)
    session = gd.begin_upload(gd.root(), "p.bin", len(data), UploadMeta())
    assert session.send(0, data[:2 * CHUNK], False) is None
    assert session.send(0, data[:2 * CHUNK], False) is None  # a re-send of held bytes changes nothing
    assert session.committed_offset == 2 * CHUNK == session.committed()
    done = session.send(CHUNK, data[CHUNK:], True)  # overlaps what the server holds: only the tail goes
    assert done is not None and session.result() == done and _read(gd, done) == data
    assert session.send(len(data), b"", True) == done  # asking again after completion


_CHILD = """
import json, os, sys
from driveferry.providers.base import UploadMeta
from driveferry.providers.gdrive import from_remote_config
section, data_path, token_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
gd = from_remote_config(section, name="gdrive", state_dir=__import__("pathlib").Path(sys.argv[4]))
data = open(data_path, "rb").read()
s = gd.begin_upload(gd.stat(""), "resumed.bin", len(data), UploadMeta())
for off in (0, 262144):
    s.send(off, data[off:off + 262144], False)
open(token_path, "w").write(s.token)
os.kill(os.getpid(), 9)
"""


def test_upload_killed_in_a_process_resumes_in_another(emu: Emulator, gd: GDriveProvider, tmp_path: Path) -> None:
    data = _data(3 * CHUNK + 5, seed=3)
    (tmp_path / "data").write_bytes(data)
    section = {**google_section(emu), "root_folder_id": gd.root().id}
    child = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(section), str(tmp_path / "data"),
                            str(tmp_path / "token"), str(tmp_path / "child")], timeout=60, env=dict(os.environ))
    assert child.returncode == -9
    token = (tmp_path / "token").read_text()
    assert json.loads(token)["size"] == len(data)
    session = gd.resume_upload(token)
    assert session.committed() == 2 * CHUNK
    entry = upload(gd, gd.root(), "", data, start=2 * CHUNK, token=token)
    assert entry.path == "resumed.bin" and _read(gd, gd.stat("resumed.bin")) == data


@pytest.fixture()
def own_emu(tmp_path: Path) -> Iterator[Emulator]:
    """An emulator of this test's own: faults, limits and revocations must not leak into other tests."""
    with drive_emulator(tmp_path / "emu") as e:
        yield e


def test_injected_faults_do_not_change_the_bytes(own_emu: Emulator, tmp_path: Path) -> None:
    gd = make_provider(own_emu, tmp_path)
    root = gd.root()
    plan = {"seed": 1, "rules": [{"kind": "status", "route": "drive.upload.*", "status": 503, "rate": 0.3},
                                 {"kind": "status", "route": "drive.*", "method": "GET", "status": 500,
                                  "rate": 0.2},
                                 {"kind": "reset", "route": "drive.upload.*", "rate": 0.1},
                                 {"kind": "truncate", "route": "drive.files.media", "rate": 0.3}]}
    _control(own_emu).put(f"{own_emu.base_url}/_emulator/faults", json=plan).raise_for_status()
    data = _data(6 * CHUNK + 999, seed=4)
    entry = upload(gd, root, "faulty.bin", data)
    assert entry.hashes[HashType.SHA256] == hashlib.sha256(data).hexdigest()
    assert _read(gd, gd.stat("faulty.bin")) == data
    fired = _control(own_emu).get(f"{own_emu.base_url}/_emulator/faults").json()
    assert all(r["fired"] > 0 for r in fired["rules"]), fired["rules"]


def test_daily_cap_raises_quota_and_is_not_retried(own_emu: Emulator, tmp_path: Path) -> None:
    gd = make_provider(own_emu, tmp_path)
    root = gd.root()
    ctl = _control(own_emu)
    ctl.put(f"{own_emu.base_url}/_emulator/drive/limits", json={"daily_upload_bytes": CHUNK}).raise_for_status()
    upload(gd, root, "first.bin", _data(CHUNK + 1), chunk=2 * CHUNK)  # the request crossing the cap passes
    ctl.post(f"{own_emu.base_url}/_emulator/counters/reset")
    with pytest.raises(QuotaExceededError) as info:
        upload(gd, root, "second.bin", _data(2 * CHUNK))
    assert info.value.kind == "daily_upload" and info.value.code == "userRateLimitExceeded"
    statuses = ctl.get(f"{own_emu.base_url}/_emulator/counters").json()["statuses"]
    assert statuses.get("403") == 1  # exactly one refusal: nobody retried it


def test_daily_cap_lets_an_upload_in_progress_finish(own_emu: Emulator, tmp_path: Path) -> None:
    """"Uploads that are in progress will complete" (Google admin help 172541; api-notes Part C §19):
    a session crosses the cap and finishes; only an upload that starts afterwards is refused."""
    gd = make_provider(own_emu, tmp_path)
    limits = f"{own_emu.base_url}/_emulator/drive/limits"
    _control(own_emu).put(limits, json={"daily_upload_bytes": 2 * CHUNK}).raise_for_status()
    data = _data(4 * CHUNK, seed=6)
    session = gd.begin_upload(gd.root(), "capped.bin", len(data), UploadMeta())
    for i in range(3):
        assert session.send(i * CHUNK, data[i * CHUNK:(i + 1) * CHUNK], False) is None
    done = session.send(3 * CHUNK, data[3 * CHUNK:], True)
    assert done is not None and _read(gd, done) == data
    with pytest.raises(QuotaExceededError):
        gd.begin_upload(gd.root(), "next.bin", 10, UploadMeta())


@pytest.mark.parametrize("oauth", [True, False], ids=["refresh-token", "static-token"])
def test_revoked_credentials_are_permission_denied(own_emu: Emulator, tmp_path: Path, oauth: bool) -> None:
    if oauth and not (own_emu.credentials().get("google") or {}).get("refresh_token"):
        pytest.skip("no Google identity endpoint in this emulator")
    gd = make_provider(own_emu, tmp_path, oauth=oauth)
    root = gd.root()
    if oauth:  # the refreshed token (and the refresh token) are kept for the next process, owner-only
        token_file = tmp_path / "gdrive-gdrive.token.json"
        assert token_file.stat().st_mode & 0o777 == 0o600 and "access_token" in token_file.read_text()
    session = gd.begin_upload(root, "r.bin", 10, UploadMeta())
    own_emu.state.revoke_tokens()
    with pytest.raises(PermissionDeniedError):
        gd.stat("anything")
    with pytest.raises(PermissionDeniedError):
        list(gd.list(root))
    # the session URI is the credential for the upload itself (api-notes 4.6.2)
    assert session.send(0, b"0123456789", True) is not None


def test_service_account_credentials(own_emu: Emulator, tmp_path: Path) -> None:
    info = (own_emu.credentials().get("google") or {}).get("service_account_info")
    if not info:
        pytest.skip("no Google identity endpoint in this emulator")
    section = {"endpoint": own_emu.base_url, "ca_file": str(own_emu.ca_file), "auth": "service_account",
               "service_account_info": json.dumps(info), "subject": "user@example.com"}
    gd = from_remote_config(section, name="sa", state_dir=tmp_path)
    assert gd.mkdir(gd.root(), "via-sa").kind is Kind.FOLDER


def test_aborted_or_unknown_session_is_lost(gd: GDriveProvider) -> None:
    session = gd.begin_upload(gd.root(), "a.bin", 2 * CHUNK, UploadMeta())
    session.send(0, _data(CHUNK), False)
    token = session.token
    session.abort()
    with pytest.raises(UploadSessionLostError):
        session.send(CHUNK, _data(CHUNK), True)
    bogus = json.loads(token)
    bogus["uri"] = bogus["uri"].replace("upload_id=", "upload_id=nope")
    with pytest.raises(UploadSessionLostError):
        gd.resume_upload(json.dumps(bogus))


def test_shared_drive_root(emu: Emulator, tmp_path: Path) -> None:
    shared = drive_model(emu).create_shared_drive(f"team-{uuid.uuid4().hex[:6]}")
    gd = from_remote_config({**google_section(emu), "drive_id": shared.id, "root": "in/here", "create_root": True},
                            name="team", state_dir=tmp_path)
    entry = upload(gd, gd.mkdir(gd.root(), "d"), "f.bin", b"shared bytes")
    assert gd.stat("d/f.bin").id == entry.id and [e.name for e in gd.list(gd.stat("d"))] == ["f.bin"]
    assert _read(gd, entry) == b"shared bytes"


def test_throttling_is_retried_and_threads_do_not_share_connections(own_emu: Emulator, tmp_path: Path) -> None:
    gd = make_provider(own_emu, tmp_path)
    root = gd.root()
    # folder creates: every worker makes one (a folder this process made needs no lookup, so a listing
    # route would not be met)
    plan = {"seed": 2, "rules": [{"kind": "status", "route": "drive.files.create", "status": 429,
                                  "code": "rateLimitExceeded", "message": "Rate Limit Exceeded",
                                  "retry_after": "0", "count": 3}]}
    _control(own_emu).put(f"{own_emu.base_url}/_emulator/faults", json=plan).raise_for_status()

    def work(i: int) -> bytes:
        data = _data(CHUNK + i, seed=10 + i)
        folder = gd.mkdir(root, f"w{i}")
        return _read(gd, upload(gd, folder, "f", data, chunk=CHUNK)) if data else b""

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    assert results == [_data(CHUNK + i, seed=10 + i) for i in range(4)]
    fired = _control(own_emu).get(f"{own_emu.base_url}/_emulator/faults").json()["rules"][0]["fired"]
    assert fired == 3


def test_relay_into_drive_resumes_a_started_session(gd: GDriveProvider, tmp_path: Path) -> None:
    """The session semantics the relay relies on: resume from a token, finish, hashes reported."""
    from driveferry.migrate.relay import Relay, RelayJob
    from driveferry.providers.local import LocalProvider

    data = _data(4 * CHUNK + 77, seed=5)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.bin").write_bytes(data)
    local = LocalProvider(tmp_path / "src")
    started = gd.begin_upload(gd.root(), "f.bin", len(data), UploadMeta())
    started.send(0, data[:2 * CHUNK], False)
    job = RelayJob(source=local.stat("f.bin"), dest_parent=gd.root(), dest_name="f.bin", run_id="r",
                   chunk_size=CHUNK, resume_token=started.token)
    checkpoints: list[int] = []
    result = Relay(local, gd).copy(job, lambda token, offset: checkpoints.append(offset))
    assert result.resumed_from == 2 * CHUNK and checkpoints[0] == 2 * CHUNK
    assert result.entry.hashes[HashType.MD5] == hashlib.md5(data).hexdigest()
    assert _read(gd, gd.stat("f.bin")) == data and gd.stat("f.bin").properties["df_run"] == "r"
