"""OneDrive sharing, read side: an item's Graph permissions as `Permission`s (a SharingReader).

`GET {item}/permissions` (learn.microsoft.com/en-us/graph/api/driveitem-list-permissions) returns the
item's own permissions and those it inherits, the latter with `inheritedFrom` naming the ancestor. A
permission is a grant (`grantedToV2` with `user`, `group` or only `siteUser`, each with an `email`) or a
sharing link (`link` with `scope` and `type`; a users-scope link lists its recipients in
`grantedToIdentitiesV2`) (learn.microsoft.com/en-us/graph/api/resources/permission). A SharePoint group
(`siteGroup`: a site's Owners, Members, Visitors) has a display name and no e-mail address; it comes
back as kind "siteGroup" with the name as its address, for the caller to report. `roles` may hold
several values; the widest is the one the permission grants. The legacy `grantedTo` / `grantedToIdentities`
are read when the V2 fields are absent (older tenants and SDKs still send them).

`read_many` reads up to 20 items per `POST /$batch` (learn.microsoft.com/en-us/graph/json-batching):
sub-requests carry relative URLs, answers come back in any order and are paired by `id`, and each has
its own status; the batch answers 200 even when some sub-requests were throttled (429 with their own
Retry-After: json-batching, "Throttling and batching"). A sub-response's body may carry an
`@odata.nextLink`, followed with ordinary requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driveferry.errors import PermanentError, TransientError
from driveferry.providers.base import Entry, Permission, PermissionsRead
from driveferry.providers.onedrive.api import GraphClient
from driveferry.providers.onedrive.batching import BATCH_MAX, sub_response, wait_s
from driveferry.providers.onedrive.errors import translate

_ROLE_ORDER = ("read", "write", "owner")


def _widest(roles: Any) -> str:
    names = [str(r) for r in roles] if isinstance(roles, list) else []
    known = [r for r in names if r in _ROLE_ORDER]
    if known:
        return max(known, key=_ROLE_ORDER.index)
    return names[0] if names else ""  # an unknown role (e.g. "sp.full control") is passed on and reported


def _email(identity: Any) -> str:
    if not isinstance(identity, Mapping):
        return ""
    return str(identity.get("email") or identity.get("userPrincipalName") or "").strip()


def _principal(granted: Any) -> tuple[str, str]:
    """(kind, address) of a grantedToV2 / grantedTo identity set; ("", "") when it names no one."""
    if not isinstance(granted, Mapping):
        return "", ""
    for key, kind in (("user", "user"), ("group", "group"), ("siteUser", "user"), ("siteGroup", "group")):
        address = _email(granted.get(key))
        if address:
            return kind, address
    site_group = granted.get("siteGroup")
    if isinstance(site_group, Mapping) and site_group.get("displayName"):
        return "siteGroup", str(site_group["displayName"])  # a SharePoint group: a name, no address
    return "", ""


def to_permission(raw: Mapping[str, Any]) -> Permission:
    """A Permission from one Graph permission resource."""
    inherited = raw.get("inheritedFrom")
    common: dict[str, Any] = {
        "id": str(raw.get("id", "")), "role": _widest(raw.get("roles")),
        "inherited_from": str(inherited.get("id")) if isinstance(inherited, Mapping) and inherited.get("id")
        else None,
        "has_password": bool(raw.get("hasPassword")), "expires": raw.get("expirationDateTime") or None}
    link = raw.get("link")
    if isinstance(link, Mapping):
        people = raw.get("grantedToIdentitiesV2") or raw.get("grantedToIdentities") or []
        recipients = tuple(a for a in (_principal(p)[1] for p in people if isinstance(p, Mapping)) if a)
        return Permission(kind="link", link_scope=str(link.get("scope") or ""), link_type=str(link.get("type") or ""),
                          recipients=recipients, **common)
    kind, address = _principal(raw.get("grantedToV2") or raw.get("grantedTo"))
    return Permission(kind=kind or "unknown", address=address, **common)


class GraphSharing:
    """SharingReader for a OneDrive provider's items (read only: a migration never changes the source)."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def list_permissions(self, entry: Entry) -> list[Permission]:
        url = self.client.id_url(entry.id) + "/permissions"
        return [to_permission(raw) for raw in self.client.pages(url)]

    def read_many(self, entries: Sequence[Entry],
                  into: dict[str, PermissionsRead] | None = None) -> dict[str, PermissionsRead]:
        """BatchSharingReader.read_many: the entries not yet in `into`, 20 per `$batch`. One try per
        sub-request (adapters never retry: providers/retrying.py): a throttled or failing one raises,
        after every batch was sent and its successes stored, the error with the longest Retry-After, so
        the retry layer waits that long and its retry of this call re-sends only what is missing."""
        out: dict[str, PermissionsRead] = {} if into is None else into
        todo = [e for e in entries if e.id not in out]
        again: TransientError | None = None
        for start in range(0, len(todo), BATCH_MAX):
            failed = self._batch(todo[start:start + BATCH_MAX], out)
            if failed is not None and (again is None or wait_s(failed) > wait_s(again)):
                again = failed
        if again is not None:
            raise again
        return out

    def _batch(self, chunk: Sequence[Entry], out: dict[str, PermissionsRead]) -> TransientError | None:
        """One `$batch` for `chunk`; stores each answered item in `out`; the transient error to retry on."""
        subs = [{"id": str(n), "method": "GET", "url": self.client.id_url(e.id) + "/permissions"}
                for n, e in enumerate(chunk)]
        resp = self.client.request("POST", "/$batch", json={"requests": subs}, what="POST $batch of permissions")
        try:
            answers = {str(a.get("id")): a for a in resp.json().get("responses", []) if isinstance(a, dict)}
        except (ValueError, AttributeError) as exc:
            raise PermanentError("POST $batch of permissions: the answer is not a batch response") from exc
        again: TransientError | None = None
        for n, entry in enumerate(chunk):
            answer = answers.get(str(n))
            what = f"GET permissions of {entry.path or '/'}"
            if answer is None:
                err: Exception = TransientError(f"{what}: missing from the batch's answer")
            elif answer.get("status") == 200 and isinstance(answer.get("body"), Mapping):
                body = answer["body"]
                perms = [to_permission(raw) for raw in body.get("value", []) if isinstance(raw, Mapping)]
                link = body.get("@odata.nextLink")
                if isinstance(link, str):  # followed verbatim, as every nextLink (api.py)
                    perms += [to_permission(raw) for raw in self.client.pages(link)]
                out[entry.id] = perms
                continue
            else:
                err = translate(sub_response(answer, resp), what=what)
            if isinstance(err, TransientError):
                if again is None or wait_s(err) > wait_s(again):
                    again = err
            else:
                out[entry.id] = err
        return again
