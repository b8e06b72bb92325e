"""Drive content over HTTP: downloads (alt=media, Range), export, and the three upload protocols.

Only wire parsing lives here (Range, Content-Range, multipart/related, headers); the rules are in
`uploads.py` (sessions) and `models.py` (files, quotas).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driveferry.emulator.drive import fields
from driveferry.emulator.drive.errors import DriveError, bad_request, not_downloadable, range_not_satisfiable
from driveferry.emulator.drive.hashing import write_blob
from driveferry.emulator.drive.models import DriveModel
from driveferry.emulator.drive.records import OCTET_STREAM, DriveFile, StoredContent
from driveferry.emulator.drive.uploads import ContentRange, UploadSessions, exact_body
from driveferry.emulator.http import FileBody, Request, Response

_BLOCK = 1 << 20  # upload read size: fewer, larger hand-offs to the hashing lanes
_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.I)


def open_range(path: Path, start: int, end: int, block: int = 1 << 20) -> FileBody:
    """Bytes [start, end) of a blob, opened now (see http.FileBody)."""
    return FileBody(path, start, end, block)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) for a `Range: bytes=a-b` header; None to send everything; 416 past the end.

    A syntactically invalid Range is ignored (RFC 9110); only the first of several ranges is honoured.
    """
    if not header:
        return None
    m = _RANGE.match(header.split(",")[0].strip().replace(" ", ""))
    if not m or not (m[1] or m[2]):
        return None
    if not m[1]:  # suffix range: the last N bytes
        n = int(m[2])
        if n == 0 or size == 0:
            raise range_not_satisfiable(size)
        return max(0, size - n), size
    start = int(m[1])
    if m[2] and int(m[2]) < start:
        return None
    if start >= size:  # also every range of an empty file [OBS; api-notes 4.1]
        raise range_not_satisfiable(size)
    end = min(size, int(m[2]) + 1) if m[2] else size
    return start, end


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, Any], bytes, str | None]:
    """(metadata, media, media content type) from a multipart/related body.

    googleapiclient writes bare `\\n` line endings, not CRLF [RUN, api-notes 4.2]; both are accepted.
    """
    m = _BOUNDARY.search(content_type)
    if not m or not content_type.lower().startswith("multipart/"):
        raise bad_request("Multipart uploads need Content-Type multipart/related with a boundary.",
                          "Content-Type")
    dash = b"--" + m[1].encode()
    first = body.find(dash)
    # The line break before each delimiter belongs to the delimiter (RFC 2046 section 5.1.1), not to the
    # part: only that exact break is removed, so media ending in \r or \n keeps its last byte. The writer's
    # break (CRLF, or googleapiclient's bare LF) is the one after the first boundary.
    nl = b"\r\n" if first >= 0 and body.startswith(b"\r\n", first + len(dash)) else b"\n"
    parts: list[tuple[dict[str, str], bytes]] = []
    for raw in (nl + body).split(nl + dash)[1:]:
        if raw.startswith(b"--"):
            break
        raw = raw.lstrip(b" \t")  # transport padding after the boundary
        if not raw.startswith(nl):
            raise bad_request("Malformed multipart body: a boundary line does not end.")
        raw = raw[len(nl):]
        if raw.startswith(nl):  # a part with no headers
            head, content = b"", raw[len(nl):]
        else:
            end = raw.find(nl + nl)
            if end < 0:
                raise bad_request("Malformed multipart body: a part has no header end.")
            head, content = raw[:end], raw[end + 2 * len(nl):]
        headers = {}
        for line in head.decode("latin-1").splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        parts.append((headers, content))
    if len(parts) != 2:
        raise bad_request(f"Multipart uploads need exactly 2 parts (metadata, media), got {len(parts)}.")
    try:
        meta = json.loads(parts[0][1] or b"{}")
    except ValueError as exc:
        raise DriveError(400, "parseError", f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(meta, dict):
        raise DriveError(400, "parseError", "Invalid JSON payload received. Expected an object.")
    return meta, parts[1][1], parts[1][0].get("content-type")


def json_body(req: Request) -> dict[str, Any]:
    """The request's JSON object (empty body: {}); 400 parseError otherwise, as Drive answers."""
    try:
        data = req.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise DriveError(400, "parseError", f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(data, dict):
        raise DriveError(400, "parseError", "Invalid JSON payload received. Expected an object.")
    return data


class MediaHandlers:
    """Handlers for downloads and uploads; `user` maps a request to the token's subject."""

    def __init__(self, model: DriveModel, sessions: UploadSessions, user: Callable[[Request], str]) -> None:
        self.model = model
        self.sessions = sessions
        self.user = user

    # --- downloads ---------------------------------------------------------------------------------------

    def download(self, req: Request) -> Response:
        f = self.model.get(req.params["id"], all_drives=req.flag("supportsAllDrives"))
        path = self.model.blob_path(f)
        if f.is_native or path is None:
            raise not_downloadable()
        size = f.size or 0
        rng = parse_range(req.headers.get("range"), size)
        headers = [("Content-Type", f.mime_type), ("Accept-Ranges", "bytes")]
        if rng is None:
            body = open_range(path, 0, size) if size else b""  # the server never iterates an empty body
            return Response(200, headers, body, length=size, download=True)
        start, end = rng
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        return Response(206, headers, open_range(path, start, end), length=end - start, download=True)

    def export(self, req: Request) -> Response:
        f = self.model.get(req.params["id"], all_drives=req.flag("supportsAllDrives"))
        mime = req.arg("mimeType")
        if not mime:
            raise DriveError(400, "required", "Required parameter: mimeType", location="mimeType")
        if not f.is_native or f.is_folder:
            raise DriveError(403, "fileNotExportable", "Export only supports Docs Editors files.",
                             location="fileId")
        data = self.model.export_text(f, mime)
        return Response(200, [("Content-Type", mime)], iter([data]), length=len(data), download=True)

    # --- uploads -----------------------------------------------------------------------------------------

    def initiate(self, req: Request) -> Response:
        """POST/PATCH ...?uploadType=resumable: 200 + Location (the only reply the Python client accepts)."""
        fields.file_mask(req.arg("fields"))  # a bad selector fails now, not after the upload
        meta = json_body(req)
        total_hdr = req.headers.get("x-upload-content-length")
        try:
            total = int(total_hdr) if total_hdr else None
        except ValueError:
            raise bad_request("Invalid X-Upload-Content-Length.", "X-Upload-Content-Length") from None
        if total is not None and total < 0:
            raise bad_request("Invalid X-Upload-Content-Length.", "X-Upload-Content-Length")
        upload_mime = req.headers.get("x-upload-content-type")
        target = req.params.get("id")
        if upload_mime and "mimeType" not in meta and target is None:
            meta["mimeType"] = upload_mime
        params = {"all_drives": req.flag("supportsAllDrives"), "add_parents": req.arg("addParents", ""),
                  "remove_parents": req.arg("removeParents", ""),
                  "client": self.model.client()}  # whose appProperties the chunk requests write (realism)
        s = self.sessions.initiate(self.user(req), meta, fields=req.arg("fields"), target_id=target,
                                   total=total, params=params)
        uri = f"{req.base_url}/upload/drive/v3/files?uploadType=resumable&upload_id={s.upload_id}"
        return Response.empty(200, [("Location", uri), ("X-GUploader-UploadID", s.upload_id)])

    def chunk(self, req: Request) -> Response:
        """PUT or POST to a session URI: 308 + Range while incomplete (no Range if nothing kept), 200 + file
        at the end. Drive takes chunks by POST as well as PUT (Google's Go client and rclone POST them)."""
        uid = req.arg("upload_id") or ""
        header, length = req.headers.get("content-range"), req.content_length
        if header is None and length is None:  # a chunked body that is the whole content: its size is what came
            length = len(req.body())
        rng = ContentRange.parse(header, length)
        body = req.iter_body(_BLOCK) if length is not None else exact_body(rng, req.iter_body(_BLOCK))
        result = self.sessions.put(uid, rng, body)
        if result.file is not None:
            mask = fields.file_mask(result.session.fields)
            return Response.json(fields.apply(self.model.resource(result.file), mask))
        headers = [("Range", f"bytes=0-{result.received - 1}")] if result.received else []
        headers.append(("X-GUploader-UploadID", uid))
        return Response.empty(308, headers)

    def cancel(self, req: Request) -> Response:
        """DELETE on a session URI: drop the session and its bytes; later PUTs get 404.

        Drive documents no cancel (sessions just expire); GCS answers 499 to this. The emulator answers
        204 [UNC] so a best-effort abort is cheap, and a cancelled upload never becomes a file.
        """
        self.sessions.cancel(req.arg("upload_id") or "")
        return Response.empty(204)

    def simple(self, req: Request) -> Response:
        """uploadType=media (raw body) or multipart (metadata + media in one request)."""
        kind = req.arg("uploadType")
        mask = fields.file_mask(req.arg("fields"))
        user = self.user(req)
        self.model.quotas.check_upload_allowed(user)
        self.model.quotas.check_storage(req.content_length or 0)  # a chunked body is checked once read
        ctype = req.headers.get("content-type") or OCTET_STREAM
        if kind == "media":
            meta: dict[str, Any] = {}
            content = write_blob(self.model.state.new_blob_path(), req.iter_body(_BLOCK))
            media_type: str | None = ctype
        elif kind == "multipart":
            meta, data, media_type = parse_multipart(req.body(), ctype)
            content = write_blob(self.model.state.new_blob_path(), [data])
        else:
            raise bad_request(f"Invalid uploadType: {kind}", "uploadType")
        if req.content_length is None:
            try:
                self.model.quotas.check_storage(content.size)
            except DriveError:
                self.model.state.remove_blob(content.blob)
                raise
        self.model.quotas.record_upload(user, content.size)
        f = self._commit(req, meta, media_type, content, user)
        return Response.json(fields.apply(self.model.resource(f), mask))

    def _commit(self, req: Request, meta: dict[str, Any], media_type: str | None, content: StoredContent,
                user: str) -> DriveFile:
        target = req.params.get("id")
        try:
            if target is not None:
                return self.model.update(target, meta, add_parents=req.arg("addParents", "") or "",
                                         remove_parents=req.arg("removeParents", "") or "", content=content,
                                         all_drives=req.flag("supportsAllDrives"))
            if media_type and "mimeType" not in meta:
                meta["mimeType"] = media_type.split(";")[0].strip()
            return self.model.insert(meta, content, user, all_drives=req.flag("supportsAllDrives"))
        except BaseException:
            self.model.state.remove_blob(content.blob)
            raise
