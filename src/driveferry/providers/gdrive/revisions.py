"""Drive revisions as a driveferry capability (`Features.revisions`, a RevisionWriter).

A blob file's content history is its revisions (developers.google.com/drive/api/reference/rest/v3/revisions):
every files.update that carries content makes a new head revision of the same file id, so uploading a
file's earlier versions oldest first and its current content last rebuilds the history with the current
content as the head. Revisions other than the head are purged by Drive after about 30 days, or earlier
once a file holds 100 purgeable ones, unless marked keepForever (at most 200 per file; manage-revisions
guide): a copied history is kept only when each of its revisions is so marked. revisions.list answers only
id, mimeType, kind and modifiedTime unless `fields` asks for more, and reports md5Checksum and size
(no SHA-256); revisions take no supportsAllDrives parameter.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from driveferry.errors import PermanentError
from driveferry.providers.base import Entry, FileRevision, UploadMeta
from driveferry.providers.gdrive.api import DriveApi, Raw
from driveferry.providers.gdrive.errors import translate
from driveferry.providers.gdrive.upload import GDriveUploadSession, SessionToken, initiate

_FIELDS = "nextPageToken,revisions(id,md5Checksum,size,keepForever,modifiedTime)"
_PAGE = 1000  # revisions.list's largest pageSize


class DriveRevisions:
    """RevisionWriter over one Drive account. `to_entry` is the provider's raw-file normaliser."""

    def __init__(self, api: DriveApi, to_entry: Any) -> None:
        self.api = api
        self._to_entry = to_entry

    def _call(self, method: str, path: str, what: str, params: dict[str, str] | None = None,
              body: Raw | None = None) -> tuple[Any, bytes]:
        uri = f"{self.api.base_url}files/{path}" + (f"?{urlencode(params)}" if params else "")
        headers = {"content-type": "application/json; charset=UTF-8"} if body is not None else {}
        resp, content = self.api.raw(method, uri, body=json.dumps(body).encode() if body is not None else b"",
                                     headers=headers, what=what)
        if resp.status >= 300:
            raise translate(resp, content, what=what)
        return resp, content

    def begin_revision(self, entry: Entry, size: int, meta: UploadMeta) -> GDriveUploadSession:
        """A resumable upload of new content for `entry` (files.update with media: a PATCH on its id), which
        becomes its head revision. Times, MIME type and properties of `meta` go in the same update."""
        body: Raw = {}
        if meta.modified is not None:
            body["modifiedTime"] = meta.modified.isoformat().replace("+00:00", "Z")
        if meta.mime_type:
            body["mimeType"] = meta.mime_type
        if meta.properties:
            body["properties"] = {k: str(v) for k, v in meta.properties.items()}
        parent = posixpath.dirname(entry.path)
        fields = {"size": size, "parent": entry.parent_id or "", "name": entry.name, "parent_path": parent,
                  "file_id": entry.id}
        uri = initiate(self.api, fields, body, meta.mime_type)
        token = SessionToken(uri=uri, size=size, parent=entry.parent_id or "", name=entry.name,
                             parent_path=parent, file_id=entry.id)
        return GDriveUploadSession(self.api, token, self._to_entry)

    def revisions(self, entry: Entry) -> list[FileRevision]:
        """The file's revisions, oldest first (the head last), with md5, size and keepForever."""
        out: list[FileRevision] = []
        params = {"fields": _FIELDS, "pageSize": str(_PAGE)}
        while True:
            _, content = self._call("GET", f"{quote(entry.id, safe='')}/revisions", f"revisions of {entry.path}",
                                    params)
            page = json.loads(content or b"{}")
            for raw in page.get("revisions") or []:
                out.append(FileRevision(id=str(raw["id"]), size=int(raw.get("size") or 0),
                                        md5=raw.get("md5Checksum"), keep_forever=bool(raw.get("keepForever"))))
            token = page.get("nextPageToken")
            if not token:
                return out
            params = {**params, "pageToken": str(token)}

    def keep_revision(self, entry: Entry, revision_id: str) -> None:
        """Mark a revision keepForever, so Drive never purges it. Raises ProviderError."""
        _, content = self._call("PATCH", f"{quote(entry.id, safe='')}/revisions/{quote(revision_id, safe='')}",
                                f"keep revision of {entry.path}", {"fields": "id,keepForever"},
                                {"keepForever": True})
        if not json.loads(content or b"{}").get("keepForever"):
            raise PermanentError(f"{entry.path}: Drive did not keep revision {revision_id}")

    def delete_revision(self, entry: Entry, revision_id: str) -> None:
        """Delete one revision (the head: the previous one is the file's content again)."""
        self._call("DELETE", f"{quote(entry.id, safe='')}/revisions/{quote(revision_id, safe='')}",
                   f"delete revision of {entry.path}")

    def open_revision(self, entry: Entry, revision_id: str) -> Iterator[bytes]:
        """A revision's bytes (revisions.get with alt=media), whole."""
        _, content = self._call("GET", f"{quote(entry.id, safe='')}/revisions/{quote(revision_id, safe='')}",
                                f"download revision of {entry.path}", {"alt": "media"})
        yield content
