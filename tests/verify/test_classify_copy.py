"""Remote-vs-remote proof from provenance: ok only when both halves of the chain hold."""

from __future__ import annotations

from datetime import timedelta

import pytest

from driveferry.integrity import provenance as prov
from driveferry.integrity.hashes import HashType, hash_bytes
from driveferry.providers.base import Entry, Kind
from driveferry.verify.classify import Status, classify_copy

from .helpers import OLD, data, remote

D = data(100_000)
D2 = data(100_000, seed=3)
QXH = (HashType.QUICKXOR,)
DEST_KINDS = (HashType.MD5, HashType.SHA1, HashType.SHA256)


def source(content: bytes | None = D, **kw: object) -> Entry:
    return remote(content, "src/a.bin", kinds=QXH, id_="SRC1", **kw)  # type: ignore[arg-type]


def dest(content: bytes = D, *, recorded: bytes | None = D, src: Entry | None = None,
         extra: dict[str, str] | None = None, **kw: object) -> Entry:
    s = src or source()
    props = prov.provenance_properties(s, "run-7", hash_bytes(recorded, DEST_KINDS)) if recorded is not None \
        else {}
    props.update(extra or {})
    return remote(content, "a.bin", kinds=DEST_KINDS, id_="DST1", properties=props,
                  modified=OLD + timedelta(hours=1), **kw)  # type: ignore[arg-type]


def _with(entry: Entry, **changes: object) -> Entry:
    return Entry(**{**entry.__dict__, **changes})  # type: ignore[arg-type]


CASES = [
    ("ok", source(), dest(), Status.OK),
    ("missing_remote", source(), None, Status.MISSING_REMOTE),
    ("source_gone", None, dest(), Status.MISSING_LOCAL),
    ("package_source", source(None, kind=Kind.PACKAGE), dest(), Status.UNVERIFIABLE),
    ("size_mismatch", source(), dest(D[:-1], recorded=D[:-1]), Status.SIZE_MISMATCH),
    ("no_provenance", source(), dest(recorded=None), Status.UNVERIFIABLE),
    ("dest_reports_no_md5_sha256", source(), _with(dest(), hashes={}), Status.UNVERIFIABLE),
    ("other_source", source(), dest(extra={prov.SRC_ID: "SRC2"}), Status.CONTENT_MISMATCH),
    ("dest_zero_filled", source(), dest(bytes(len(D))), Status.ZERO_FILLED_REMOTE),
    ("dest_differs_from_provenance", source(), dest(D2), Status.CONTENT_MISMATCH),
    ("source_without_qxh", _with(source(), hashes={}), dest(), Status.UNVERIFIABLE),
    ("source_changed_since_copy", source(D2), dest(src=source(D)), Status.STALE_REMOTE),
    # a wrong provenance md5 alone is enough to refuse ok, even when sha256 agrees
    ("one_recorded_hash_wrong", source(), dest(extra={prov.MD5: "0" * 32}), Status.CONTENT_MISMATCH),
]


@pytest.mark.parametrize(("src", "dst", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_copy_table(src: Entry | None, dst: Entry | None, expected: Status) -> None:
    finding = classify_copy(src, dst)
    assert finding.status is expected, finding


def test_ok_names_the_proof() -> None:
    f = classify_copy(source(), dest())
    # the proof names the strongest hash type both sides agree on
    assert f.hash_type is HashType.SHA256 and f.local_hash == f.remote_hash == hash_bytes(D, [HashType.SHA256])[
        HashType.SHA256]
    assert (f.path, f.remote_id) == ("a.bin", "DST1")


def test_provenance_key_names_fit_drive_limit() -> None:
    assert prov.KEYS == ("df_src_id", "df_src_hash", "df_src_qxh", "df_md5", "df_sha256", "df_run")
    props = prov.provenance_properties(source(), "run-7", hash_bytes(D, DEST_KINDS))
    assert all(len(k) + len(v) <= prov.PROPERTY_LIMIT_BYTES for k, v in props.items())
    assert set(props) == set(prov.KEYS)


def test_rejects_empty_pair() -> None:
    with pytest.raises(ValueError):
        classify_copy(None, None)
