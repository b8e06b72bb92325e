"""The relay streams only the hashes each copy's proof needs (issue #15), over the emulator.

OneDrive -> Drive streams quickXor (the source's check) and SHA-256 (Drive's); Drive's MD5 and SHA-1 are
taken from its answer once the SHA-256 agreed, and recorded as such. `--hashes` streams more. A Drive
answer without sha256Checksum (api-notes 2.1) still proves the copy.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

import pytest
from world import World, drive_tree, read_all

from driveferry.errors import UserError
from driveferry.integrity import provenance as prov
from driveferry.integrity.hashes import HashType
from driveferry.migrate.hash_set import parse_hashes, stream_kinds
from driveferry.migrate.relay import Relay, RelayJob

MD5, SHA1, SHA256, QXH = HashType.MD5, HashType.SHA1, HashType.SHA256, HashType.QUICKXOR
DRIVE = frozenset({MD5, SHA1, SHA256})
CHUNK = 1280 * 1024
TREE: dict[str, Any] = {
    "seed": 15,
    "onedrive": {"files": [{"path": "Projects/big.bin", "size": 3 * CHUNK + 7},
                           {"path": "Projects/small.txt", "size": "20K", "content": "text"}]},
}


def test_the_stream_holds_what_each_pair_needs() -> None:
    qxh, drive_file = {QXH: "ab"}, {MD5: "a", SHA1: "b", SHA256: "c"}
    assert stream_kinds(qxh, DRIVE, whole=False) == {QXH, SHA256}  # OneDrive -> Drive
    assert stream_kinds(qxh, DRIVE, whole=True) == {QXH, SHA256, MD5}  # one request: provenance up front
    assert stream_kinds(drive_file, {QXH}, whole=False) == {SHA256, QXH}  # Drive -> OneDrive
    assert stream_kinds({MD5: "a", SHA1: "b"}, DRIVE, whole=False) == {SHA1, SHA256}  # a file without sha256
    assert stream_kinds({}, frozenset(), whole=False) == {SHA256}  # local -> local (computed after commit)
    assert stream_kinds({}, {MD5}, whole=False) == {SHA256, MD5}  # a destination that reports MD5 alone
    assert stream_kinds(qxh, DRIVE, whole=False, extra={MD5, SHA1}) == {QXH, SHA256, MD5, SHA1}


def test_hashes_option_names_an_unknown_hash() -> None:
    assert parse_hashes("md5, SHA-1") == {MD5, SHA1}
    with pytest.raises(UserError, match="unknown hash 'crc32'.*md5"):
        parse_hashes("md5,crc32")


def _copy(world: World, path: str, name: str, extra: frozenset[HashType] = frozenset()) -> Any:
    src, dst = world.provider("onedrive"), world.provider("gdrive")
    folder = dst.mkdir(dst.root(), "Hashes")
    entry = src.stat(path)
    result = Relay(src, dst, extra).copy(RelayJob(entry, folder, name, "run-1", CHUNK), lambda t, o: None)
    return result, read_all(dst, result.entry), dst.stat(f"Hashes/{name}")


@pytest.mark.parametrize("world", [TREE], indirect=True)
def test_drive_md5_is_taken_from_its_answer_not_streamed(world: World) -> None:
    data = world.expected()["big.bin"]
    result, stored, entry = _copy(world, "Projects/big.bin", "big.bin")
    assert stored == data and result.proven
    assert set(result.hashes) == {QXH, SHA256}  # no MD5 on the stream
    assert result.hashes[SHA256] == hashlib.sha256(data).hexdigest()
    assert result.from_dest == {MD5: hashlib.md5(data).hexdigest(), SHA1: hashlib.sha1(data).hexdigest()}
    record = prov.Provenance.read(entry.properties)
    assert record is not None and record.md5 is None  # not streamed...
    assert record.dest_md5 == entry.hashes[MD5] == hashlib.md5(data).hexdigest()  # ...taken from Drive
    assert record.taken_from_dest() == {MD5, SHA1}
    assert record.content_hashes()[MD5] == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("world", [TREE], indirect=True)
def test_hashes_option_adds_md5_to_the_stream(world: World) -> None:
    data = world.expected()["big.bin"]
    result, stored, entry = _copy(world, "Projects/big.bin", "big.bin", frozenset({MD5}))
    assert stored == data and set(result.hashes) == {QXH, SHA256, MD5}
    assert result.hashes[MD5] == hashlib.md5(data).hexdigest() and MD5 not in result.from_dest
    assert entry.properties[prov.MD5] == result.hashes[MD5] and prov.DST_MD5 not in entry.properties


@pytest.mark.parametrize("world", [TREE], indirect=True)
def test_a_drive_answer_without_sha256_still_proves(world: World) -> None:
    world.control("PUT", "/realism", {"drive": {"omit_sha256": True}})
    for path, name in (("Projects/big.bin", "big.bin"), ("Projects/small.txt", "small.txt")):
        data = world.expected()[path.removeprefix("Projects/")]
        before = world.counters()["requests"].get("drive.files.get", 0)
        result, stored, entry = _copy(world, path, name)
        assert SHA256 not in entry.hashes and entry.hashes[MD5] == hashlib.md5(data).hexdigest()
        assert stored == data and result.proven, name
        if name == "big.bin":  # MD5 was not streamed: the copy was read back and hashed
            assert MD5 not in result.hashes and result.from_dest == {MD5: hashlib.md5(data).hexdigest()}
            assert world.counters()["requests"].get("drive.files.get", 0) > before
        else:  # one request: MD5 was streamed, and proves it
            assert result.hashes[MD5] == entry.hashes[MD5] and not result.from_dest


@pytest.mark.parametrize("world", [TREE], indirect=True)
def test_migrate_records_taken_hashes_in_the_journal_and_refuses_unknown_names(world: World) -> None:
    bad = world.cli(*world.migrate_args("--hashes", "md5,crc32"))
    assert bad.returncode == 2 and "unknown hash 'crc32'" in bad.stderr and bad.stderr.count("\n") == 1
    assert not world.journal.exists()  # nothing was created
    world.cli(*world.migrate_args("--chunk-size", "1280K"), check=True)
    tree = drive_tree(world)
    data = world.expected()["big.bin"]
    (big,) = tree["big.bin"]
    assert read_all(world.provider("gdrive"), big) == data
    assert big.properties[prov.DST_MD5] == hashlib.md5(data).hexdigest() and prov.MD5 not in big.properties
    rows = sqlite3.connect(world.journal).execute("SELECT path, dest_hashes FROM items").fetchall()
    recorded = {path: json.loads(h) for path, h in rows if path}
    assert recorded["big.bin"]["md5"] == hashlib.md5(data).hexdigest()
    assert recorded["big.bin"]["from_dest"] == "md5,sha1" and recorded["big.bin"]["sha256"]
    assert recorded["small.txt"]["from_dest"] == "sha1"  # MD5 streamed (one request)
    again = ["migrate", "emu-onedrive:/Projects", "emu-gdrive:Streamed", "--journal", str(world.dir / "j2.sqlite3"),
             "-q", "--chunk-size", "1280K", "--hashes", "md5"]
    world.cli(*again, check=True)  # --hashes md5: MD5 streamed, recorded as df_md5, none taken from Drive
    streamed = world.provider("gdrive").stat("Streamed/big.bin")
    assert streamed.properties[prov.MD5] == hashlib.md5(data).hexdigest() and prov.DST_MD5 not in streamed.properties
    for omit in (False, True):  # Drive without sha256Checksum: proven by the MD5 recorded from its answer
        world.control("PUT", "/realism", {"drive": {"omit_sha256": omit}})
        verified = world.cli("verify", "emu-onedrive:/Projects", "emu-gdrive:Archive")
        assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
        assert "ok          2" in verified.stdout and " 0 not proven" in verified.stdout, verified.stdout
