"""Pure logic of migrate: sizes, settings, filters, the daily budget, provenance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driveferry.errors import QuotaExceededError, UserError
from driveferry.integrity.hashes import HashType
from driveferry.integrity.provenance import MD5, SRC_ID, SRC_QXH, Provenance, provenance_properties
from driveferry.migrate.destination import _proven_copy
from driveferry.migrate.plan import Filters
from driveferry.migrate.quota import WINDOW, QuotaStop, UploadBudget, Usage, quota_stop_of, quota_wait_s
from driveferry.migrate.settings import build_settings, redact_url
from driveferry.providers.base import Entry, Kind
from driveferry.units import format_size, parse_duration, parse_size


@pytest.mark.parametrize("text,expected", [
    ("0", 0), ("1024", 1024), ("10M", 10 * 2**20), ("10MiB", 10 * 2**20), ("10MB", 10 * 10**6),
    ("1.5G", int(1.5 * 2**30)), ("256KiB", 262144), ("750GB", 750 * 10**9), (" 2 k ", 2048),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "ten", "10X", "-5", "1..2M"])
def test_parse_size_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


def test_durations_and_format() -> None:
    assert parse_duration("90s") == 90 and parse_duration("15m") == 900 and parse_duration("2h") == 7200
    assert format_size(1536) == "1.5 KiB" and format_size(10) == "10 B"


def test_settings_validation_names_the_flag() -> None:
    s = build_settings({"source": "a:", "destination": "b:", "chunk_size": "10MiB", "include": "*.mp4"})
    assert s.chunk_size == 10 * 2**20 and s.include == ("*.mp4",) and s.transfers == 4
    with pytest.raises(UserError, match="transfers"):
        build_settings({"source": "a:", "destination": "b:", "transfers": 0})
    with pytest.raises(UserError, match="chunk-size"):
        build_settings({"source": "a:", "destination": "b:", "chunk_size": "1K"})
    with pytest.raises(UserError, match="bad value for --min-size"):
        build_settings({"source": "a:", "destination": "b:", "min_size": "lots"})
    with pytest.raises(UserError, match="missing destination"):
        build_settings({"source": "a:"})


def test_redact_url_hides_password() -> None:
    assert redact_url("postgresql://me:s3cret@db:5432/j") == "postgresql://me:***@db:5432/j"
    assert "s3cret" not in str(build_settings({"source": "a:", "destination": "b:",
                                               "journal": "postgresql://me:s3cret@db/j"}).redacted())


def test_filters() -> None:
    f = Filters(include=("*.mp4", "keep/*"), exclude=("*/tmp/*",), min_size=10, max_size=100)
    assert f.wants("a/b.mp4", 50)
    assert f.wants("keep/x.txt", 50)
    assert not f.wants("a/b.txt", 50)
    assert not f.wants("a/tmp/b.mp4", 50)
    assert not f.wants("a/b.mp4", 5) and not f.wants("a/b.mp4", 500)
    with pytest.raises(UserError, match="malformed glob"):
        Filters(include=("[abc",))
    with pytest.raises(UserError, match="min-size"):
        Filters(min_size=10, max_size=5)


def test_budget_rolls_over_24h() -> None:
    records: list[tuple[int, datetime]] = []
    now = [datetime(2026, 1, 1, tzinfo=UTC)]

    def usage(since: datetime) -> Usage:
        inside = [(n, t) for n, t in records if t >= since]
        return Usage(sum(n for n, _ in inside), min((t for _, t in inside), default=None))

    b = UploadBudget(usage, lambda n, t: records.append((n, t)), lambda: now[0], limit_bytes=1000, flush_s=0)
    b.admit(600)
    b.sent(600)
    now[0] += timedelta(hours=1)
    b.admit(400)
    b.sent(400)
    with pytest.raises(QuotaStop) as stop:
        b.admit(1)
    assert stop.value.resets_at == datetime(2026, 1, 1, tzinfo=UTC) + WINDOW and stop.value.waitable
    now[0] = datetime(2026, 1, 2, 0, 0, 1, tzinfo=UTC)  # the first 600 bytes left the window
    b.admit(600)
    assert sum(n for n, _ in records) == 1000


def test_budget_lets_a_file_start_while_budget_remains_however_large() -> None:
    """Drive's rule (admin help 172541): a file starts while the window holds less than the cap, even
    one larger than what is left or than the whole cap; it is counted as it is sent, and only the next
    file is refused."""
    records: list[tuple[int, datetime]] = []
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    usage = lambda since: Usage(sum(n for n, t in records if t >= since), min((t for _, t in records), default=None))  # noqa: E731
    b = UploadBudget(usage, lambda n, t: records.append((n, t)), lambda: now[0], limit_bytes=1000, flush_s=0)
    b.sent(700)  # 300 left
    b.admit(5000)  # five times the whole cap: starts
    for _ in range(50):
        b.sent(100)
    with pytest.raises(QuotaStop):
        b.admit(1)
    assert sum(n for n, _ in records) == 5700


def test_budget_batches_records_but_never_undercounts() -> None:
    records: list[tuple[int, datetime]] = []
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    usage = lambda since: Usage(sum(n for n, t in records if t >= since), min((t for _, t in records), default=None))  # noqa: E731
    b = UploadBudget(usage, lambda n, t: records.append((n, t)), lambda: now[0], limit_bytes=1000, flush_s=60)
    for _ in range(10):
        b.admit(100)
        b.sent(100)
    assert sum(n for n, _ in records) < 1000  # batched: not every file was a journal write
    with pytest.raises(QuotaStop):
        b.admit(1)  # unflushed bytes still count against the cap
    b.flush()
    assert sum(n for n, _ in records) == 1000


def test_max_transfer_per_run() -> None:
    b = UploadBudget(lambda s: Usage(0, None), lambda n, t: None, lambda: datetime.now(UTC),
                     limit_bytes=None, max_transfer_bytes=100)
    b.admit(60)
    with pytest.raises(QuotaStop, match="max-transfer") as stop:
        b.admit(41)
    assert not stop.value.waitable


def test_quota_waits_obey_the_time_scale() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    soon = QuotaStop("cap", now + timedelta(minutes=10))
    assert quota_wait_s(soon, now) == 600
    assert quota_wait_s(soon, now, time_scale=100) == 6
    unknown = QuotaStop("cap", None)  # the destination said nothing of when: look again after an hour
    assert quota_wait_s(unknown, now, time_scale=3600) == 1


def test_storage_full_is_its_own_stop() -> None:
    stop = quota_stop_of(QuotaExceededError("HTTP 403 quotaExceeded", kind="storage"))
    assert not stop.waitable and stop.reason.startswith("destination storage full")


def _entry(eid: str, size: int, hashes: dict[HashType, str], props: dict[str, str] | None = None) -> Entry:
    return Entry(id=eid, path="x", name="x", kind=Kind.FILE, size=size, hashes=hashes, properties=props or {})


def test_provenance_and_proven_copy() -> None:
    src = _entry("SRC1", 5, {HashType.QUICKXOR: "ab" * 20})
    content = {HashType.MD5: "11" * 16, HashType.SHA256: "22" * 32}
    props = provenance_properties(src, "run1", content)
    assert props[SRC_ID] == "SRC1" and props[SRC_QXH] == "ab" * 20 and props[MD5] == "11" * 16
    assert Provenance.read(props) is not None and Provenance.read({}) is None
    good = _entry("D1", 5, content, props)
    assert _proven_copy(good, src)
    stale = _entry("D2", 5, {HashType.MD5: "33" * 16, HashType.SHA256: "22" * 32}, props)
    assert not _proven_copy(stale, src)  # the destination holds other bytes than the provenance says
    changed = _entry("SRC1", 5, {HashType.QUICKXOR: "cd" * 20})
    assert not _proven_copy(good, changed)  # the source changed since the copy
    assert not _proven_copy(_entry("D3", 5, content), src)  # no provenance: not ours


def test_rechunk_exact_sizes_and_bytes_through_one_buffer() -> None:
    from driveferry.migrate.relay import rechunk
    data = bytes(range(256)) * 40  # 10,240 bytes in uneven blocks of every buffer type
    cuts = [0, 1, 700, 701, 5000, 9999, 10240]
    blocks: list[bytes | bytearray | memoryview] = [data[i:j] for i, j in zip(cuts, cuts[1:], strict=False)]
    blocks[1], blocks[3] = bytearray(blocks[1]), memoryview(blocks[3])
    buf = bytearray(1024)
    seen = []
    for chunk in rechunk(blocks, buf):
        assert chunk.obj is buf  # a view of the one buffer: nothing allocated per chunk
        seen.append(bytes(chunk))  # the consumer uses a chunk before asking for the next
    assert [len(c) for c in seen] == [1024] * 10 and b"".join(seen) == data
    assert [len(c) for c in rechunk([data[:1500]], buf)] == [1024, 476]
    assert [bytes(c) for c in rechunk([data[:1500]], buf)][-1] == data[1024:1500]
    assert list(rechunk([], buf)) == [] and list(rechunk([b""], buf)) == []
    assert [bytes(c) for c in rechunk([b"", b"extra"], bytearray())] == [b"extra"]  # none expected, some came


@pytest.mark.parametrize("reads", ["blocks", "readinto"])
def test_rechunk_hashes_each_chunk_in_spans_before_handing_it_out(monkeypatch: pytest.MonkeyPatch, reads: str) -> None:
    """With a hasher, every byte handed out is hashed once, in order, and a chunk is hashed whole by the
    time it is handed out (the relay's gate and the upload rely on it), whatever the spans and reads."""
    import hashlib
    import io

    from driveferry.integrity.hashes import HashType, MultiHasher
    from driveferry.providers import streaming
    monkeypatch.setattr(streaming, "HASH_SPAN_BYTES", 300)  # spans cross reads and chunks unevenly
    data = bytes(range(256)) * 40 + b"tail"

    class Trickle(io.RawIOBase):  # readinto hands out at most 97 bytes at a time, as a socket does
        def __init__(self) -> None:
            self.pos = 0

        def readinto(self, view: Any) -> int:
            n = min(97, len(view), len(data) - self.pos)
            view[:n] = data[self.pos:self.pos + n]
            self.pos += n
            return n

    cuts = [0, 1, 700, 701, 5000, 9999, len(data)]
    stream: Any = Trickle() if reads == "readinto" else [data[i:j] for i, j in zip(cuts, cuts[1:], strict=False)]
    hasher = MultiHasher([HashType.SHA256])
    seen = b""
    for chunk in streaming.rechunk(stream, bytearray(1024), hasher):
        seen += bytes(chunk)
        assert hasher.length == len(seen)  # the chunk handed out is already hashed, and nothing beyond it
    assert seen == data
    assert hasher.hexdigests()[HashType.SHA256] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("actual", [b"short", b""])
def test_small_file_whose_bytes_disagree_with_its_size_is_refused_before_upload(tmp_path: Path, actual: bytes) -> None:
    from dataclasses import replace

    from driveferry.errors import IntegrityError
    from driveferry.migrate.relay import Relay, RelayJob
    from driveferry.providers.local import LocalProvider
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    uploads: list[str] = []

    class Dest(LocalProvider):
        def begin_upload(self, parent: Entry, name: str, size: int, meta: Any) -> Any:
            uploads.append(name)
            return super().begin_upload(parent, name, size, meta)

    src, dst = LocalProvider(tmp_path / "src", name="src"), Dest(tmp_path / "dst", name="dst")
    (tmp_path / "src" / "f.bin").write_bytes(b"0123456789")
    planned = src.stat("f.bin")  # 10 bytes when planned; then the file changed under the relay
    (tmp_path / "src" / "f.bin").write_bytes(actual)
    job = RelayJob(source=replace(planned, hashes={}), dest_parent=dst.root(), dest_name="f.bin", run_id="r",
                   chunk_size=1 << 20)
    with pytest.raises(IntegrityError) as err:
        Relay(src, dst).copy(job, lambda token, offset: None)
    assert err.value.expected == "10"
    assert uploads == []  # refused before any upload began (not committed and then deleted)
    assert [p.name for p in (tmp_path / "dst").iterdir()] == []
