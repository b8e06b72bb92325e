"""Graph downloads read straight into the caller's buffer (`Download.readinto`, issue #15), over real
HTTPS against the emulator: the same bytes as iterating, for every range and buffer size; through
truncated and reset bodies, ranged requests answered 200 with the whole body, and expired URLs; and
each finished body gives its connection back to the pool (one TLS connection for many files)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from test_onedrive_emulator import graph_model, ms_section

from driveferry.emulator.server import Emulator
from driveferry.providers.base import Entry
from driveferry.providers.onedrive import OneDriveProvider, from_remote_config
from driveferry.providers.onedrive.download import Download
from driveferry.providers.pacing import Pacer
from driveferry.providers.retrying import RetryingProvider, RetryPolicy
from driveferry.providers.streaming import rechunk

pytest.importorskip("driveferry.emulator.graph.routes")
pytest.importorskip("driveferry.emulator.identity_microsoft")

FAST = RetryPolicy(max_attempts=40, base_delay_s=0.01, max_delay_s=0.05, first_contact_attempts=30)


def seeded(p: OneDriveProvider, emu: Emulator, sizes: list[int]) -> list[tuple[Entry, bytes]]:
    """Files of `sizes` random bytes, written into the emulator's model, then stat'ed through the adapter."""
    folder = p.mkdir(p.root(), f"r-{uuid.uuid4().hex[:8]}")
    out = []
    for i, n in enumerate(sizes):
        data = os.urandom(n)
        graph_model(emu).create_file(folder.id, f"f{i}.bin", [data])
        out.append((p.stat(f"{folder.path}/f{i}.bin"), data))
    return out


def read_chunks(stream: Any, chunk: int) -> tuple[bytes, list[int]]:
    """What the relay does with a download: `rechunk` into one reused buffer; the bytes and chunk sizes."""
    got, sizes = bytearray(), []
    for piece in rechunk(stream, bytearray(chunk)):
        got += piece
        sizes.append(len(piece))
    return bytes(got), sizes


def put_faults(emu: Emulator, rules: list[dict[str, Any]]) -> str:
    url = emu.base_url + "/_emulator/faults"
    requests.put(url, json={"seed": 5, "rules": rules}, verify=str(emu.ca_file)).raise_for_status()
    return url


def fired(emu: Emulator, url: str) -> dict[str, int]:
    rules = requests.get(url, verify=str(emu.ca_file)).json()["rules"]
    return {r["kind"]: r["fired"] for r in rules}


@pytest.fixture()
def od(fresh_emulator: Emulator, tmp_path: Path) -> OneDriveProvider:
    return from_remote_config(ms_section(fresh_emulator), name="onedrive", state_dir=tmp_path / "state")


def test_readinto_gives_the_same_bytes_for_every_range_and_buffer(od: OneDriveProvider,
                                                                   fresh_emulator: Emulator) -> None:
    [(entry, data)] = seeded(od, fresh_emulator, [3 * 1024 * 1024 + 12345])
    stream = od.open_range(entry)
    assert isinstance(stream, Download) and hasattr(stream, "readinto")
    for chunk in (7, 64 * 1024, 1 << 20, 8 << 20):
        for start, end in [(0, None), (1000, 5000), (len(data) - 5, None), (10, 10_000_000)]:
            got, sizes = read_chunks(od.open_range(entry, start, end), chunk)
            want = data[start:end]
            assert got == want
            full, rest = divmod(len(want), chunk)
            assert sizes == [chunk] * full + ([rest] if rest else [])  # exact chunks, the last short
    assert read_chunks(od.open_range(entry, len(data)), 1 << 20) == (b"", [])


def test_finished_bodies_give_their_connection_back(od: OneDriveProvider, fresh_emulator: Emulator,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    files = seeded(od, fresh_emulator, [2 * 1024 * 1024 + 1, 700_000, 5, 1 << 20, 300_001])
    connects = []
    real_connect = urllib3.connection.HTTPSConnection.connect

    def counted(self: urllib3.connection.HTTPSConnection) -> None:
        connects.append(self.host)
        real_connect(self)

    monkeypatch.setattr(urllib3.connection.HTTPSConnection, "connect", counted)
    for entry, data in files:
        assert read_chunks(od.open_range(entry), 1 << 20)[0] == data
    # the metadata calls before made the one connection: a body read past urllib3 and not handed
    # back would be closed, and the next file would pay a new connection and TLS handshake
    assert connects == []
    half = od.open_range(files[0][0])
    assert half.readinto(memoryview(bytearray(1000))) == 1000
    half.close()  # abandoned half-read: its connection cannot be reused, and is not
    assert read_chunks(od.open_range(files[1][0]), 1 << 20)[0] == files[1][1]
    assert len(connects) == 1


def test_readinto_through_truncated_and_reset_bodies(fresh_emulator: Emulator, tmp_path: Path) -> None:
    p = RetryingProvider(from_remote_config(ms_section(fresh_emulator), name="onedrive", state_dir=tmp_path),
                         FAST, Pacer("onedrive-readinto"))
    files = seeded(p.inner, fresh_emulator, [4 * 1024 * 1024 + 777, 1_500_000])  # type: ignore[arg-type]
    url = put_faults(fresh_emulator, [{"kind": "truncate", "route": "graph.download", "rate": 0.5},
                                      {"kind": "reset", "route": "graph.download", "rate": 0.2}])
    for entry, data in files:
        stream = p.open_range(entry)
        assert hasattr(stream, "readinto")
        assert read_chunks(stream, 1 << 20)[0] == data
        for start in (1, 123_457, 999_999):
            assert read_chunks(p.open_range(entry, start, len(data) - 99), 256 * 1024)[0] == data[start:-99]
    counts = fired(fresh_emulator, url)
    assert counts["truncate"] + counts["reset"] >= 3


def test_a_ranged_download_answered_200_drops_the_bytes_before_the_offset(od: OneDriveProvider,
                                                                           fresh_emulator: Emulator) -> None:
    [(entry, data)] = seeded(od, fresh_emulator, [2 * 1024 * 1024 + 3])
    url = put_faults(fresh_emulator, [{"kind": "ignore_range", "route": "graph.download", "rate": 1.0}])
    start = 1_000_001
    assert read_chunks(od.open_range(entry, start), 1 << 20)[0] == data[start:]
    assert read_chunks(od.open_range(entry, 5, 70_000), 4096)[0] == data[5:70_000]
    assert b"".join(od.open_range(entry, start, start + 10)) == data[start:start + 10]  # iterating too
    assert fired(fresh_emulator, url)["ignore_range"] >= 3


def test_readinto_renews_an_expired_download_url(od: OneDriveProvider, fresh_emulator: Emulator) -> None:
    [(entry, data)] = seeded(od, fresh_emulator, [1_200_000])
    stale = od.client.download_location(entry.id)
    requests.post(fresh_emulator.base_url + "/_emulator/clock", json={"advance_s": 7200},
                  verify=str(fresh_emulator.ca_file))
    got, _ = read_chunks(od.client.download(entry.id, 100, 1_100_000, url=stale), 1 << 20)
    assert got == data[100:1_100_000]
