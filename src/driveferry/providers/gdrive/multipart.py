"""A small file to Drive in one request: a multipart upload under a pre-generated id.

Wire format (api-notes 4.2): `POST /upload/drive/v3/files?uploadType=multipart` with
`Content-Type: multipart/related; boundary=...`, a JSON metadata part, then the media part. The
metadata carries everything the copy needs (name, parent, modifiedTime, createdTime, provenance
`properties`) and `fields` asks for everything the proof reads, so nothing follows the upload. Google
recommends multipart for files of 5 MB or less (developers.google.com/drive/api/guides/manage-uploads).

Idempotence without a lookup: the metadata names an id from files.generateIds. A create that repeats
an id in use answers 409 (api-notes 4.3), so after a lost reply the session asks files.get(id), which
does not lag the way listings do (api-notes Part C §20), and a retry never makes a twin.

The session is an UploadSession (providers.base): `send(0, whole_file, last=True)` is the one request;
`committed()` is files.get(id). Its token names the id; resuming it when no file has that id yet
raises UploadSessionLostError (no byte had been sent, and the metadata lived only in the first
process), and the caller starts the file afresh. So the adapter uses it only when the caller declares
that it hands over the whole file in one send (UploadMeta.one_send); otherwise a resumable session.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from urllib.parse import quote

from driveferry.errors import NotFoundError, PermanentError, TransientError, UploadSessionLostError
from driveferry.integrity.hashes import Buffer
from driveferry.providers.base import Entry
from driveferry.providers.gdrive.api import FILE_FIELDS, DriveApi, Raw
from driveferry.providers.gdrive.errors import translate
from driveferry.providers.gdrive.upload import CHUNK_MULTIPLE

MULTIPART_MAX_BYTES = 5 * 1000 * 1000  # "5 MB or less" (manage-uploads guide)
KIND = "multipart"


@dataclass(frozen=True)
class MultipartToken:
    """The resumable part of a one-request upload: the pre-generated id and where the file goes."""

    id: str
    size: int
    parent: str
    name: str
    parent_path: str = ""

    def dumps(self) -> str:
        return json.dumps({"v": 1, "kind": KIND, **asdict(self)}, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> MultipartToken:
        try:
            data = json.loads(text)
            if data.get("kind") != KIND:
                raise ValueError("not a multipart token")
            return cls(id=str(data["id"]), size=int(data["size"]), parent=str(data["parent"]),
                       name=str(data["name"]), parent_path=str(data.get("parent_path", "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UploadSessionLostError(f"not a Drive multipart token ({type(exc).__name__})") from exc


def is_multipart_token(text: str) -> bool:
    try:
        return bool(json.loads(text).get("kind") == KIND)
    except (ValueError, AttributeError):
        return False


def multipart_body(metadata: Raw, data: Buffer, media_type: str) -> tuple[bytes, str]:
    """(body, content type) of a multipart/related upload. The file's bytes are copied once, into the
    body: httplib2 needs one bytes-like body of known length, and these files are at most 5 MB."""
    boundary = "=" * 15 + secrets.token_hex(16) + "=="  # as googleapiclient's email generator spells it
    head = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(metadata)}\r\n"
            f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return b"".join((head, data, tail)), f'multipart/related; boundary="{boundary}"'


class MultipartSession:
    """One Drive upload made as a single multipart request (see module doc); one thread at a time."""

    chunk_multiple = CHUNK_MULTIPLE

    def __init__(self, api: DriveApi, token: MultipartToken, metadata: Raw | None, mime_type: str | None,
                 to_entry: Callable[[Raw, str], Entry]) -> None:
        self._api = api
        self._tok = token
        self._meta = metadata  # None in a resumed session: only the first process knows it
        self._mime = mime_type or "application/octet-stream"
        self._to_entry = to_entry
        self.token = token.dumps()
        self.size = token.size
        self.committed_offset: int | None = None
        self._result: Entry | None = None
        self._what = f"upload {token.name!r}"

    def result(self) -> Entry | None:
        return self._result

    def committed(self) -> int:
        """`size` once the file exists under the token's id (and `result()` is set), else 0."""
        try:
            raw = self._api.get(self._tok.id)
        except NotFoundError:
            self.committed_offset = 0
            return 0
        self._finished(raw)
        return self.size

    def send(self, offset: int, chunk: Buffer, last: bool) -> Entry | None:
        """`send(0, data, True)` with the whole file is the one request; `send(size, b"", True)` only
        reports a finished file. Raises ValueError for anything else (the caller declared one send:
        UploadMeta.one_send), UploadSessionLostError when a resumed session would have to send bytes,
        and translated Drive errors."""
        if self._result is not None:
            return self._result if last else None
        if offset == self.size and not chunk and last and self.size:
            return self._result if self.committed() == self.size else None
        if offset != 0 or len(chunk) != self.size or not last:
            raise ValueError(f"{self._what}: a one-request upload takes the whole file ({self.size} bytes) "
                             f"in one send, not {len(chunk)} bytes at {offset}")
        if self._meta is None:
            raise UploadSessionLostError(f"{self._what}: a resumed one-request upload cannot be re-sent")
        self._post(chunk)
        return self._result

    def _post(self, data: Buffer) -> None:
        assert self._meta is not None
        body, ctype = multipart_body({**self._meta, "id": self._tok.id}, data, self._mime)
        uri = (self._api.upload_url + "?uploadType=multipart&supportsAllDrives=true&fields="
               + quote(FILE_FIELDS, safe=""))
        resp, content = self._api.raw("POST", uri, body=body, headers={"content-type": ctype}, what=self._what)
        if resp.status == 409:  # our id exists: an earlier try of this very request went through
            self.committed()
            return
        if resp.status != 200:
            raise translate(resp, content, what=self._what)
        try:
            raw = json.loads(content.decode() or "{}")
        except ValueError as exc:
            raise TransientError(f"{self._what}: the reply is not a file resource") from exc
        self._finished(raw)

    def abort(self) -> None:
        """Nothing to cancel: before the one request nothing exists, after it the file is whole (a
        caller that refuses it deletes it, as with any finished upload)."""

    def _finished(self, raw: Raw) -> None:
        if str(raw.get("id")) != self._tok.id or self._tok.parent not in (raw.get("parents") or []):
            raise PermanentError(f"{self._what}: file {raw.get('id')} is not the one this upload created")
        self.committed_offset = self.size
        self._result = self._to_entry(raw, self._tok.parent_path)
