"""The local-vs-remote status table: every status reachable, precedence, totality, docs in sync."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest

from driveferry.integrity.hashes import HashType
from driveferry.providers.base import Kind
from driveferry.verify import classify as cl
from driveferry.verify.classify import (
    RULES,
    STATUS_INFO,
    Facts,
    Policy,
    Status,
    classify,
    classify_tree,
    pair,
)

from .helpers import NOW, OLD, data, local, remote

D = data(200_000)
D2 = data(200_000, seed=2)  # same size, other content
ZEROS = bytes(200_000)
TAIL = data(100_000) + bytes(100_000)  # a preallocated download, half written
RECENT = NOW - timedelta(seconds=10)
NEWER = OLD + timedelta(hours=1)

# (case id, local, remote, expected status). Each case would fail if its rule were removed or reordered.
CASES = [
    ("ok", local(D), remote(D), Status.OK),
    ("missing_remote", local(D), None, Status.MISSING_REMOTE),
    ("missing_local", None, remote(D), Status.MISSING_LOCAL),
    ("size_mismatch", local(D), remote(D[:-1]), Status.SIZE_MISMATCH),
    ("zero_filled_remote", local(D), remote(ZEROS), Status.ZERO_FILLED_REMOTE),
    ("zero_filled_local", local(ZEROS), remote(D), Status.ZERO_FILLED_LOCAL),
    ("zero_tail", local(TAIL), remote(TAIL), Status.ZERO_TAIL),
    ("holes", local(D, holes=128 * 1024), remote(D), Status.HOLES),
    ("stale_remote", local(D, mtime=NEWER), remote(D2, modified=OLD), Status.STALE_REMOTE),
    ("content_mismatch", local(D, mtime=OLD), remote(D2, modified=NEWER), Status.CONTENT_MISMATCH),
    ("pending_sync", local(D, mtime=RECENT), remote(D2), Status.PENDING_SYNC),
    ("unverifiable_native_doc", local(D), remote(None, kind=Kind.NATIVE_DOC), Status.UNVERIFIABLE),
    # precedence and edge cases
    ("pending_beats_missing_remote", local(D, mtime=RECENT), None, Status.PENDING_SYNC),
    ("pending_beats_size", local(D, mtime=RECENT), remote(D[:10]), Status.PENDING_SYNC),
    ("pending_beats_zero_filled_remote", local(D, mtime=RECENT), remote(ZEROS), Status.PENDING_SYNC),
    ("recent_but_proven_is_ok", local(D, mtime=RECENT), remote(D), Status.OK),
    ("recent_zero_tail_is_pending", local(TAIL, mtime=RECENT), remote(TAIL), Status.PENDING_SYNC),
    ("changed_during_scan", local(D, changed=True), remote(D), Status.PENDING_SYNC),
    ("missing_local_beats_everything", None, remote(ZEROS, modified=RECENT), Status.MISSING_LOCAL),
    ("recent_native_doc_stays_unverifiable", local(D, mtime=RECENT), remote(None, kind=Kind.NATIVE_DOC),
     Status.UNVERIFIABLE),
    ("onenote_package", local(D), remote(None, kind=Kind.PACKAGE), Status.UNVERIFIABLE),
    ("size_beats_zero_filled_remote", local(D), remote(ZEROS[:-5]), Status.SIZE_MISMATCH),
    ("size_without_any_hash", local(D), remote(D[:-1], kinds=()), Status.SIZE_MISMATCH),
    ("zero_filled_local_beats_tail", local(ZEROS), remote(ZEROS), Status.ZERO_FILLED_LOCAL),
    ("zero_filled_remote_beats_tail", local(TAIL), remote(ZEROS), Status.ZERO_FILLED_REMOTE),
    ("zero_filled_remote_beats_stale", local(D, mtime=NEWER), remote(ZEROS, modified=OLD),
     Status.ZERO_FILLED_REMOTE),
    ("zero_filled_remote_by_quickxor", local(D), remote(ZEROS, kinds=(HashType.QUICKXOR,)),
     Status.ZERO_FILLED_REMOTE),
    ("tail_beats_content", local(TAIL), remote(D2), Status.ZERO_TAIL),
    ("short_zero_tail_is_normal", local(D + bytes(1024)), remote(D + bytes(1024)), Status.OK),
    ("empty_file_without_hash", local(b""), remote(b"", kinds=()), Status.UNVERIFIABLE),
    ("empty_file_with_hash", local(b""), remote(b""), Status.OK),
    ("no_common_hash_type", local(D), remote(D, kinds=(HashType.QUICKXOR,)), Status.UNVERIFIABLE),
    ("unreadable_local", local(D, error="PermissionError"), remote(D), Status.UNVERIFIABLE),
    ("unreadable_beats_size", local(b"", error="FileNotFoundError"), remote(D), Status.UNVERIFIABLE),
    ("unknown_remote_size_still_compares", local(D), remote(D2, size=None, modified=NEWER),
     Status.CONTENT_MISMATCH),
    ("within_clock_skew_is_not_stale", local(D, mtime=OLD + timedelta(seconds=1)), remote(D2, modified=OLD),
     Status.CONTENT_MISMATCH),
    ("one_hash_type_differs", local(D),
     remote(D).__class__(**{**remote(D).__dict__, "hashes": {**remote(D).hashes, HashType.MD5: "0" * 32}}),
     Status.CONTENT_MISMATCH),
]


@pytest.mark.parametrize(("local_file", "entry", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_status_table(local_file: object, entry: object, expected: Status) -> None:
    finding = classify(local_file, entry, now=NOW)  # type: ignore[arg-type]
    assert finding.status is expected, finding


def test_every_status_is_reachable_and_documented() -> None:
    assert {c[3] for c in CASES} == set(Status)
    assert set(STATUS_INFO) == set(Status)
    assert all(info.advice and info.meaning for info in STATUS_INFO.values())


def test_finding_names_the_differing_hash() -> None:
    f = classify(local(D), remote(D2, modified=NEWER), now=NOW)
    assert f.hash_type is not None and f.local_hash != f.remote_hash
    assert (f.local_size, f.remote_size, f.remote_id) == (len(D), len(D2), "r1")


def test_grace_period_is_a_policy() -> None:
    pair_ = (local(D, mtime=NOW - timedelta(minutes=30)), remote(D2, modified=NEWER))
    assert classify(*pair_, now=NOW, policy=Policy(grace_s=3600)).status is Status.PENDING_SYNC
    assert classify(*pair_, now=NOW, policy=Policy(grace_s=60)).status is Status.STALE_REMOTE


def test_oracle_is_asked_only_for_mismatches() -> None:
    calls: list[int] = []

    def oracle(size: int, kind: HashType, hex_: str) -> bool:
        calls.append(size)
        return False

    classify(local(D), remote(D), now=NOW, oracle=oracle)
    assert calls == []
    assert classify(local(D), remote(D2, modified=NEWER), now=NOW, oracle=oracle).status is Status.CONTENT_MISMATCH
    assert calls == [len(D)]


def test_rejects_folders_and_empty_pairs() -> None:
    with pytest.raises(ValueError):
        classify(None, None, now=NOW)
    with pytest.raises(ValueError):
        classify(local(D), remote(None, kind=Kind.FOLDER), now=NOW)


def test_rules_are_total() -> None:
    """Every consistent combination of facts gets a status (no AssertionError from the last rule)."""
    names = [f for f in Facts.__dataclass_fields__ if f not in ("compared", "hashes_equal")]
    for values in itertools.product((False, True), repeat=len(names)):
        for compared, equal in (((), False), ((HashType.MD5,), False), ((HashType.MD5,), True)):
            facts = Facts(**dict(zip(names, values, strict=True)), compared=compared, hashes_equal=equal)
            assert cl._first(RULES, facts).status in Status


def _doc_table(section: str) -> list[str]:
    doc = cl.__doc__ or ""
    block = doc.split(section, 1)[1].split("\n\n", 2)[1]
    return [m.group(1) for m in re.finditer(r"^\s+\d+\s+(\w+)", block, re.M)]


def test_docstring_table_matches_rules() -> None:
    assert _doc_table("Local vs remote") == [r.status.value for r in RULES]
    assert _doc_table("Remote vs remote") == [r.status.value for r in cl.COPY_RULES]


def test_pair_and_classify_tree_report_duplicates_and_orphans() -> None:
    files = [local(D, "a"), local(D, "b")]
    entries = [remote(D, "a", id_="1"), remote(ZEROS, "a", id_="2"), remote(D, "c", id_="3"),
               remote(None, "dir", kind=Kind.FOLDER, id_="4")]
    assert len(pair(files, entries)) == 4  # a×2, b alone, c alone; the folder is skipped
    found = {(f.path, f.remote_id): f.status for f in classify_tree(files, entries, now=NOW)}
    assert found == {("a", "1"): Status.OK, ("a", "2"): Status.ZERO_FILLED_REMOTE,
                     ("b", None): Status.MISSING_REMOTE, ("c", "3"): Status.MISSING_LOCAL}
