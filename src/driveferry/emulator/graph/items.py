"""A driveItem record and the rules for its fields: Business names, ids, times (no I/O here).

Names (api-notes 8.1, docs "addressing-driveitems"): OneDrive for Business rejects `/ \\ * < > ? : | # %`
and `"`, a leading `~` and a trailing `.`; violations are 400 invalidRequest/invalidName. Microsoft's
"Restrictions and limitations in OneDrive and SharePoint" adds leading and trailing spaces, the names
`.lock, CON, PRN, AUX, NUL, COM0-9, LPT0-9, desktop.ini` (device names also with an extension), `_vti_`
anywhere in a name, and a 400-character limit on the whole decoded path (400 invalidRequest/pathIsTooLong,
an inner code of api-notes 12.1, which rclone does not retry: 12.2). Ids look like
real Business ids (34 characters of upper-case base32 starting "01"); times are whole seconds in UTC.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from driveferry.emulator.graph.errors import InvalidRequest

# Business-illegal characters (api-notes 8.1; docs "addressing-driveitems").
_ILLEGAL = re.compile(r'[/\\*<>?:|#%"]')
_DEVICES = frozenset({"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)})
_RESERVED = frozenset({".lock", "desktop.ini"})
MAX_PATH_CHARS = 400
DEFAULT_QUOTA_BYTES = 1 << 40
CONFLICT_BEHAVIOURS = ("fail", "replace", "rename")


def iso(ts: datetime) -> str:
    """Graph's DateTimeOffset form, whole seconds in UTC."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> str:
    """Normalise a client-supplied DateTimeOffset to `iso`; 400 invalidRequest if unparseable."""
    if not isinstance(text, str):
        raise InvalidRequest(f"Invalid DateTimeOffset: {text!r}")
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(f"Invalid DateTimeOffset: {text!r}") from exc
    return iso(ts if ts.tzinfo else ts.replace(tzinfo=UTC))


def new_item_id() -> str:
    """A Business-style id: 34 characters of upper-case base32 starting "01"."""
    return "01" + base64.b32encode(secrets.token_bytes(20)).decode()


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("The name must not be empty.", "invalidName")
    if (_ILLEGAL.search(name) or name.startswith(("~", " ")) or name.endswith((".", " ")) or len(name) > 400
            or "_vti_" in name.lower()):
        raise InvalidRequest(f"The provided name contains invalid characters: {name!r}", "invalidName")
    low = name.lower()
    if low in _RESERVED or low.split(".", 1)[0] in _DEVICES:
        raise InvalidRequest(f"The provided name is reserved: {name!r}", "invalidName")
    return name


def check_path_length(parent_path: str, name: str) -> None:
    """400 invalidRequest/pathIsTooLong when the item's path from the drive root (`parent_path` is
    "/a/b", "" for the root) would be longer than 400 characters."""
    length = len(parent_path.strip("/")) + (1 if parent_path.strip("/") else 0) + len(name)
    if length > MAX_PATH_CHARS:
        raise InvalidRequest(f"The path is {length} characters long; the limit is {MAX_PATH_CHARS}.",
                             "pathIsTooLong")


@dataclass(frozen=True)
class Item:
    """One driveItem row. `kind` is root | folder | file | package."""

    id: str
    parent_id: str | None
    name: str
    kind: str
    size: int
    blob: str | None
    qxh: str | None  # base64 quickXorHash; None for folders, packages and zero-byte files
    mime: str | None
    package_type: str | None
    created: str
    modified: str
    fs_created: str
    fs_modified: str
    guid: str
    version: int
    cversion: int
    deleted: bool
    seq: int

    @property
    def is_folder(self) -> bool:
        return self.kind in ("root", "folder")

    @property
    def etag(self) -> str:
        return f'"{{{self.guid}}},{self.version}"'

    @property
    def ctag(self) -> str:
        return f'"c:{{{self.guid}}},{self.cversion}"'


def row_to_item(r: object) -> Item:
    d = dict(r)  # type: ignore[call-overload]
    d["deleted"] = bool(d["deleted"])
    return Item(**d)
