"""Graph upload sessions (resumable), plus the simple PUT that zero-byte files need.

Protocol (api-notes 11.2): POST .../createUploadSession -> `uploadUrl`, a bearer capability (it may sit in
the journal, it is never logged). Fragments are PUT to it WITHOUT Authorization (Graph: "may result in a
401") with `Content-Range: bytes a-b/size`; 202 answers list `nextExpectedRanges`, the last fragment gets
200/201 and the driveItem. GET uploadUrl reports the ranges, DELETE drops the session, 404 means it is gone.

Partial acceptance: a server may keep less than a fragment (ranges then unaligned to 320 KiB, issue #75).
`send` re-bases on the server's first expected byte and re-sends the rest of the chunk it holds, so when
it returns the whole chunk is committed. A chunk larger than MAX_CHUNK goes as several fragments, each
ending on a 320 KiB boundary. If the server wants bytes *before* the chunk, `send` raises
UploadOutOfSyncError(committed_offset); the caller re-reads from there. On 416 (overlap, out of order)
we ask the server for its ranges, as rclone does, instead of guessing.

A session cannot carry zero bytes, so a zero-byte file is one PUT .../content when `send` is called.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from driveferry.errors import PermanentError, UploadSessionLostError
from driveferry.integrity.hashes import Buffer
from driveferry.providers.base import Entry
from driveferry.providers.onedrive.api import GraphClient, path_segments
from driveferry.providers.onedrive.errors import FragmentRejectedError, UploadOutOfSyncError, translate

log = logging.getLogger(__name__)

CHUNK_MULTIPLE = 320 * 1024  # Graph: every fragment but the last a multiple of 320 KiB
MAX_CHUNK = 191 * CHUNK_MULTIPLE  # "less than 60 MiB" per request; 192 x 320 KiB would be exactly 60
_MAX_REBASES = 5

EntryOf = Callable[[dict[str, Any], str], Entry]  # (driveItem, plain path) -> Entry
Find = Callable[[str], Entry | None]  # plain path -> the item there, if any


def graph_time(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def first_expected(body: Any) -> int | None:
    """The first byte the server still wants, from `nextExpectedRanges` ("26-", "0-99"); None if none."""
    ranges = body.get("nextExpectedRanges") if isinstance(body, dict) else None
    starts = [int(str(r).split("-", 1)[0]) for r in ranges or [] if str(r).split("-", 1)[0].isdigit()]
    return min(starts) if starts else None


@dataclass(frozen=True)
class UploadToken:
    """Everything needed to resume in another process (JSON in the journal)."""

    size: int
    parent_id: str
    name: str  # as stored on OneDrive (encoded)
    path: str  # plain path relative to the provider root, for the final Entry
    upload_url: str | None  # None: zero-byte file, uploaded by a simple PUT
    replace: bool
    modified: str | None
    created: str | None = None  # fileSystemInfo.createdDateTime (tokens written before lack it)

    def dumps(self) -> str:
        return json.dumps({"v": 1, **asdict(self)}, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> UploadToken:
        try:
            data = json.loads(text)
            data.pop("v", None)
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise UploadSessionLostError("not a OneDrive upload token") from exc


def _fs_times(t: UploadToken) -> dict[str, str]:
    return {k: v for k, v in (("lastModifiedDateTime", t.modified), ("createdDateTime", t.created)) if v}


def create_session(client: GraphClient, parent_id: str, name: str, path: str, size: int, *,
                   replace: bool, modified: datetime | None, created: datetime | None = None) -> UploadToken:
    """Start an upload (a real session unless `size` is 0). Raises AlreadyExists/Quota/NotFound errors."""
    when = graph_time(modified) if modified else None
    born = graph_time(created) if created else None
    if size == 0:
        return UploadToken(size, parent_id, name, path, None, replace, when, born)
    item: dict[str, Any] = {"@microsoft.graph.conflictBehavior": "replace" if replace else "fail",
                            "name": name, "fileSize": size}  # fileSize: a full drive fails now, not at the end
    # the item's fileSystemInfo is writable in createUploadSession (api-notes Part B §11.2)
    times = {"lastModifiedDateTime": when, "createdDateTime": born}
    if when or born:
        item["fileSystemInfo"] = {k: v for k, v in times.items() if v}
    url = f"{client.id_url(parent_id)}:/{path_segments(name)}:/createUploadSession"

    body = client.request("POST", url, json={"item": item}, what=f"create upload session for {path}").json()
    return UploadToken(size, parent_id, name, path, str(body["uploadUrl"]), replace, when, born)


class GraphUploadSession:
    """One resumable upload (the UploadSession contract of providers/base.py). Requests are made once;
    the retry layer retries them."""

    chunk_multiple = CHUNK_MULTIPLE
    # A fragment PUT may answer 404 right after the session was created and succeed when repeated
    # (rclone sleeps 5 s and retries the same fragment: api-notes Part C §18); the retry layer reads this.
    transient_lost = True

    def __init__(self, client: GraphClient, token: UploadToken, entry_of: EntryOf, find: Find) -> None:
        self._client = client
        self._t = token
        self._entry_of = entry_of
        self._find = find
        self._done: Entry | None = None
        self._created: dict[str, Any] | None = None  # a zero-byte file PUT, before its times are set
        self.max_fragment = MAX_CHUNK
        self.size = token.size
        self.token = token.dumps()

    # --- HTTP to the upload URL (no Authorization: the URL is the credential) ---------------------------

    def _call(self, method: str, what: str, **kwargs: Any) -> requests.Response:
        assert self._t.upload_url is not None
        try:
            return self._client.session().request(method, self._t.upload_url, timeout=self._client.timeout,
                                                  **kwargs)
        except requests.RequestException as exc:
            raise translate(exc, what=f"{what} for {self._t.path}") from exc

    def _status(self) -> int:
        """Server's first expected byte; `size` when the upload already completed."""
        resp = self._call("GET", "upload status")
        if resp.status_code == 200:
            nxt = first_expected(resp.json())
            return self.size if nxt is None else nxt
        err = translate(resp, what=f"upload status for {self._t.path}", upload_session=True)
        if isinstance(err, UploadSessionLostError) and self._completed() is not None:
            return self.size  # a finished session is gone too; the file is there
        raise err

    def _completed(self) -> Entry | None:
        """The uploaded file if the session finished: we saw it, or the item at the path has our size and
        the modified time the session set (so an older file we were to replace does not count). The relay
        still compares hashes before it trusts the result."""
        if self._done is None:
            found = self._find(self._t.path)
            if found is not None and found.size == self.size and self._ours(found):
                self._done = found
        return self._done

    def _ours(self, found: Entry) -> bool:
        if not self._t.modified or found.modified is None:
            return True
        wanted = datetime.fromisoformat(self._t.modified.replace("Z", "+00:00"))
        return abs((found.modified - wanted).total_seconds()) < 1  # Graph keeps whole seconds

    # --- the contract -------------------------------------------------------------------------------

    def committed(self) -> int:
        if self._t.upload_url is None:
            return 0 if self._done is None else self.size
        return self.size if self._done is not None else self._status()

    def send(self, offset: int, chunk: Buffer, last: bool) -> Entry | None:
        end = offset + len(chunk)
        if end > self.size or (last and end != self.size):
            raise PermanentError(f"upload {self._t.path}: bytes {offset}-{end} do not fit size {self.size}")
        if self._done is not None and end >= self.size:
            return self._done
        if self._t.upload_url is None:
            return self._simple_put()
        if not chunk:  # "finish" call: the server may have completed the file on an earlier request
            return self._completed() if self._status() >= self.size else None
        view, pos, rebases = memoryview(chunk), offset, 0  # slices of a memoryview copy nothing
        while pos < end:
            stop = min(end, (pos + self.max_fragment) // CHUNK_MULTIPLE * CHUNK_MULTIPLE)
            data = chunk if (pos, stop) == (offset, end) else view[pos - offset:stop - offset]
            headers = {"Content-Range": f"bytes {pos}-{stop - 1}/{self.size}"}
            resp = self._call("PUT", "upload fragment", data=data, headers=headers)
            if resp.status_code in (200, 201):
                self._done = self._entry_of(resp.json(), self._t.path)
                return self._done
            if resp.status_code == 202:
                nxt = first_expected(resp.json())
                new_pos = stop if nxt is None else nxt
            else:
                err = translate(resp, what=f"upload fragment for {self._t.path}", upload_session=True)
                if isinstance(err, UploadSessionLostError) and last and self._completed() is not None:
                    return self._done  # our final fragment landed, but its answer was lost
                if not isinstance(err, FragmentRejectedError) or rebases >= _MAX_REBASES:
                    raise err
                new_pos = self._status()
            if new_pos < offset:
                raise UploadOutOfSyncError(f"upload {self._t.path}: server expects byte {new_pos}, "
                                           f"before this chunk at {offset}", committed_offset=new_pos)
            if new_pos <= pos:
                rebases += 1  # the server kept less than we sent (issue #75): send the rest again
                if rebases > _MAX_REBASES:
                    raise UploadOutOfSyncError(f"upload {self._t.path}: no progress at byte {pos}",
                                               committed_offset=new_pos)
            pos = new_pos
        if last:
            return self._completed() if self._status() >= self.size else None
        return None

    def _simple_put(self) -> Entry:
        t = self._t
        behaviour = "replace" if t.replace else "fail"
        url = f"{self._client.id_url(t.parent_id)}:/{path_segments(t.name)}:/content"

        if self._created is None:  # a retry after a refused PATCH must not PUT again: with "fail", 409
            resp = self._client.request("PUT", url, data=b"", ok=(200, 201), what=f"upload {t.path}",
                                        params={"@microsoft.graph.conflictBehavior": behaviour})
            self._created = resp.json()
        item: dict[str, Any] = self._created
        if t.modified or t.created:  # a simple PUT cannot carry fileSystemInfo: set it afterwards
            item = self._client.request("PATCH", self._client.id_url(str(item["id"])), what=f"set time of {t.path}",
                                        json={"fileSystemInfo": _fs_times(t)}).json()
        self._done = self._entry_of(item, t.path)
        return self._done

    def abort(self) -> None:
        if self._t.upload_url is None or self._done is not None:
            return
        resp = self._call("DELETE", "cancel upload")
        if resp.status_code not in (200, 204, 404):  # 404: already gone, which is what we wanted
            raise translate(resp, what=f"cancel upload for {self._t.path}", upload_session=True)
