"""Drive sharing: list and create permissions (a SharingWriter).

permissions.list / permissions.create (developers.google.com/drive/api/reference/rest/v3/permissions):
`supportsAllDrives=true` on every call, as for files (api-notes 3). A grant to a user or group is made
with `sendNotificationEmail=false`: a migration must not mail everyone it shares with. The parameter is
documented for users and groups only ("not allowed for other requests"), so it is not sent for domain and
anyone. Drive then refuses an address with no Google account (400 invalidSharingRequest, the message
asks to "check the Notify people box"); that refusal reaches the caller as a PermanentError carrying
Drive's reason and message, and is reported per grant, not retried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from driveferry.providers.base import Entry, Permission
from driveferry.providers.gdrive.api import DriveApi
from driveferry.providers.gdrive.errors import translate

_FIELDS = "id,type,role,emailAddress,domain,allowFileDiscovery,expirationTime,deleted"
_PAGE = 100  # permissions.list pageSize: 1..100


def to_permission(raw: Mapping[str, Any]) -> Permission:
    ptype = str(raw.get("type") or "")
    address = str(raw.get("emailAddress") or raw.get("domain") or "")
    return Permission(kind=ptype, role=str(raw.get("role") or ""), address=address.lower(),
                      id=str(raw.get("id") or ""), expires=raw.get("expirationTime") or None)


def _lister(params: dict[str, Any]) -> Callable[[Any], Any]:
    return lambda resource: resource.list(**params)


class DriveSharing:
    """The Drive provider's permissions capability."""

    def __init__(self, api: DriveApi) -> None:
        self.api = api

    def _call(self, make: Callable[[Any], Any], what: str) -> dict[str, Any]:
        try:
            result = make(self.api.service().permissions()).execute(num_retries=0)
        except Exception as exc:  # noqa: BLE001 - translate() is the single mapping point
            raise translate(exc, what=what) from exc
        return result if isinstance(result, dict) else {}

    def list_permissions(self, entry: Entry) -> list[Permission]:
        out: list[Permission] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"fileId": entry.id, "supportsAllDrives": True, "pageSize": _PAGE,
                                      "fields": f"nextPageToken,permissions({_FIELDS})"}
            if token:
                params["pageToken"] = token
            page = self._call(_lister(params), f"list permissions of {entry.path or entry.id}")
            out += [to_permission(raw) for raw in page.get("permissions", []) if isinstance(raw, dict)]
            token = page.get("nextPageToken")
            if not token:
                return out

    def add_permission(self, entry: Entry, permission: Permission) -> Permission:
        body: dict[str, Any] = {"type": permission.kind, "role": permission.role}
        params: dict[str, Any] = {"fileId": entry.id, "supportsAllDrives": True, "fields": _FIELDS}
        if permission.kind in ("user", "group"):
            body["emailAddress"] = permission.address
            params["sendNotificationEmail"] = False
            if permission.expires:
                body["expirationTime"] = permission.expires
        elif permission.kind == "domain":
            body["domain"] = permission.address
            body["allowFileDiscovery"] = False  # reachable by its link within the domain, not searchable
        elif permission.kind == "anyone":
            body["allowFileDiscovery"] = False  # "anyone with the link", never public on the web
        what = f"share {entry.path or entry.id} with {permission.kind} {permission.address}".rstrip()
        return to_permission(self._call(lambda p: p.create(body=body, **params), what))
