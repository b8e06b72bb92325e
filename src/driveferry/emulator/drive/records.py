"""Drive's stored values: the file row, stored content, property rules and time formats.

Kept apart from the model so the rules (what a file resource looks like, which property maps are valid)
can be read on one screen. Times are RFC 3339 UTC with milliseconds and `Z`, as Drive sends them.

`appProperties` are private to the OAuth client that wrote them; `properties` are shared by all apps
(api-notes §20, developers.google.com/drive/api/guides/properties). A row keeps the emulator's own
client's map in `app_properties` (the only map while `DriveRules.private_app_properties` is off) and
other clients' maps in `client_app_properties`, keyed by client id.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driveferry.emulator.drive import convert
from driveferry.emulator.drive.errors import bad_request

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
NATIVE_PREFIX = "application/vnd.google-apps."
OCTET_STREAM = "application/octet-stream"

# Property limits [DOC v2 Property schema; api-notes 2.1]; the error itself is [UNC]: 400 badRequest.
MAX_PUBLIC_PROPERTIES = 30
MAX_PRIVATE_PROPERTIES = 30
MAX_PROPERTIES_TOTAL = 100
MAX_PROPERTY_BYTES = 124

# Export formats per native type: text, Office and PDF (convert.py; real Drive offers a few more).
EXPORTS = convert.EXPORTS
EXPORT_LIMIT_BYTES = 10 * 1000 * 1000  # "Export output is limited to 10 MB" [DISC]


def new_file_id() -> str:
    """A My Drive style id: 33 characters of [A-Za-z0-9_-] (token_urlsafe(24) gives exactly 32)."""
    return "1" + secrets.token_urlsafe(24)


def new_drive_id() -> str:
    """A shared-drive root id: 19 characters starting `0A` [OBS]."""
    return "0A" + secrets.token_urlsafe(16)[:17]


def is_valid_id(text: str) -> bool:
    return 10 <= len(text) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)


def permission_id(email: str) -> str:
    """A stable numeric permission id for a user (real ids are opaque digit strings)."""
    return str(int(hashlib.sha1(email.encode()).hexdigest()[:15], 16))


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(text: object, location: str) -> str:
    """Normalise a client-supplied RFC 3339 time; 400 badRequest if it is not one."""
    if not isinstance(text, str):
        raise bad_request(f"Invalid value for {location}: expected an RFC 3339 date-time.", location)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise bad_request(f"Invalid value for {location}: {text}", location) from exc
    return rfc3339(when if when.tzinfo else when.replace(tzinfo=UTC))


@dataclass(frozen=True)
class DriveRules:
    """Realism rules the Drive model applies (all off by default: the emulator stays kind).

    search_lag_new_s / search_lag_renamed_s: emulated seconds a created / renamed item stays invisible
    to `files.list` with `q` (search is eventually consistent; `files.get` by id sees it at once,
    api-notes §20, rclone#2485). private_app_properties: each OAuth client sees only its own
    appProperties (api-notes §20). omit_sha256: file resources carry no sha1Checksum/sha256Checksum
    (md5Checksum stays), as on the real files that lack them ("a few files may lack SHA1 or SHA256",
    rclone's Drive docs; api-notes 2.1).
    """

    search_lag_new_s: float = 0.0
    search_lag_renamed_s: float = 0.0
    private_app_properties: bool = False
    omit_sha256: bool = False


class FileResource(dict[str, Any]):
    """A rendered File resource; `search_hidden`, when set, marks it as not yet visible to search and
    is called when a query would have matched it (so the hidden match is counted)."""

    search_hidden: Any = None


@dataclass(frozen=True)
class StoredContent:
    """Bytes written to a blob file, with the digests computed while they streamed in."""

    blob: str
    size: int
    md5: str
    sha1: str
    sha256: str


@dataclass
class DriveFile:
    """One row of drive_files. `trashed` is explicit trashing; `DriveModel.is_trashed` adds inheritance."""

    id: str
    name: str
    mime_type: str
    parent: str | None
    owner: str
    created: str
    modified: str
    drive_id: str | None = None
    size: int | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    blob: str | None = None
    trashed: bool = False
    starred: bool = False
    description: str | None = None
    version: int = 1
    properties: dict[str, str] = field(default_factory=dict)
    app_properties: dict[str, str] = field(default_factory=dict)
    shortcut_target: str | None = None
    shortcut_target_mime: str | None = None
    client_app_properties: dict[str, dict[str, str]] = field(default_factory=dict)
    search_visible_at: float = 0.0  # emulated POSIX time from which search (files.list q) sees it
    seq: int = 0

    def app_props(self, client: str | None) -> dict[str, str]:
        """The appProperties `client` sees (None: the emulator's own OAuth client)."""
        return self.app_properties if client is None else self.client_app_properties.get(client, {})

    def set_app_props(self, client: str | None, props: dict[str, str]) -> None:
        if client is None:
            self.app_properties = props
        elif props:
            self.client_app_properties = {**self.client_app_properties, client: props}
        else:
            self.client_app_properties = {k: v for k, v in self.client_app_properties.items() if k != client}

    def others_have_app_props(self, client: str | None) -> bool:
        """True if some other client stored appProperties here (they are hidden from `client`)."""
        return (client is not None and bool(self.app_properties)) or any(
            v for k, v in self.client_app_properties.items() if k != client)

    @property
    def is_folder(self) -> bool:
        return self.mime_type == FOLDER_MIME

    @property
    def is_native(self) -> bool:
        """Google-native (Docs, folders, shortcuts...): no binary content, no md5/sha."""
        return self.mime_type.startswith(NATIVE_PREFIX)

    def resource(self, *, trashed: bool, native_size: bool, client: str | None = None) -> dict[str, Any]:
        """The full File resource (what `fields=*` returns), with the appProperties `client` sees."""
        owner = {"kind": "drive#user", "displayName": self.owner.split("@")[0], "emailAddress": self.owner,
                 "me": True, "permissionId": permission_id(self.owner)}
        r: dict[str, Any] = {
            "kind": "drive#file", "id": self.id, "name": self.name, "mimeType": self.mime_type,
            "starred": self.starred, "trashed": trashed, "explicitlyTrashed": self.trashed,
            "spaces": ["drive"], "version": str(self.version), "createdTime": self.created,
            "modifiedTime": self.modified, "ownedByMe": self.drive_id is None,
            "lastModifyingUser": owner,
            "webViewLink": f"https://drive.google.com/file/d/{self.id}/view",
            "capabilities": {"canDownload": not self.is_folder, "canEdit": True, "canDelete": True,
                             "canTrash": True, "canRename": True, "canAddChildren": self.is_folder,
                             "canListChildren": self.is_folder, "canModifyContent": True, "canCopy": True},
        }
        if self.drive_id is None:  # a shared drive's files belong to the organisation: no owners (about-shareddrives)
            r["owners"] = [owner]
        if self.parent is not None:
            r["parents"] = [self.parent]
        if self.description is not None:
            r["description"] = self.description
        if self.properties:
            r["properties"] = dict(self.properties)
        app = self.app_props(client)
        if app:
            r["appProperties"] = dict(app)
        if self.drive_id is not None:
            r["driveId"] = self.drive_id
            r["teamDriveId"] = self.drive_id
        if self.shortcut_target is not None:
            r["shortcutDetails"] = {"targetId": self.shortcut_target,
                                    "targetMimeType": self.shortcut_target_mime or OCTET_STREAM}
        if not self.is_native and self.size is not None:
            r.update(size=str(self.size), quotaBytesUsed=str(self.size), md5Checksum=self.md5,
                     sha1Checksum=self.sha1, sha256Checksum=self.sha256, originalFilename=self.name,
                     headRevisionId=f"0B{(self.md5 or '')[:24]}")
            if "." in self.name.strip("."):
                ext = self.name.rsplit(".", 1)[1]
                r.update(fileExtension=ext, fullFileExtension=ext)
        elif self.mime_type in EXPORTS:
            # Current Drive reports a storage size for Docs editor files; clients must not use it as a
            # download length (api-notes 2.1). Settable, since older behaviour omitted it.
            if native_size:
                r.update(size=str(self.size or 0), quotaBytesUsed=str(self.size or 0))
            r["exportLinks"] = {m: f"https://docs.google.com/feeds/download/export?id={self.id}&exportFormat={m}"
                                for m in EXPORTS[self.mime_type]}
        else:
            r["quotaBytesUsed"] = "0"
        return r


def merge_properties(current: dict[str, str], patch: object, location: str,
                     other_count: int) -> dict[str, str]:
    """Apply a properties/appProperties patch (null deletes a key) and enforce Drive's limits.

    `other_count` is the size of the other map, for the 100-properties-per-file total.
    """
    if patch is None:
        return dict(current)
    if not isinstance(patch, dict):
        raise bad_request(f"Invalid value for {location}: expected an object.", location)
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, str | int | float | bool):
            out[key] = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) \
                else str(value)
        else:
            raise bad_request(f"Invalid value for {location}.{key}: expected a string.", location)
    limit = MAX_PUBLIC_PROPERTIES if location == "properties" else MAX_PRIVATE_PROPERTIES
    if len(out) > limit:
        raise bad_request(f"The limit of {limit} {location} per file has been exceeded.", location)
    if len(out) + other_count > MAX_PROPERTIES_TOTAL:
        raise bad_request(f"The limit of {MAX_PROPERTIES_TOTAL} properties per file has been exceeded.", location)
    for key, value in out.items():
        if len(key.encode()) + len(value.encode()) > MAX_PROPERTY_BYTES:
            raise bad_request(f"The property {key!r} exceeds the limit of {MAX_PROPERTY_BYTES} bytes "
                              "for key and value together.", location)
    return out
