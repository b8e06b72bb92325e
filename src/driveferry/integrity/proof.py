"""The one proof: given the content hashes each side reports (or computed), is a copy proven?

Every place that decides whether two byte streams are the same asks here: migrate's skip decision
(`migrate/destination.py`), the relay's commit gate (before the last chunk: the streamed bytes against
the source; after the commit: the destination against the streamed bytes) and both verify modes.

A verdict is one of three outcomes, with the reason and the comparison that decided it:

    proven        at least one content hash type is known on both sides and every shared type agrees
    differs       a shared hash type disagrees, or both sizes are known and differ
    unverifiable  no hash type is known on both sides (sizes alone never prove anything)

`prove_copy` applies this twice to a copy made earlier, through its provenance record
(`integrity/provenance.py`): the destination's bytes against the content hashes the relay streamed,
and the source's current bytes against the source hashes recorded when it was copied. The second
comparison is what catches a source rewritten in place at the same size, for any source: the record
holds the source's own strongest hash (quickXor for OneDrive, SHA-256 for Drive and local files).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from driveferry.integrity.hashes import HashType

__all__ = ["Outcome", "Side", "Verdict", "STRENGTH", "strongest", "compare", "prove_copy", "wanted_kinds"]

# Strongest first. quickXorHash is a checksum, not a cryptographic hash, but it is what OneDrive has.
STRENGTH: tuple[HashType, ...] = (HashType.SHA256, HashType.SHA1, HashType.MD5, HashType.XXH3_128,
                                  HashType.QUICKXOR)


class Outcome(enum.StrEnum):
    PROVEN = "proven"
    DIFFERS = "differs"
    UNVERIFIABLE = "unverifiable"


class Side(enum.StrEnum):
    """Which comparison decided a copy's verdict (`prove_copy`)."""

    RECORD = "record"  # the provenance itself (missing, or it names another item)
    DEST = "dest"  # the destination's bytes against what was streamed
    SOURCE = "source"  # the source's current bytes against what was copied


@dataclass(frozen=True)
class Verdict:
    """One decision. `hash_type`/`expected`/`actual` name the comparison that decided it (None when
    no hash was compared); `side` says which half of a copy's proof decided (`prove_copy` only)."""

    outcome: Outcome
    reason: str
    hash_type: HashType | None = None
    expected: str | None = None
    actual: str | None = None
    side: Side | None = None

    @property
    def proven(self) -> bool:
        return self.outcome is Outcome.PROVEN

    @property
    def differs(self) -> bool:
        return self.outcome is Outcome.DIFFERS


def strongest(hashes: Mapping[HashType, str]) -> tuple[HashType, str] | None:
    """The strongest hash in `hashes` (see STRENGTH), or None when there is none."""
    for kind in STRENGTH:
        value = hashes.get(kind)
        if value:
            return kind, value
    return None


def compare(expected: Mapping[HashType, str], actual: Mapping[HashType, str], *,
            expected_size: int | None = None, actual_size: int | None = None) -> Verdict:
    """Compare two sides' hashes (lowercase hex by type). Every shared type must agree; one that does
    not decides `differs` (the strongest such type is named). Known sizes that differ decide `differs`."""
    if expected_size is not None and actual_size is not None and expected_size != actual_size:
        return Verdict(Outcome.DIFFERS, "sizes differ", None, str(expected_size), str(actual_size))
    shared = [k for k in STRENGTH if expected.get(k) and actual.get(k)]
    if not shared:
        return Verdict(Outcome.UNVERIFIABLE, "no content hash known on both sides")
    for kind in shared:
        if expected[kind].lower() != actual[kind].lower():
            return Verdict(Outcome.DIFFERS, f"{kind.value} differs", kind, expected[kind], actual[kind])
    kind = shared[0]
    return Verdict(Outcome.PROVEN, f"{kind.value} agrees", kind, expected[kind], actual[kind])


def wanted_kinds(recorded: Iterable[HashType], reported: Mapping[HashType, str]) -> tuple[HashType, ...]:
    """The hash types a side that computes rather than reports (the local filesystem) should compute to
    be compared with `recorded`: the strongest recorded type it does not report already (none if it
    reports one of them)."""
    kinds = [k for k in STRENGTH if k in set(recorded)]
    if any(k in reported for k in kinds):
        return ()
    return tuple(kinds[:1])


def prove_copy(*, source_id: str, source_size: int | None, source_hashes: Mapping[HashType, str],
               dest_size: int | None, dest_hashes: Mapping[HashType, str], record_src_id: str | None,
               record_source: Mapping[HashType, str], record_content: Mapping[HashType, str]) -> Verdict:
    """Is the destination item a current copy of the source item, judged by its provenance record?

    `record_content`: the hashes of the bytes the relay streamed; `record_source`: the source's hashes
    as they were when it was copied. `source_hashes`/`dest_hashes`: what each side reports or computed
    now. Proven only when both halves are proven: the destination holds the streamed bytes, and the
    source still holds them.
    """
    if record_src_id is None:
        return Verdict(Outcome.UNVERIFIABLE, "destination carries no provenance", side=Side.RECORD)
    if record_src_id != source_id:
        return Verdict(Outcome.DIFFERS, "provenance names another source item", None, source_id,
                       record_src_id, Side.RECORD)
    dest = compare(record_content, dest_hashes, expected_size=source_size, actual_size=dest_size)
    if not dest.proven:
        why = "destination " + ("hash differs from provenance" if dest.hash_type else dest.reason)
        if dest.outcome is Outcome.UNVERIFIABLE:
            why = "no destination hash that the provenance records"
        return Verdict(dest.outcome, why, dest.hash_type, dest.expected, dest.actual, Side.DEST)
    src = compare(record_source, source_hashes)
    if src.differs:
        return Verdict(Outcome.DIFFERS, "source changed since the copy was made", src.hash_type,
                       src.expected, src.actual, Side.SOURCE)
    if not src.proven:
        return Verdict(Outcome.UNVERIFIABLE, "no source hash to compare with the one recorded at copy time",
                       side=Side.SOURCE)
    return Verdict(Outcome.PROVEN, f"destination {dest.reason}; source {src.reason} (unchanged)",
                   dest.hash_type, dest.expected, dest.actual)
