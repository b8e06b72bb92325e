"""The retry layer over real HTTP against the emulator: a fault in the middle of a large chunked upload
is retried in place (the relay neither re-reads the source nor re-sends what the server holds), and the
User-Agent reaches both clouds."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driveferry.emulator.remotes import remote_sections
from driveferry.emulator.seed import content_bytes, seed_emulator
from driveferry.emulator.server import Emulator
from driveferry.migrate.relay import Relay, RelayJob
from driveferry.providers.base import UploadMeta
from driveferry.providers.pacing import RetryEvent
from driveferry.providers.registry import provider_from_section
from emulator_client import EmulatorClient

MiB = 1 << 20
SIZE = 50 * MiB
CHUNK = 10 * MiB  # a multiple of both 256 KiB (Drive) and 320 KiB (Graph)
SEED = 11
# (source cloud, destination cloud, the destination's chunk route, the source's download route)
DIRECTIONS = [("onedrive", "gdrive", "drive.upload.chunk", "graph.download"),
              ("gdrive", "onedrive", "graph.upload.fragment", "drive.files.media")]


class Emu(EmulatorClient):
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu


@pytest.fixture()
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu", tls=True) as e:
        seed_emulator(e, {"seed": SEED, "onedrive": {"files": [{"path": "big/f.bin", "size": SIZE}]},
                          "gdrive": {"files": [{"path": "big/f.bin", "size": SIZE}]}})
        yield e


def provider(emu: Emulator, cloud: str, tmp_path: Path, **extra: Any) -> Any:
    """A provider as build_provider makes it (wrapped in the retry layer), under a remote name of its
    own (pacers are per remote name), on a clock scaled 1000x so backoff takes milliseconds."""
    section = {**remote_sections(emu.describe())[cloud], "time_scale": 1000, **extra}
    return provider_from_section(f"{cloud}-{uuid.uuid4().hex[:6]}", section, tmp_path / "state")


@pytest.mark.parametrize("src_cloud,dst_cloud,chunk_route,read_route", DIRECTIONS)
def test_fault_mid_upload_is_resent_in_place(emu: Emulator, tmp_path: Path, src_cloud: str, dst_cloud: str,
                                             chunk_route: str, read_route: str) -> None:
    client = Emu(emu)
    src, dst = provider(emu, src_cloud, tmp_path), provider(emu, dst_cloud, tmp_path)
    events: list[RetryEvent] = []
    dst.pacer.observers.append(events.append)
    entry = src.stat("big/f.bin")
    # one 503 on the third chunk request, one connection reset in the middle of the fifth
    client.control("PUT", "/faults", {"seed": 7, "rules": [
        {"kind": "status", "route": chunk_route, "status": 503, "code": "backendError", "after": 2, "count": 1},
        {"kind": "reset", "route": chunk_route, "after": 4, "count": 1}]})
    client.control("POST", "/counters/reset")
    result = Relay(src, dst).copy(RelayJob(entry, dst.root(), "copy.bin", "run-1", CHUNK), lambda t, o: None)
    counters = client.control("GET", "/counters")
    rules = client.control("GET", "/faults")["rules"]
    client.control("PUT", "/faults", {"rules": []})

    assert [r["fired"] for r in rules] == [1, 1]
    expected = content_bytes(SEED, src_cloud, "big/f.bin", SIZE, "random")
    got = b"".join(dst.open_range(dst.stat("copy.bin")))
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert result.bytes_uploaded == SIZE
    # the source was read once: no prefix re-read after the faults (at most one chunk in flight)
    assert SIZE <= counters["bytes_out"][read_route] <= SIZE + CHUNK
    # the destination got each byte about once: the failed chunk was re-sent, no earlier one
    assert counters["bytes_in"][chunk_route] <= SIZE + 2 * CHUNK
    # the 503 always reaches the retry layer; the reset does too, unless the HTTP library re-sent that
    # request itself: httplib2 (under Drive's client) reconnects and re-sends once when the first try
    # ends in BadStatusLine/RemoteDisconnected (Http._conn_request), whereas a reset while sending
    # reaches us; which one happens depends on timing. The byte counts above bound both the same way.
    assert events and all(e.remote == dst.name for e in events)
    assert any("503" in e.reason for e in events)


class _RecordAgents:
    """Wraps the emulator's per-request realism hook to note the User-Agent each API route received."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: dict[str, set[str]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def before(self, req: Any) -> Any:
        self.seen.setdefault(str(req.route), set()).add(str(req.headers.get("User-Agent") or ""))
        return self.inner.before(req)


