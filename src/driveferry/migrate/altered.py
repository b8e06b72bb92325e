"""Copies the destination changed as it stored them: SharePoint libraries rewriting Office files.

A SharePoint document library merges its column metadata into Office files uploaded over HTTP, so the
stored size and quickXorHash differ from the bytes sent (rclone's OneDrive docs, "Unexpected file
size/hash differences on Sharepoint": "mainly Office files (.docx, .xlsx, etc.)"; onedrive-api-docs#935;
api-notes §21). Deleting such a copy and sending it again would end the same way every time. Where the
destination declares `Features.rewrites_office_files` and the file is an Office document, a difference
found after commit is therefore not called corruption: the copy is kept, counted unverified (no hash
agrees), and reported as "altered by the destination" with the proof of the bytes that were sent (their
hashes, checked against the source before the upload finished).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driveferry.integrity.hashes import HashType
from driveferry.providers.base import Entry, Features

OFFICE_EXTENSIONS = (".docx", ".docm", ".dotx", ".xlsx", ".xlsm", ".xltx", ".pptx", ".pptm", ".potx", ".vsdx")


@dataclass(frozen=True)
class AlteredRecord:
    """One copy the destination changed: what was sent (proven against the source) and what it stores."""

    path: str  # destination name
    source_id: str
    sent_bytes: int
    sent_hashes: Mapping[HashType, str]
    stored_bytes: int | None
    stored_hashes: Mapping[HashType, str]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "source_id": self.source_id, "sent_bytes": self.sent_bytes,
                "sent": {k.value: v for k, v in self.sent_hashes.items()}, "stored_bytes": self.stored_bytes,
                "stored": {k.value: v for k, v in self.stored_hashes.items()},
                "note": "altered by the destination: it rewrote the file as it stored it; the bytes sent "
                        "were proven against the source"}


def altered_by_destination(features: Features, name: str, entry: Entry, sent_bytes: int,
                           sent: Mapping[HashType, str]) -> bool:
    """Whether `entry`, as committed, differs from what was sent in a way the destination declares it
    makes (an Office file on a library that rewrites them)."""
    if not features.rewrites_office_files or not name.lower().endswith(OFFICE_EXTENSIONS):
        return False
    if entry.size is not None and entry.size != sent_bytes:
        return True
    return any(entry.hashes.get(kind) not in (None, value) for kind, value in sent.items())
