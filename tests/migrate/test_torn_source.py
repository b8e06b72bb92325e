"""A local source that changes while (or before) it is copied never ends as a proven copy of a state
it never had: the read is bracketed by two fstats (providers/local.py) and the relay withholds the last
chunk until the source is read to its end (providers/streaming.py), so the attempt fails with nothing
committed, and the next attempt copies the file as it is then, proven."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driveferry.errors import IntegrityError
from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.migrate.relay import Relay, RelayJob
from driveferry.providers.base import Entry, Features
from driveferry.providers.local import LocalProvider

CHUNK = 1 << 20


class _Meddling:
    """The local provider, with `meddle()` run after the first block of every read has been handed out."""

    def __init__(self, inner: LocalProvider, meddle: Any) -> None:
        self._inner = inner
        self._meddle = meddle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def open_range(self, entry: Entry, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        for i, block in enumerate(self._inner.open_range(entry, start, end)):
            yield block
            if i == 0:
                self._meddle()


def _trees(tmp_path: Path) -> tuple[LocalProvider, LocalProvider, Path, Path]:
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    return LocalProvider(tmp_path / "src"), LocalProvider(tmp_path / "dst"), tmp_path / "src", tmp_path / "dst"


def _copy(relay: Relay, dst: LocalProvider, entry: Entry) -> Any:
    job = RelayJob(entry, dst.root(), entry.name, "run-1", CHUNK)
    return relay.copy(job, lambda token, offset: None)


def _nothing_in(folder: Path) -> None:
    assert sorted(os.listdir(folder)) == []  # no file, and no partial upload left behind


def test_planned_at_ten_bytes_grown_to_twenty_is_not_copied(tmp_path: Path) -> None:
    src, dst, src_dir, dst_dir = _trees(tmp_path)
    (src_dir / "f.txt").write_bytes(b"ABCDEFGHIJ")
    planned = src.stat("f.txt")
    with open(src_dir / "f.txt", "ab") as fh:
        fh.write(b"KLMNOPQRST")
    with pytest.raises(IntegrityError, match="changed since it was listed"):
        _copy(Relay(src, dst), dst, planned)
    _nothing_in(dst_dir)
    result = _copy(Relay(src, dst), dst, src.stat("f.txt"))  # the next attempt sees the file as it is
    assert (dst_dir / "f.txt").read_bytes() == b"ABCDEFGHIJKLMNOPQRST" and result.proven


@pytest.mark.parametrize("how", ["grows", "same_size_rewrite_mtime_restored"])
def test_change_during_the_read_fails_the_attempt_with_nothing_committed(tmp_path: Path, how: str) -> None:
    src, dst, src_dir, dst_dir = _trees(tmp_path)
    path = src_dir / "big.bin"
    data = os.urandom(3 * CHUNK + 5)  # several chunks: the change lands after the first was sent
    path.write_bytes(data)
    entry = src.stat("big.bin")
    st = os.stat(path)

    def meddle() -> None:
        if how == "grows":
            with open(path, "ab") as fh:
                fh.write(b"more")
        else:
            with open(path, "r+b") as fh:
                fh.seek(len(data) - 10)
                fh.write(b"0123456789")
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    with pytest.raises(IntegrityError, match="changed while it was read"):
        _copy(Relay(_Meddling(src, meddle), dst), dst, entry)  # type: ignore[arg-type]
    _nothing_in(dst_dir)
    now = path.read_bytes()
    result = _copy(Relay(src, dst), dst, src.stat("big.bin"))
    assert (dst_dir / "big.bin").read_bytes() == now and result.proven
    assert result.hashes[HashType.SHA256] == hash_bytes(now, [HashType.SHA256])[HashType.SHA256]


def test_small_file_changed_during_its_read_is_not_uploaded(tmp_path: Path) -> None:
    src, dst, src_dir, dst_dir = _trees(tmp_path)
    path = src_dir / "s.bin"
    path.write_bytes(b"x" * (2 * (1 << 20)))  # one relay chunk of 4 MiB, two 1 MiB read blocks
    entry = src.stat("s.bin")

    def meddle() -> None:
        with open(path, "ab") as fh:
            fh.write(b"y")

    relay = Relay(_Meddling(src, meddle), dst)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError, match="changed while it was read"):
        relay.copy(RelayJob(entry, dst.root(), "s.bin", "run-1", 4 << 20), lambda token, offset: None)
    _nothing_in(dst_dir)


class _BlindSession:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send(self, offset: int, chunk: Any, last: bool) -> Entry | None:
        done = self._inner.send(offset, chunk, last)
        return None if done is None else Entry(**{**done.__dict__, "hashes": {}})


class _Blind:
    """A destination that reports no hash for what it stored and cannot compute one."""

    def __init__(self, inner: LocalProvider) -> None:
        self._inner = inner
        self.features = Features()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def begin_upload(self, *args: Any) -> _BlindSession:
        return _BlindSession(self._inner.begin_upload(*args))


def test_a_destination_that_reports_no_hash_gives_an_unverified_copy(tmp_path: Path) -> None:
    src, dst, src_dir, dst_dir = _trees(tmp_path)
    (src_dir / "f.txt").write_bytes(b"hello")
    blind = _Blind(dst)
    result = Relay(src, blind).copy(RelayJob(src.stat("f.txt"), dst.root(), "f.txt", "run-1", CHUNK),  # type: ignore[arg-type]
                                    lambda token, offset: None)
    assert (dst_dir / "f.txt").read_bytes() == b"hello"
    assert not result.proven  # kept, but counted unverified, never as proven
