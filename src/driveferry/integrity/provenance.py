"""Provenance: what a migrated file records about its origin, so anyone can re-verify it from metadata.

Stored in the destination's properties: on Drive the shared `properties`, which every app and credential
sees (a re-run or a `verify` from another OAuth client id must find them), not `appProperties`, which
are private to the OAuth client that wrote them (api-notes Part C §20). Copies made before carry them in
appProperties; the Drive adapter reads both into `Entry.properties`, so `Provenance.read` covers either.
Drive limits each property to 124 bytes of key plus value (UTF-8), so keys are short and values are hex
digests or ids.

    df_src_id   the source item's id
    df_src_hash the source's own strongest content hash when copied, as `kind:hex` (`sha256:...` for
                Drive and local sources, `quickxor:...` for OneDrive): what a re-run compares the
                source's current hash with, so a same-size rewrite in place is caught for any source
    df_src_qxh  the source's quickXorHash (hex) as the source reported it when copied (older copies)
    df_md5      MD5 of the content streamed (hex; only where MD5 was streamed: `migrate/hash_set.py`)
    df_sha256   SHA-256 of the content streamed (hex)
    df_run      the run id that wrote the file
    df_dst_md5  MD5 taken from the destination's answer, not streamed: recorded only after the streamed
    df_dst_sha1 SHA-256 equalled the destination's, so it is the destination's own digest of the same
                bytes (Drive reports md5Checksum, sha1Checksum and sha256Checksum: api-notes 2.1)

A copy is proven (`integrity/proof.prove_copy`) when a destination hash equals the recorded content
hash of its type and a current source hash equals the recorded source hash of its type. The streamed
content hashes describe the source too (they are its bytes, read once and checked), so a source that
reports MD5 or SHA-256 is also compared with df_md5/df_sha256.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from driveferry.integrity.hashes import HashType
from driveferry.integrity.proof import strongest

SRC_ID = "df_src_id"
SRC_QXH = "df_src_qxh"
SRC_HASH = "df_src_hash"
MD5 = "df_md5"
SHA256 = "df_sha256"
RUN = "df_run"
DST_MD5 = "df_dst_md5"
DST_SHA1 = "df_dst_sha1"
KEYS = (SRC_ID, SRC_HASH, SRC_QXH, MD5, SHA256, RUN)
DEST_KEYS = {HashType.MD5: DST_MD5, HashType.SHA1: DST_SHA1}  # digests taken from the destination's answer
PROPERTY_LIMIT_BYTES = 124


@dataclass(frozen=True)
class Provenance:
    src_id: str | None
    src_quickxor: str | None
    md5: str | None
    sha256: str | None
    run_id: str | None
    src_hash: str | None = None  # "kind:hex"
    dest_md5: str | None = None  # taken from the destination's answer (df_dst_md5)
    dest_sha1: str | None = None  # taken from the destination's answer (df_dst_sha1)

    @classmethod
    def read(cls, properties: Mapping[str, str]) -> Provenance | None:
        """The provenance recorded in `properties`, or None when the file carries none."""
        if SRC_ID not in properties:
            return None
        return cls(properties.get(SRC_ID), properties.get(SRC_QXH), properties.get(MD5),
                   properties.get(SHA256), properties.get(RUN), properties.get(SRC_HASH),
                   properties.get(DST_MD5), properties.get(DST_SHA1))

    def content_hashes(self) -> dict[HashType, str]:
        """The hashes of the bytes the relay sent to the destination (lowercase hex by type): the
        streamed ones, and those taken from the destination's answer after a streamed one agreed."""
        found = {HashType.MD5: self.md5 or self.dest_md5, HashType.SHA1: self.dest_sha1,
                 HashType.SHA256: self.sha256}
        return {k: v.lower() for k, v in found.items() if v}

    def taken_from_dest(self) -> frozenset[HashType]:
        """The content hash types recorded from the destination's answer rather than streamed."""
        return frozenset(k for k, v in ((HashType.MD5, self.dest_md5 if not self.md5 else None),
                                        (HashType.SHA1, self.dest_sha1)) if v)

    def source_hashes(self) -> dict[HashType, str]:
        """The source's hashes when it was copied: its own strongest, its quickXor, and the streamed
        content hashes (the bytes read from it). An unreadable `df_src_hash` is ignored."""
        out = self.content_hashes()
        if self.src_quickxor:
            out[HashType.QUICKXOR] = self.src_quickxor.lower()
        parsed = parse_source_hash(self.src_hash)
        if parsed is not None:
            out[parsed[0]] = parsed[1]
        return out


def parse_source_hash(text: str | None) -> tuple[HashType, str] | None:
    """`kind:hex` as written in df_src_hash, or None when absent or not understood."""
    if not text or ":" not in text:
        return None
    kind, _, value = text.partition(":")
    try:
        return HashType(kind), value.lower()
    except ValueError:
        return None


class _HasIdAndHashes(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def hashes(self) -> Mapping[HashType, str]: ...


def provenance_properties(source: _HasIdAndHashes, run_id: str, content: Mapping[HashType, str] | None,
                          from_dest: Mapping[HashType, str] | None = None) -> dict[str, str]:
    """The properties to write for a copy of `source` (content hashes when already known; `from_dest`:
    digests taken from the destination's answer after a streamed hash agreed, as df_dst_*).

    df_src_hash is the strongest hash the source reports; a source that reports none (the local
    filesystem) gets the strongest streamed one, which is the hash of the bytes read from it."""
    props = {SRC_ID: source.id, RUN: run_id}
    qxh = source.hashes.get(HashType.QUICKXOR) or (content or {}).get(HashType.QUICKXOR)
    if qxh:
        props[SRC_QXH] = qxh
    own = strongest(source.hashes) or strongest({k: v for k, v in (content or {}).items()
                                                 if k in (HashType.SHA256, HashType.MD5)})
    if own is not None:
        props[SRC_HASH] = f"{own[0].value}:{own[1].lower()}"
    if content:
        if HashType.MD5 in content:
            props[MD5] = content[HashType.MD5]
        if HashType.SHA256 in content:
            props[SHA256] = content[HashType.SHA256]
    for kind, key in DEST_KEYS.items():
        if from_dest and from_dest.get(kind) and kind not in (content or {}):
            props[key] = from_dest[kind].lower()
    for key, value in props.items():
        if len(key.encode()) + len(value.encode()) > PROPERTY_LIMIT_BYTES:
            raise ValueError(f"provenance property {key} is too long for Drive ({value[:20]}...)")
    return props
