"""The OneDrive adapter under failure: an upload killed with its process and resumed from the journal
token, and whole transfers through injected throttling (429 + fractional Retry-After), connection resets
in upload bodies and truncated downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.server import Emulator
from driveferry.errors import ThrottledError, TransientError
from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.providers.base import Entry, UploadMeta
from driveferry.providers.onedrive import OneDriveProvider, from_remote_config
from driveferry.providers.onedrive.errors import UploadOutOfSyncError
from driveferry.providers.onedrive.upload import CHUNK_MULTIPLE
from driveferry.providers.pacing import Pacer
from driveferry.providers.retrying import RetryingProvider, RetryPolicy

pytest.importorskip("driveferry.emulator.graph.routes")
pytest.importorskip("driveferry.emulator.identity_microsoft")

FAST = RetryPolicy(max_attempts=30, base_delay_s=0.01, max_delay_s=0.05, first_contact_attempts=30)


def ms_section(emu: Emulator) -> dict[str, Any]:
    creds = emu.credentials()
    ms = creds["microsoft"]
    return {"endpoint": emu.base_url, "ca_file": str(emu.ca_file), "tenant": ms["tenant_id"],
            "client_id": ms["client_id"], "client_secret": ms["client_secret"],
            "drive_id": creds["graph"]["drive_id"]}


def relay_upload(p: OneDriveProvider, parent: Entry, name: str, data: bytes, chunk: int) -> Entry:
    """What the relay does: send chunks, and after any doubt ask the server where to continue."""
    session = p.begin_upload(parent, name, len(data), UploadMeta())
    offset, doubts = 0, 0
    while True:
        piece = data[offset:offset + chunk]
        last = offset + len(piece) >= len(data)
        try:
            result = session.send(offset, piece, last)
        except UploadOutOfSyncError as exc:
            offset = exc.committed_offset
            continue
        except TransientError as exc:
            doubts += 1
            assert doubts < 200, "no progress"
            time.sleep(exc.retry_after_s if isinstance(exc, ThrottledError) else 0.01)
            offset = session.committed()
            continue
        if last:
            assert result is not None
            return result
        offset += len(piece)


def test_upload_killed_with_its_process_resumes_from_token(fresh_emulator: Emulator, tmp_path: Path) -> None:
    data = os.urandom(5 * CHUNK_MULTIPLE + 777)
    (tmp_path / "data.bin").write_bytes(data)
    sec = ms_section(fresh_emulator)
    child = textwrap.dedent("""
        import json, sys, time
        from pathlib import Path
        from driveferry.providers.base import UploadMeta
        from driveferry.providers.onedrive import from_remote_config
        sec, state, src = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
        p = from_remote_config(sec, name="onedrive", state_dir=state)
        data = src.read_bytes()
        s = p.begin_upload(p.root(), "resumed.bin", len(data), UploadMeta())
        cm = s.chunk_multiple
        s.send(0, data[:2 * cm], False)
        print(s.token, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child, json.dumps(sec), str(tmp_path / "state"),
                             str(tmp_path / "data.bin")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        token = proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert token, "the child printed no token"
    p = from_remote_config(sec, name="onedrive", state_dir=tmp_path / "state")
    session = p.resume_upload(token)
    offset = session.committed()
    assert offset == 2 * CHUNK_MULTIPLE
    while offset < len(data):
        piece = data[offset:offset + 2 * CHUNK_MULTIPLE]
        result = session.send(offset, piece, offset + len(piece) == len(data))
        offset += len(piece)
    assert result is not None and result.hashes == hash_bytes(data, [HashType.QUICKXOR])
    assert b"".join(p.open_range(result)) == data


def test_transfers_complete_through_throttling_resets_and_truncation(fresh_emulator: Emulator,
                                                                     tmp_path: Path) -> None:
    p = RetryingProvider(from_remote_config(ms_section(fresh_emulator), name="onedrive", state_dir=tmp_path),
                         FAST, Pacer("onedrive-resilience"))
    root = p.root()
    plan = {"seed": 1, "rules": [
        {"kind": "status", "route": "graph.*", "status": 429, "retry_after": "0.2", "rate": 0.3},
        {"kind": "reset", "route": "graph.upload.fragment", "rate": 0.2},
        {"kind": "truncate", "route": "graph.download", "rate": 0.3},
    ]}
    faults = fresh_emulator.base_url + "/_emulator/faults"
    requests.put(faults, json=plan, verify=str(fresh_emulator.ca_file)).raise_for_status()
    folder = p.mkdir(root, "throttled")
    data = os.urandom(6 * CHUNK_MULTIPLE + 4321)
    entry = relay_upload(p, folder, "t.bin", data, 2 * CHUNK_MULTIPLE)
    assert [e.name for e in p.list(folder)] == ["t.bin"]
    assert p.stat("throttled/t.bin").hashes == hash_bytes(data, [HashType.QUICKXOR])
    assert b"".join(p.open_range(entry)) == data
    assert b"".join(p.open_range(entry, 1000, 3 * CHUNK_MULTIPLE)) == data[1000:3 * CHUNK_MULTIPLE]
    fired = {r["kind"]: r["fired"] for r in requests.get(faults, verify=str(fresh_emulator.ca_file)).json()["rules"]}
    assert fired["status"] > 0 and fired["reset"] + fired["truncate"] > 0


def test_one_provider_shared_by_threads(emulator: Emulator, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor
    p = from_remote_config(ms_section(emulator), name="onedrive", state_dir=tmp_path)
    folder = p.mkdir(p.root(), f"threads-{os.getpid()}-{time.monotonic_ns()}")
    blobs = {f"f{i}.bin": os.urandom(CHUNK_MULTIPLE + i) for i in range(12)}

    def round_trip(name: str) -> bool:
        entry = relay_upload(p, folder, name, blobs[name], CHUNK_MULTIPLE)
        return b"".join(p.open_range(entry)) == blobs[name]

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert all(pool.map(round_trip, blobs))
    assert sorted(e.name for e in p.list(folder)) == sorted(blobs)