def test_every_request_names_driveferry_and_its_version(emu: Emulator, tmp_path: Path) -> None:
    from driveferry import __version__
    if not hasattr(emu, "realism"):
        pytest.skip("this emulator has no per-request hook")
    recorder = _RecordAgents(emu.realism)
    emu.realism = recorder  # type: ignore[attr-defined]
    src, dst = provider(emu, "onedrive", tmp_path), provider(emu, "gdrive", tmp_path)
    small = src.stat("big/f.bin")
    head = b"".join(src.open_range(small, 0, 1000))
    session = dst.begin_upload(dst.root(), "ua.bin", len(head), UploadMeta())
    assert session.send(0, head, True) is not None
    assert "ua.bin" in [e.name for e in dst.list(dst.root())]
    assert {"graph.item", "graph.download", "drive.files.list", "drive.upload.initiate",
            "drive.upload.chunk"} <= set(recorder.seen)
    assert any(r.startswith("identity.google") for r in recorder.seen)  # Google's token refresh too
    assert any(r.startswith("identity.ms") for r in recorder.seen)  # Microsoft sign-in, through MSAL
    for route, agents in recorder.seen.items():
        assert agents and all(f"driveferry/{__version__}" in a for a in agents), (route, agents)


def test_graph_fragment_404_right_after_creation_is_retried(tmp_path: Path) -> None:
    """Under the realism profile the first fragment of every Graph session answers 404 (api-notes Part C
    §18): the session wrapper waits (5 s, scaled) and sends the same fragment again, so the file is copied
    in one go, without a new session or a re-read of the source."""
    import tomllib

    from driveferry.emulator.realism.hook import Realism
    from driveferry.emulator.realism.settings import Settings
    root = Path(__file__).resolve().parents[2]
    profile = tomllib.loads((root / "configs/emulator/real.toml").read_text())
    assert profile["graph"]["fragment_404_count"] >= 1
    realism = Realism(Settings.from_dict({**profile, "clock_scale": 100.0}))
    sizes = {"small.bin": 3 * MiB, "chunked.bin": 23 * MiB}  # one request; three chunks
    with Emulator(tmp_path / "emu", tls=True, realism=realism) as e:
        seed_emulator(e, {"seed": SEED, "gdrive": {"files": [{"path": f"in/{n}", "size": s} for n, s in sizes.items()]}})
        client = Emu(e)
        src, dst = provider(e, "gdrive", tmp_path, time_scale=100), provider(e, "onedrive", tmp_path, time_scale=100)
        events: list[RetryEvent] = []
        dst.pacer.observers.append(events.append)
        for name, size in sizes.items():
            entry = src.stat(f"in/{name}")
            Relay(src, dst).copy(RelayJob(entry, dst.root(), name, "run-1", CHUNK), lambda t, o: None)
            got = b"".join(dst.open_range(dst.stat(name)))
            assert got == content_bytes(SEED, "gdrive", f"in/{name}", size, "random"), name
        counters = client.control("GET", "/counters")
        realism_counts = client.control("GET", "/realism")["counters"]
    # a session's first fragment 404s only if it comes within 10 emulated seconds (0.1 s here) of the
    # session's creation; the small file's always does
    lost = realism_counts.get("graph.fragment_404", 0)
    assert lost >= 1
    assert sum(1 for ev in events if "404" in ev.reason) == lost  # each one waited out once
    assert counters["requests"]["graph.upload.create"] == len(sizes)  # no session was given up
