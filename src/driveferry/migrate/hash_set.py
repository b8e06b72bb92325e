"""Which hashes the relay streams for one file: what its proof needs, and what the user asks for.

Hashing is most of a relay's CPU (MD5 ~2.2, SHA-1 ~1.2, SHA-256 ~1.0, quickXor ~0.15 ms per MB on the
2-core benchmark machine), so the relay computes only:

    SHA-256      always: the provenance's content hash (`df_sha256`), the hash Drive reports for
                 uploaded content, and the one a destination that computes rather than reports
                 (the local filesystem) is asked for after the commit
    source check the cheapest hash the source reports for this file (quickXor for OneDrive; SHA-256
                 for Drive, or SHA-1/MD5 for a Drive file that lacks it); none for a source that reports
                 none (the local filesystem, read between two fstats)
    dest check   the first hash the destination reports of SHA-256, quickXor, SHA-1, MD5 (Drive:
                 SHA-256; OneDrive: quickXor; a destination that reports MD5 alone: MD5)
    MD5 whole    for a file sent in one request to a destination that reports MD5 (Drive): its
                 provenance goes in that request, before any answer, so MD5 is streamed (the file is
                 in memory: ~0.1 ms for 64 KiB) to be recorded, and to prove an answer without SHA-256
    extra        what `migrate --hashes` asks for

A destination's other digests (Drive's md5Checksum and sha1Checksum) are not streamed: once the streamed
SHA-256 equals Drive's, they are Drive's own digests of the same bytes and are taken from its answer
(`taken_from_dest`). Drive may answer without sha256Checksum ("a few files may lack SHA1 or SHA256",
rclone's Drive docs; api-notes 2.1); the relay then reads the committed copy back to prove it
(`migrate/relay.py`), unless the user streams MD5 with `--hashes md5`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from driveferry.errors import UserError
from driveferry.integrity.hashes import HashType

__all__ = ["CHECKABLE", "CONTENT", "parse_hashes", "source_check", "dest_check", "stream_kinds",
           "taken_from_dest"]

CONTENT = HashType.SHA256
CHECKABLE = frozenset({HashType.MD5, HashType.SHA1, HashType.SHA256, HashType.QUICKXOR})
_CHEAPEST_FIRST = (HashType.QUICKXOR, HashType.SHA256, HashType.SHA1, HashType.MD5)
_DEST_PREFERENCE = (HashType.SHA256, HashType.QUICKXOR, HashType.SHA1, HashType.MD5)
# digests a destination reports that are recorded from its answer once a streamed one agrees
_TAKEN = (HashType.MD5, HashType.SHA1, HashType.SHA256)


def parse_hashes(text: str | Iterable[str]) -> frozenset[HashType]:
    """`md5,sha256` (or a list of names) as hash types; UserError naming the unknown name and the choices."""
    names = text.split(",") if isinstance(text, str) else [n for part in text for n in str(part).split(",")]
    out = set()
    for name in (n.strip() for n in names):
        if not name:
            continue
        try:
            out.add(HashType.parse(name))
        except ValueError:
            raise UserError(f"--hashes: unknown hash {name!r}; use any of "
                            f"{', '.join(m.value for m in HashType)}, comma-separated") from None
    return frozenset(out)


def source_check(reported: Mapping[HashType, str]) -> HashType | None:
    """The cheapest checkable hash the source reports for this file, or None when it reports none."""
    return next((k for k in _CHEAPEST_FIRST if reported.get(k)), None)


def dest_check(reports: Iterable[HashType]) -> HashType | None:
    """The hash the destination will be checked by (see module doc), or None when it reports none."""
    have = frozenset(reports)
    return next((k for k in _DEST_PREFERENCE if k in have), None)


def stream_kinds(source_hashes: Mapping[HashType, str], dest_reports: Iterable[HashType], *,
                 whole: bool, extra: Iterable[HashType] = ()) -> frozenset[HashType]:
    """The hashes to stream for one file (see module doc). `whole`: the file goes in one request."""
    dest = frozenset(dest_reports)
    kinds = {CONTENT, *extra}
    for kind in (source_check(source_hashes), dest_check(dest)):
        if kind is not None:
            kinds.add(kind)
    if whole and HashType.MD5 in dest:
        kinds.add(HashType.MD5)
    return frozenset(kinds)


def taken_from_dest(reported: Mapping[HashType, str], streamed: Mapping[HashType, str]) -> dict[HashType, str]:
    """The destination's digests that were not streamed, to record once a streamed one agreed with it."""
    return {k: reported[k].lower() for k in _TAKEN if reported.get(k) and k not in streamed}
