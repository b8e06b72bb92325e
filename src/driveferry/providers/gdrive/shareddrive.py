"""A Google shared drive named in a remote (`shared_drive = "<name or id>"`), resolved to its id.

A shared drive's id is also its root folder's id; every files.* call on its items must carry
supportsAllDrives=true, and listings includeItemsFromAllDrives with corpora=drive and driveId, or the
items look absent (developers.google.com/drive/api/guides/enable-shareddrives; api.py sends them on every
call). drives.get takes an id; a name is looked up with drives.list (pageSize at most 100), which lists
the shared drives the user is a member of.
"""

from __future__ import annotations

from typing import Any

from driveferry.errors import NotFoundError, UserError
from driveferry.providers.gdrive.api import DriveApi
from driveferry.providers.gdrive.errors import translate


def _call(make: Any, what: str) -> dict[str, Any]:
    try:
        result = make().execute(num_retries=0)
    except Exception as exc:  # noqa: BLE001 - translate() is the single mapping point
        raise translate(exc, what=what) from exc
    return result if isinstance(result, dict) else {}


def shared_drives(api: DriveApi) -> list[dict[str, Any]]:
    """Every shared drive the account belongs to: [{id, name}, ...] (drives.list, all pages)."""
    out: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"pageSize": 100, "fields": "nextPageToken,drives(id,name)"}
        if token:
            params["pageToken"] = token
        page = _call(lambda p=params: api.service().drives().list(**p), "list shared drives")
        out += [d for d in page.get("drives") or [] if isinstance(d, dict)]
        token = page.get("nextPageToken")
        if not token:
            return out


def resolve_shared_drive(api: DriveApi, value: str, remote: str) -> str:
    """The id of the shared drive `value` names: its id, or its name (exact, else ignoring case).

    Raises UserError when none matches (naming the shared drives there are) or a name is ambiguous."""
    try:
        found = _call(lambda: api.service().drives().get(driveId=value, fields="id,name"), f"get shared drive {value}")
        return str(found["id"])
    except NotFoundError:
        pass
    drives = shared_drives(api)
    exact = [d for d in drives if d.get("name") == value]
    for matches in (exact, exact or [d for d in drives if str(d.get("name", "")).lower() == value.lower()]):
        if len(matches) == 1:
            return str(matches[0]["id"])
        if len(matches) > 1:
            raise UserError(f"remote {remote!r}: {len(matches)} shared drives are named {value!r}; set "
                            f"shared_drive to the id of one: {', '.join(str(d['id']) for d in matches)}")
    names = ", ".join(repr(d.get("name")) for d in drives) or "none"
    raise UserError(f"remote {remote!r}: no shared drive {value!r} (this account's shared drives: {names}); "
                    "set shared_drive to one of them, by name or id")
