"""Drive resumable uploads: a sans-I/O protocol and a short binding to the authorized http.

Wire protocol (api-notes 4.3): the initiation POST (PATCH to replace a file) answers 200 + Location,
the session URI. Each PUT carries `Content-Range: bytes a-b/SIZE`; Drive answers 308 with
`Range: bytes=0-N` (no Range: nothing stored) or, after the last byte, 200/201 with the file. A PUT
with `Content-Range: bytes */SIZE` and no body asks what is committed. 404/410: the session is gone.

Partial acceptance. Drive may persist fewer bytes than a PUT carried (it keeps whole 256 KiB units).
`send()` hides this: it re-sends the unaccepted tail of the same chunk until the server holds every
byte up to `offset + len(chunk)`, so on return `committed_offset == offset + len(chunk)` (or the
file is finished). Only if the server reports less than `offset` (bytes before this chunk are
missing) does send raise TransientError; the caller then asks `committed()` and rewinds its source.
After any failed request the session is "in doubt" and the next `send` first asks the server, so a
retried `send(offset, chunk, last)` is idempotent. Memory: only the caller's chunk is held.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urljoin

import httplib2

from driveferry.errors import DriveferryError, PermanentError, TransientError, UploadSessionLostError
from driveferry.integrity.hashes import Buffer
from driveferry.providers.base import Entry
from driveferry.providers.gdrive.api import FILE_FIELDS, DriveApi, Raw
from driveferry.providers.gdrive.errors import translate

CHUNK_MULTIPLE = 256 * 1024  # "multiples of 256 KB (256 x 1024 bytes)" except the final chunk
_MAX_STALLS = 3  # 308 replies in a row that accept nothing new before send gives up (transient)


@dataclass(frozen=True)
class SessionToken:
    """What another process needs to resume: the session URI (a bearer capability) and the target."""

    uri: str
    size: int
    parent: str  # parent folder id
    name: str
    parent_path: str = ""  # provider-relative path of the parent, for the finished Entry
    file_id: str | None = None  # set when the upload replaces an existing file's content

    def dumps(self) -> str:
        return json.dumps({"v": 1, **asdict(self)}, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> SessionToken:
        try:
            data = json.loads(text)
            return cls(uri=str(data["uri"]), size=int(data["size"]), parent=str(data["parent"]),
                       name=str(data["name"]), parent_path=str(data.get("parent_path", "")),
                       file_id=data.get("file_id"))
        except (ValueError, KeyError, TypeError) as exc:
            raise UploadSessionLostError(f"not a Google Drive upload token ({type(exc).__name__})") from exc


# --- sans-I/O protocol ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpCall:
    method: str
    headers: dict[str, str]
    body: Buffer = b""


@dataclass(frozen=True)
class Reply:
    """The server's view after one request: bytes committed, and the file resource once finished."""

    committed: int
    done: Raw | None = None


def chunk_call(size: int, offset: int, chunk: Buffer, last: bool) -> HttpCall:
    """The PUT for bytes [offset, offset+len(chunk)). Raises ValueError for chunks Drive would mangle."""
    end = offset + len(chunk)
    if offset < 0 or end > size:
        raise ValueError(f"chunk [{offset}, {end}) lies outside the file (size {size})")
    if last and end != size:
        raise ValueError(f"the last chunk must end at {size}, not {end}")
    if not last and (not chunk or len(chunk) % CHUNK_MULTIPLE or end == size):
        raise ValueError(f"a non-final chunk must be a non-empty multiple of {CHUNK_MULTIPLE} bytes "
                         f"ending before the file does; got {len(chunk)} at {offset}")
    if size == 0:  # an empty file is one PUT without Content-Range ("bytes 0--1/0" is a 400: api-notes 4.3)
        return HttpCall("PUT", {"content-length": "0"})
    return HttpCall("PUT", {"content-range": f"bytes {offset}-{end - 1}/{size}",
                            "content-length": str(len(chunk))}, chunk)


def status_call(size: int) -> HttpCall:
    return HttpCall("PUT", {"content-range": f"bytes */{size}", "content-length": "0"})


def parse_reply(size: int, status: int, headers: dict[str, str], content: bytes, what: str) -> Reply:
    """Interpret a chunk or status reply; anything but 308/200/201 raises the translated error
    (UploadSessionLostError for 404/410)."""
    if status == 308:
        rng = headers.get("range", "")
        if not rng:
            return Reply(0)  # no Range header: nothing stored yet (api-notes 4.3)
        return Reply(int(rng.rpartition("-")[2]) + 1)
    if status in (200, 201):
        try:
            return Reply(size, json.loads(content.decode() or "{}"))
        except ValueError as exc:
            raise PermanentError(f"{what}: finished, but the reply is not a file resource") from exc
    raise translate(_response(status, headers), content, what=what, upload_session=True)


