"""The provider contract, one suite for every provider (see conformance_providers.FACTORIES).

Each test works in its own fresh folder (`base`). Sizes are derived from the provider's chunk multiple.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conformance_providers import Subject

from driveferry.errors import NotFoundError
from driveferry.integrity.hashes import HashType, MultiHasher, hash_bytes
from driveferry.providers.base import Entry, Kind, Provider, UploadMeta
from driveferry.providers.ops import read_bytes, resolve, upload_bytes, upload_chunks, walk

HERE = Path(__file__).parent


def _data(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def _check_hashes(provider: Provider, entry: Entry, expected: dict[HashType, str]) -> int:
    """Compare every hash the provider reports (or can compute) with `expected`; returns how many."""
    checked = 0
    # a provider that reports none but computes any (local) is checked on every type it computes
    computes = not provider.hash_types and provider.features.content_hasher is not None
    for kind in frozenset(HashType) if computes else provider.hash_types:
        reported = entry.hashes.get(kind)
        if reported is None and provider.features.content_hasher is not None:
            reported = provider.features.content_hasher.hash_file(entry, [kind])[kind]
        if reported is not None:
            assert reported == expected[kind], f"{kind} differs"
            checked += 1
    return checked


@pytest.mark.parametrize("shape", ["0", "1", "chunk-1", "chunk", "chunk+1", "3chunk+5"])
def test_round_trip_sizes(provider: Provider, base: Entry, chunk: int, shape: str) -> None:
    size = {"0": 0, "1": 1, "chunk-1": chunk - 1, "chunk": chunk, "chunk+1": chunk + 1,
            "3chunk+5": 3 * chunk + 5}[shape]
    data = _data(size)
    done = upload_bytes(provider, base, f"f{shape}.bin", data, chunk_size=chunk)
    assert done.kind is Kind.FILE and done.size == size and done.name == f"f{shape}.bin"
    entry = provider.stat(done.path)
    assert entry.id == done.id and entry.size == size
    assert read_bytes(provider, entry) == data
    expected = hash_bytes(data, HashType)
    # an empty file may come without hashes (the OneDrive emulator reports none); others need one
    assert _check_hashes(provider, entry, expected) >= (1 if size else 0)
    for kind, value in done.hashes.items():  # what the upload reports must agree too
        assert value == expected[kind]


@pytest.mark.slow
def test_round_trip_64_mib(provider: Provider, base: Entry, chunk: int) -> None:
    size = 64 << 20
    step = -(-(8 << 20) // chunk) * chunk
    data = _data(size, seed=64)
    done = upload_chunks(provider, base, "big.bin", size, (data[i:i + step] for i in range(0, size, step)))
    entry = provider.stat(done.path)
    assert entry.size == size
    m = MultiHasher(HashType)
    for block in provider.open_range(entry):
        m.update(block)
    expected = hash_bytes(data, HashType)
    assert m.hexdigests() == expected
    assert _check_hashes(provider, entry, expected) >= 1


def test_listed_entries_carry_the_same_hashes(provider: Provider, base: Entry) -> None:
    data = _data(1000)
    upload_bytes(provider, base, "h.bin", data)
    (listed,) = [e for e in provider.list(base) if e.name == "h.bin"]
    assert listed.size == 1000
    assert _check_hashes(provider, listed, hash_bytes(data, HashType)) >= 1


def test_send_is_idempotent_per_offset(provider: Provider, base: Entry, chunk: int) -> None:
    data = _data(2 * chunk + 3)
    session = provider.begin_upload(base, "idem.bin", len(data), UploadMeta())
    assert session.committed() == 0
    assert session.send(0, data[:chunk], False) is None
    assert session.send(0, data[:chunk], False) is None  # again: harmless
    assert session.committed() == chunk
    session.send(chunk, data[chunk:2 * chunk], False)
    done = session.send(2 * chunk, data[2 * chunk:], True)
    if done is None:
        done = session.send(len(data), b"", True)
    assert done is not None
    assert read_bytes(provider, provider.stat(done.path)) == data


def test_send_takes_any_buffer_and_keeps_no_reference(provider: Provider, base: Entry, chunk: int) -> None:
    """The relay sends views of one reused buffer: every adapter must accept bytearray and memoryview
    chunks and be done with them when `send` returns (the buffer is overwritten right after)."""
    data = _data(2 * chunk + 5)
    buf = bytearray(chunk)
    session = provider.begin_upload(base, "views.bin", len(data), UploadMeta())
    done = None
    for offset in range(0, len(data), chunk):
        piece = data[offset:offset + chunk]
        buf[:len(piece)] = piece
        view = memoryview(buf)[:len(piece)] if offset else buf
        done = session.send(offset, view, offset + len(piece) >= len(data))
        buf[:] = bytes(len(buf))  # scribble over it: a kept reference would now upload zeros
    if done is None:
        done = session.send(len(data), b"", True)
    assert done is not None
    assert read_bytes(provider, provider.stat(done.path)) == data
    assert _check_hashes(provider, done, hash_bytes(data, HashType)) >= 1


def test_abort_leaves_nothing(provider: Provider, base: Entry, chunk: int) -> None:
    session = provider.begin_upload(base, "gone.bin", 2 * chunk, UploadMeta())
    session.send(0, _data(chunk), False)
    session.abort()
    assert [e.name for e in provider.list(base)] == []
    with pytest.raises(NotFoundError):
        provider.stat(f"{base.path}/gone.bin")


@pytest.mark.slow
def test_listing_2500_entries_across_pages(subject: Subject, provider: Provider, base: Entry) -> None:
    folder = provider.mkdir(base, "many")
    names = [f"f{i:04d}.txt" for i in range(2500)]
    if subject.populate is not None:
        subject.populate(provider, folder, names)
    else:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda n: upload_bytes(provider, folder, n, b"x"), names))
    listed = [e.name for e in provider.list(folder)]
    assert len(listed) == len(names) and sorted(listed) == names
    walked = [w.rel_path for w in walk(provider, base)]
    assert len(walked) == 2501 and walked[0] == "many"


def test_resume_in_new_process_after_kill(subject: Subject, provider: Provider, base: Entry,
                                          chunk: int, state_dir: Path) -> None:
    size, seed = 5 * chunk + 11, 1234
    args = {"section": dict(subject.section), "state_dir": str(state_dir), "parent_path": base.path,
            "name": "resumed.bin", "size": size, "chunk": chunk, "seed": seed, "chunks": 2}
    child = subprocess.Popen([sys.executable, str(HERE / "upload_child.py"), json.dumps(args)],
                             stdout=subprocess.PIPE, text=True, cwd=HERE)
    try:
        token_line = child.stdout.readline() if child.stdout else ""
        sent_line = child.stdout.readline() if child.stdout else ""
        assert token_line.startswith("TOKEN ") and sent_line.startswith("SENT "), (token_line, sent_line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    token = token_line[len("TOKEN "):].rstrip("\n")
    data = random.Random(seed).randbytes(size)
    session = provider.resume_upload(token)
    committed = session.committed()
    assert committed == 2 * chunk
    offset, done = committed, None
    while offset < size:
        piece = data[offset:offset + chunk]
        done = session.send(offset, piece, offset + len(piece) >= size)
        offset += len(piece)
    assert done is not None
    entry = provider.stat(done.path)
    assert entry.size == size and read_bytes(provider, entry) == data
    assert _check_hashes(provider, entry, hash_bytes(data, HashType)) >= 1


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_unicode_names(provider: Provider, base: Entry, form: str) -> None:
    name = unicodedata.normalize(form, "Café Ñandú – résumé 日本語.txt")  # type: ignore[arg-type]
    folder = provider.mkdir(base, unicodedata.normalize(form, "dossier é"))  # type: ignore[arg-type]
    upload_bytes(provider, folder, name, b"unicode")
    (listed,) = list(provider.list(folder))
    assert unicodedata.normalize("NFC", listed.name) == unicodedata.normalize("NFC", name)
    assert read_bytes(provider, provider.stat(listed.path)) == b"unicode"


@pytest.mark.parametrize("name", ["L" * 240 + ".bin", "é" * 100 + ".txt"])
def test_long_names(provider: Provider, base: Entry, name: str) -> None:
    done = upload_bytes(provider, base, name, b"long")
    assert done.name == name
    assert read_bytes(provider, provider.stat(done.path)) == b"long"
    assert [e.name for e in provider.list(base)] == [name]


def test_mkdir_is_idempotent(provider: Provider, base: Entry) -> None:
    first = provider.mkdir(base, "d")
    second = provider.mkdir(base, "d")
    assert first.id == second.id and first.kind is Kind.FOLDER
    assert [e.name for e in provider.list(base)] == ["d"]
    assert resolve(provider, first.path).id == first.id


def test_delete_file_and_folder(provider: Provider, base: Entry) -> None:
    f = upload_bytes(provider, base, "x.txt", b"x")
    provider.delete(f)
    with pytest.raises(NotFoundError):
        provider.stat(f.path)
    d = provider.mkdir(base, "d")
    inner = upload_bytes(provider, d, "y.txt", b"y")
    provider.delete(d)
    for path in (d.path, inner.path):
        with pytest.raises(NotFoundError):
            provider.stat(path)
    assert list(provider.list(base)) == []


def test_stat_missing_raises_not_found(provider: Provider, base: Entry) -> None:
    for path in (f"{base.path}/nope.txt", f"{base.path}/no/such/thing"):
        with pytest.raises(NotFoundError):
            provider.stat(path)


def test_open_range_partial(provider: Provider, base: Entry, chunk: int) -> None:
    data = _data(2 * chunk + 17, seed=3)
    entry = provider.stat(upload_bytes(provider, base, "r.bin", data, chunk_size=chunk).path)
    n = len(data)
    for start, end in [(0, 1), (5, 17), (chunk - 3, chunk + 3), (n - 3, None), (n - 1, n), (0, None), (7, 7)]:
        assert read_bytes(provider, entry, start, end) == data[start:end], (start, end)
