"""The one proof: proven only when a content hash agrees on each side; differs names the comparison."""

from __future__ import annotations

import pytest

from driveferry.integrity import provenance as prov
from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.integrity.proof import Outcome, Side, compare, prove_copy, strongest, wanted_kinds

OLD, NEW = b"same size, first", b"same size, later"
ALL = (HashType.MD5, HashType.SHA256, HashType.QUICKXOR)


def test_compare_outcomes() -> None:
    a, b = hash_bytes(OLD, ALL), hash_bytes(NEW, ALL)
    assert compare(a, a).outcome is Outcome.PROVEN and compare(a, a).hash_type is HashType.SHA256
    v = compare(a, {HashType.QUICKXOR: b[HashType.QUICKXOR]})
    assert v.differs and v.hash_type is HashType.QUICKXOR and (v.expected, v.actual) == (
        a[HashType.QUICKXOR], b[HashType.QUICKXOR])
    # no shared type: never proven, whatever the sizes say
    assert compare({HashType.MD5: a[HashType.MD5]}, {HashType.QUICKXOR: a[HashType.QUICKXOR]},
                   expected_size=16, actual_size=16).outcome is Outcome.UNVERIFIABLE
    assert compare(a, a, expected_size=16, actual_size=17).differs
    # one shared type that differs outweighs another that agrees
    mixed = {HashType.MD5: "0" * 32, HashType.SHA256: a[HashType.SHA256]}
    assert compare(a, mixed).differs and compare(a, mixed).hash_type is HashType.MD5


def test_strongest_and_wanted_kinds() -> None:
    h = hash_bytes(OLD, ALL)
    assert strongest(h) == (HashType.SHA256, h[HashType.SHA256])
    assert strongest({}) is None
    assert wanted_kinds([HashType.MD5, HashType.SHA256], {}) == (HashType.SHA256,)
    assert wanted_kinds([HashType.MD5, HashType.SHA256], {HashType.MD5: "x"}) == ()


class _Src:
    def __init__(self, id_: str, hashes: dict[HashType, str]) -> None:
        self.id, self.hashes = id_, hashes


@pytest.mark.parametrize("source_kinds", [(), (HashType.SHA256, HashType.MD5, HashType.SHA1), (HashType.QUICKXOR,)],
                         ids=["local", "gdrive", "onedrive"])
def test_same_size_rewrite_of_any_source_is_caught(source_kinds: tuple[HashType, ...]) -> None:
    """Provenance records the source's own strongest hash; the source's current one must equal it."""
    streamed = hash_bytes(OLD, ALL)
    source = _Src("S1", {k: hash_bytes(OLD, [k])[k] for k in source_kinds})
    props = prov.provenance_properties(source, "run", streamed)
    record = prov.Provenance.read(props)
    assert record is not None and props[prov.SRC_HASH].startswith(
        ("sha256:", "quickxor:"))

    def verdict(now: bytes) -> object:
        kinds = source_kinds or (HashType.SHA256,)  # a local source computes the recorded type
        return prove_copy(source_id="S1", source_size=len(now), source_hashes=hash_bytes(now, kinds),
                          dest_size=len(OLD), dest_hashes=hash_bytes(OLD, (HashType.MD5, HashType.SHA256)),
                          record_src_id=record.src_id, record_source=record.source_hashes(),
                          record_content=record.content_hashes())

    same = verdict(OLD)
    assert same.proven  # type: ignore[attr-defined]
    changed = verdict(NEW)
    assert changed.differs and changed.side is Side.SOURCE  # type: ignore[attr-defined]


def test_copy_proof_needs_both_halves() -> None:
    h = hash_bytes(OLD, ALL)
    base = dict(source_id="S1", source_size=16, source_hashes={HashType.QUICKXOR: h[HashType.QUICKXOR]},
                dest_size=16, dest_hashes={HashType.MD5: h[HashType.MD5]}, record_src_id="S1",
                record_source={HashType.QUICKXOR: h[HashType.QUICKXOR]}, record_content={HashType.MD5: h[HashType.MD5]})
    assert prove_copy(**base).proven  # type: ignore[arg-type]
    no_dest_hash = prove_copy(**{**base, "dest_hashes": {}})  # type: ignore[arg-type]
    assert no_dest_hash.outcome is Outcome.UNVERIFIABLE and no_dest_hash.side is Side.DEST
    no_source_hash = prove_copy(**{**base, "source_hashes": {}})  # type: ignore[arg-type]
    assert no_source_hash.outcome is Outcome.UNVERIFIABLE and no_source_hash.side is Side.SOURCE
    other = prove_copy(**{**base, "record_src_id": "S2"})  # type: ignore[arg-type]
    assert other.differs and other.side is Side.RECORD
    missing = prove_copy(**{**base, "record_src_id": None})  # type: ignore[arg-type]
    assert missing.outcome is Outcome.UNVERIFIABLE and missing.side is Side.RECORD


def test_unknown_source_hash_kind_is_ignored() -> None:
    record = prov.Provenance.read({prov.SRC_ID: "S1", prov.SRC_HASH: "blake9:abcd"})
    assert record is not None and record.source_hashes() == {}