def _response(status: int, headers: dict[str, str]) -> httplib2.Response:
    return httplib2.Response({**headers, "status": str(status)})


# --- binding --------------------------------------------------------------------------------------------


class GDriveUploadSession:
    """An UploadSession (providers.base) for one Drive resumable upload; one thread at a time.

    `committed_offset` is the byte count the server reported in its latest reply (None before the
    first); `committed()` asks afresh. `result()` is the finished Entry once the server has all bytes.
    """

    chunk_multiple = CHUNK_MULTIPLE

    def __init__(self, api: DriveApi, token: SessionToken, to_entry: Callable[[Raw, str], Entry]) -> None:
        self._api = api
        self._tok = token
        self._to_entry = to_entry
        self.token = token.dumps()
        self.size = token.size
        self.committed_offset: int | None = None
        self._result: Entry | None = None
        self._doubt = False
        self._aborted = False
        self._what = f"upload {token.name!r}"

    def result(self) -> Entry | None:
        return self._result

    def committed(self) -> int:
        """Bytes the server holds (asked now). A finished upload returns `size` and sets `result()`."""
        reply = self._do(status_call(self.size))
        self._doubt = False
        return reply.committed

    def send(self, offset: int, chunk: Buffer, last: bool) -> Entry | None:
        """Store bytes [offset, offset+len(chunk)); returns the finished Entry when the file is complete.

        `send(size, b"", True)` only asks the server and returns the Entry if it already finished.
        Raises ValueError for a misaligned chunk, TransientError if the server lacks bytes before
        `offset`, UploadSessionLostError, QuotaExceededError and other translated errors.
        """
        end = offset + len(chunk)
        if self._result is None and (self._doubt or (self.size and offset == self.size and not chunk)):
            self.committed()
        if self._result is not None:
            return self._result if last else None
        if self.size and offset == self.size and not chunk:
            return None
        pos = max(offset, self.committed_offset or 0) if not self._doubt else offset
        stalls = 0
        while pos < end or (self.size == 0 and last):
            reply = self._do(chunk_call(self.size, pos, chunk[pos - offset:], last))
            if reply.done is not None:
                return self._result
            if reply.committed < offset:
                self._doubt = True
                raise TransientError(f"{self._what}: server holds {reply.committed} bytes, fewer than the "
                                     f"offset {offset} being sent; ask committed() and resend from there")
            if reply.committed >= end:
                return None
            stalls = stalls + 1 if reply.committed <= pos else 0
            if stalls >= _MAX_STALLS:
                self._doubt = True
                raise TransientError(f"{self._what}: server accepts no bytes at offset {reply.committed}")
            pos = reply.committed  # partial acceptance: send the tail of the same chunk again
        return None

    def abort(self) -> None:
        """Cancel the session (best effort: Drive documents no cancel, the session expires in a week)."""
        self._aborted = True
        try:
            self._api.raw("DELETE", self._tok.uri, what=self._what)
        except DriveferryError:
            pass

    def _do(self, call: HttpCall) -> Reply:
        if self._aborted:
            raise UploadSessionLostError(f"{self._what}: the session was aborted")
        try:
            resp, content = self._api.raw(call.method, self._tok.uri, body=call.body, headers=call.headers,
                                          what=self._what)
            reply = parse_reply(self.size, resp.status, dict(resp), content, self._what)
        except Exception:
            self._doubt = True  # whatever the server did with this request, ask before the next one
            raise
        self.committed_offset = reply.committed
        if reply.done is not None:
            self._result = self._to_entry(reply.done, self._tok.parent_path)
        return reply


def initiate(api: DriveApi, token_fields: dict[str, Any], metadata: Raw, mime_type: str | None) -> str:
    """Start a session (POST, or PATCH when replacing `file_id`); returns the session URI."""
    size = int(token_fields["size"])
    file_id = token_fields.get("file_id")
    uri = api.upload_url + (f"/{file_id}" if file_id else "")
    query = "?uploadType=resumable&supportsAllDrives=true&fields=" + quote(FILE_FIELDS, safe="")
    headers = {"content-type": "application/json; charset=UTF-8", "x-upload-content-length": str(size)}
    if mime_type:
        headers["x-upload-content-type"] = mime_type
    what = f"start upload of {token_fields['name']!r}"
    resp, content = api.raw("PATCH" if file_id else "POST", uri + query,
                            body=json.dumps(metadata).encode(), headers=headers, what=what)
    location = resp.get("location")
    # googleapiclient accepts only 200 + Location here (api-notes 4.3); anything else is an error
    if resp.status != 200 or not location:
        raise translate(resp, content, what=what) if resp.status >= 300 else TransientError(
            f"{what}: HTTP {resp.status} without a session URI")
    return urljoin(api.root_url, str(location))
