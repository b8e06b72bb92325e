"""Provenance: what a migrated file records about its origin, so anyone can re-verify it from metadata.

Stored in the destination's properties: on Drive the shared `properties`, which every app and credential
sees (a re-run or a `verify` from another OAuth client id must find them), not `appProperties`, which
are private to the OAuth client that wrote them (api-notes Part C §20). Copies made before carry them in
appProperties; the Drive adapter reads both into `Entry.properties`, so `Provenance.read` covers either.
Drive limits each property to 124 bytes of key plus value (UTF-8), so keys are short and values are hex
digests or ids.

    df_src_id   the source item's id
    df_src_qxh  the source's quickXorHash (hex) as the source reported it when copied
    df_md5      MD5 of the content streamed (hex)
    df_sha256   SHA-256 of the content streamed (hex)
    df_run      the run id that wrote the file

A copy is proven when the destination's own MD5/SHA-256 equal df_md5/df_sha256 and the source's
current quickXorHash equals df_src_qxh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from driveferry.integrity.hashes import HashType

SRC_ID = "df_src_id"
SRC_QXH = "df_src_qxh"
MD5 = "df_md5"
SHA256 = "df_sha256"
RUN = "df_run"
KEYS = (SRC_ID, SRC_QXH, MD5, SHA256, RUN)
PROPERTY_LIMIT_BYTES = 124


@dataclass(frozen=True)
class Provenance:
    src_id: str | None
    src_quickxor: str | None
    md5: str | None
    sha256: str | None
    run_id: str | None

    @classmethod
    def read(cls, properties: Mapping[str, str]) -> Provenance | None:
        """The provenance recorded in `properties`, or None when the file carries none."""
        if SRC_ID not in properties:
            return None
        return cls(properties.get(SRC_ID), properties.get(SRC_QXH), properties.get(MD5),
                   properties.get(SHA256), properties.get(RUN))


class _HasIdAndHashes(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def hashes(self) -> Mapping[HashType, str]: ...


def provenance_properties(source: _HasIdAndHashes, run_id: str,
                          content: Mapping[HashType, str] | None) -> dict[str, str]:
    """The properties to write for a copy of `source` (content hashes when already known)."""
    props = {SRC_ID: source.id, RUN: run_id}
    qxh = source.hashes.get(HashType.QUICKXOR) or (content or {}).get(HashType.QUICKXOR)
    if qxh:
        props[SRC_QXH] = qxh
    if content:
        if HashType.MD5 in content:
            props[MD5] = content[HashType.MD5]
        if HashType.SHA256 in content:
            props[SHA256] = content[HashType.SHA256]
    for key, value in props.items():
        if len(key.encode()) + len(value.encode()) > PROPERTY_LIMIT_BYTES:
            raise ValueError(f"provenance property {key} is too long for Drive ({value[:20]}...)")
    return props
