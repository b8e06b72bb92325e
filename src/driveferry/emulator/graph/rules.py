"""Realism rules of the Graph model (off by default): what a realism profile switches on, with sources.

Kept apart from models.py so the model's own rules stay on one screen; the model and sessions.py read
`GraphModel.rules` (a GraphRules) and report what fires through `GraphModel.on_event`.
"""

from __future__ import annotations

from dataclasses import dataclass

# Office formats SharePoint document libraries rewrite on upload (rclone's onedrive docs, "Unexpected
# file size/hash differences on Sharepoint": "mainly Office files (.docx, .xlsx, etc.)").
OFFICE_EXTENSIONS = (".docx", ".docm", ".dotx", ".xlsx", ".xlsm", ".xltx", ".pptx", ".pptm", ".potx", ".vsdx")


@dataclass(frozen=True)
class GraphRules:
    """Realism rules of the Graph model and its upload sessions (all off by default).

    sharepoint_rewrite_bytes: bytes a SharePoint library appends to an Office file uploaded over HTTP
    (it merges metadata into the file, so the stored size and quickXorHash differ from what was sent:
    onedrive-api-docs#935, api-notes §21); 0 = off.
    fragment_404_count / fragment_404_window_s: the first N fragment PUTs within T emulated seconds of a
    session's creation answer 404 (rclone sleeps 5 s and retries the same fragment, api-notes §18).
    ignore_file_size: `fileSize` in createUploadSession is "Only on OneDrive Personal"
    (driveItemUploadableProperties, api-notes §21): Business neither quota-checks nor enforces it.
    """

    sharepoint_rewrite_bytes: int = 0
    office_extensions: tuple[str, ...] = OFFICE_EXTENSIONS
    fragment_404_count: int = 0
    fragment_404_window_s: float = 0.0
    ignore_file_size: bool = False


def no_event(name: str) -> None:
    return None


def sharepoint_trailer(name: str, size: int) -> bytes:
    """What the emulated library merges into a file: a metadata record, padded to `size` bytes."""
    record = f'<!-- SharePoint document library properties: FileLeafRef="{name}" -->'.encode()
    return (record + b" " * size)[:size]
