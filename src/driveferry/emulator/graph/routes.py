"""Graph v1.0 over HTTP: addressing, OData paging, delta, download redirects and uploads.

Addressing (api-notes 8.2): `/v1.0/me/drive` or `/v1.0/drives/{id}`, then `/root` or `/items/{id}`
(`root` is also an item alias), optionally followed by a path `:/a/b:` relative to that item (the path
arrives percent-decoded; the trailing colon is optional when nothing follows), then `/children`,
`/content`, `/delta` or `/createUploadSession`. `/me` needs a delegated token: with an app-only
(client-credentials) token it is 400 BadRequest, as real Graph answers.

Pre-authenticated URLs live under the same base URL and take no Authorization header:
`/_graphdl/{token}` (downloads, 1 hour; GET and HEAD) and `/_graphup/{session}` (upload sessions,
24 hours: PUT fragment, GET status, DELETE cancel, POST commit for `deferCommit` sessions).

Documented emulator choices where Graph is unconfirmed (api-notes 17.4):
- simple upload (PUT .../content) accepts up to `simple_upload_limit` bytes (default 4 MiB, the
  historical Business limit); larger is 413 requestTooLarge before the body is read;
- uploads by path (simple or session) need the parent folders to exist (404 itemNotFound otherwise);
- `/content` of a folder or a OneNote package (not downloadable as a file) is 406 notSupported;
- an expired or forged download URL is 401 unauthenticated with a Graph error body;
- `$top` defaults to 200, is clamped at 1000, and below 1 is 400 invalidRequest;
- a delta token may be a timestamp (`token=2021-09-29T20:00:00Z`, Business only): changes after it;
- a delta token that is malformed or issued before `GraphModel.expire_delta_tokens()` is 410
  resyncRequired with a `Location` header holding a fresh delta URL.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from driveferry.emulator.graph.copy import CopyJobs
from driveferry.emulator.graph.errors import (
    GraphError,
    InvalidRange,
    InvalidRequest,
    ItemNotFound,
    NotSupported,
    Unauthenticated,
    graph_errors,
    graph_response,
    to_response,
)
from driveferry.emulator.graph.models import GraphModel, Item, parse_time
from driveferry.emulator.graph.render import DownloadTokens, Renderer
from driveferry.emulator.graph.sessions import UploadSessions
from driveferry.emulator.http import Request, Response, Router, WireError

if TYPE_CHECKING:
    from driveferry.emulator.server import Emulator

# `/users/{id | userPrincipalName}/drive`: a user's OneDrive by object id or UPN, the address app-only
# tokens use (https://learn.microsoft.com/en-us/graph/api/drive-get, api-notes 8.2)
_DRIVE = r"/v1\.0/(?:me/drive|drives/(?P<drive>[^/]+)|users/(?P<user>[^/]+)/drive)"
_BASE = r"(?:/root|/items/(?P<item>[^/:]+))"
_ITEM = _DRIVE + _BASE + r"(?::(?P<path>[^:]*):?)?"  # trailing colon optional when nothing follows
_SUB = _DRIVE + _BASE + r"(?::(?P<path>[^:]*):)?"  # ...but required before /children etc.
# `/drive` (the caller's default drive) is also a documented address for copy (driveitem-copy)
_COPY = r"/v1\.0/(?:me/drive|drive|drives/(?P<drive>[^/]+)|users/(?P<user>[^/]+)/drive)" + _BASE + r"(?::(?P<path>[^:]*):)?" \
    r"/(?:microsoft\.graph\.)?copy"
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)\Z")
DEFAULT_TOP, MAX_TOP = 200, 1000
CONFLICT_KEY = "@microsoft.graph.conflictBehavior"


def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def _unb64(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def json_body(req: Request) -> dict[str, Any]:
    """The request's JSON object; 400 invalidRequest if it is not one."""
    try:
        data = req.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("Unable to read JSON request payload. Please ensure Content-Type header is set"
                             " and payload is of valid JSON format.") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


def fs_times(obj: object) -> tuple[str | None, str | None]:
    """(createdDateTime, lastModifiedDateTime) of a fileSystemInfo object, normalised; 400 if malformed."""
    if obj is None:
        return None, None
    if not isinstance(obj, dict):
        raise InvalidRequest("fileSystemInfo must be an object.")
    created, modified = obj.get("createdDateTime"), obj.get("lastModifiedDateTime")
    return (parse_time(created) if created is not None else None,
            parse_time(modified) if modified is not None else None)


class GraphApi:
    """The Graph module the server loads (see server.ApiModule)."""

    audience = "microsoft"
    route_prefix = "graph."

    def __init__(self, simple_upload_limit: int = 4 * 1024 * 1024) -> None:
        self.simple_upload_limit = simple_upload_limit
        self.model: GraphModel
        self.sessions: UploadSessions
        self.tokens: DownloadTokens
        self.copies: CopyJobs

    def credentials(self, base_url: str) -> dict[str, Any]:
        scale = self.emu.realism.time_scale()  # the client divides its waits by it
        return {"graph": {"api_root": base_url + "/v1.0", "drive_id": self.model.drive_id, **scale}}

    # --- wiring ----------------------------------------------------------------------------------------

    def register(self, router: Router, emulator: Emulator) -> None:
        self.emu = emulator
        self.model = GraphModel(emulator.state)
        self.sessions = UploadSessions(self.model)
        self.tokens = DownloadTokens(self.model)
        self.copies = CopyJobs(self.model)
        emulator.add_prefix_errors("/v1.0/", graph_errors)
        emulator.add_prefix_errors("/_graph", graph_errors)

        def add(name: str, method: str, pattern: str, fn: Callable[[Request], Response], auth: bool = True) -> None:
            router.add(name, method, pattern, self._guard(fn), graph_errors, auth=auth)

        add("graph.drive", "GET", _DRIVE + "/?", self.get_drive)
        add("graph.item", "GET", _ITEM, self.get_item)
        add("graph.children", "GET", _SUB + "/children", self.list_children)
        add("graph.folder.create", "POST", _SUB + "/children", self.create_folder)
        add("graph.delta", "GET", _SUB + r"/delta(?:\(\))?", self.delta)
        add("graph.content", "GET", _SUB + "/content", self.content)
        add("graph.upload.simple", "PUT", _SUB + "/content", self.simple_upload)
        add("graph.upload.create", "POST", _SUB + r"/(?:microsoft\.graph\.)?createUploadSession",
            self.create_session)
        add("graph.item.copy", "POST", _COPY, self.copy_item)
        add("graph.copy.monitor", "GET", r"/_graphmonitor/(?P<job>[^/]+)", self.copy_status, auth=False)
        add("graph.item.update", "PATCH", _ITEM, self.update_item)
        add("graph.item.delete", "DELETE", _ITEM, self.delete_item)
        add("graph.download", "GET", r"/_graphdl/(?P<token>[^/]+)", self.download, auth=False)
        add("graph.download", "HEAD", r"/_graphdl/(?P<token>[^/]+)", self.download, auth=False)
        add("graph.upload.fragment", "PUT", r"/_graphup/(?P<session>[^/]+)", self.put_fragment, auth=False)
        add("graph.upload.status", "GET", r"/_graphup/(?P<session>[^/]+)", self.session_status, auth=False)
        add("graph.upload.cancel", "DELETE", r"/_graphup/(?P<session>[^/]+)", self.cancel_session, auth=False)
        add("graph.upload.commit", "POST", r"/_graphup/(?P<session>[^/]+)", self.commit_session, auth=False)
        from driveferry.emulator.graph.permission_routes import PermissionRoutes
        self.sharing = PermissionRoutes(self)  # sharing: permissions, invite, createLink
        self.sharing.register(add, _SUB)
        from driveferry.emulator.graph.control import register_graph_control
        from driveferry.emulator.graph.sites import register_sites
        from driveferry.emulator.graph.versions import register_versions
        register_versions(router, self, add)
        register_sites(router, self, add)
        register_graph_control(router, self)
        from driveferry.emulator.graph.batch import PATTERN, ROUTE, GraphBatch
        add(ROUTE, "POST", PATTERN, GraphBatch(emulator).handle)  # JSON batching (graph/batch.py)

    def _guard(self, fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def handler(req: Request) -> Response:
            try:
                return fn(req)
            except GraphError as err:
                raise WireError(to_response(err, req.headers.get("client-request-id"))) from err
        return handler

    # --- addressing ------------------------------------------------------------------------------------

    def _check_drive(self, req: Request) -> None:
        drive, user = req.params.get("drive"), req.params.get("user")
        if drive is not None and drive != self.model.drive_id and self.model.sites.library(drive) is None:
            raise ItemNotFound(f"Drive {drive!r} was not found.")
        if user is not None:
            self._check_user(user)
        elif drive is None:
            if (req.user or "").startswith("app:"):  # the token's subject, set by Emulator.authorized
                raise GraphError("/me request is only valid with delegated authentication flow.",
                                 code="BadRequest")

    def _check_user(self, user: str) -> None:
        """The one emulated user owns the drive: named by UPN (case-insensitive, as Entra compares
        them) or by its object id; anyone else is 404 ResourceNotFound, the directory's answer for an
        unknown user (observed codes vary: microsoftgraph/microsoft-graph-docs#12216, alcionai/corso#3846)."""
        from driveferry.emulator.identity_microsoft import USERNAME
        oid = self.emu.state.get_meta("identity.ms.user_oid", "")
        if user.lower() != USERNAME.lower() and user != oid:
            raise GraphError(f"User {user!r} was not found.", status=404, code="ResourceNotFound")

    def _item(self, req: Request) -> Item:
        """The addressed item (base item, then the optional path)."""
        self._check_drive(req)
        return self.model.resolve(self._base(req), req.params.get("path", ""))

    def _base(self, req: Request) -> str:
        """The base item of an address: its item id, or the addressed drive's root (a library's own)."""
        item = req.params.get("item")
        if item is not None and item != "root":
            return item
        library = self.model.sites.library(req.params.get("drive") or "")
        return library.root_id if library is not None else "root"

    def _new_target(self, req: Request) -> tuple[Item, str] | None:
        """(parent, name) when the address ends in a path (the last segment may not exist yet)."""
        self._check_drive(req)
        segs = [s for s in req.params.get("path", "").split("/") if s]
        if not segs:
            return None
        parent = self.model.resolve(self._base(req), "/".join(segs[:-1]))
        return parent, segs[-1]

    def _renderer(self, req: Request) -> Renderer:
        return Renderer(self.model, self.tokens, req.base_url)

    @staticmethod
    def _select(req: Request) -> set[str] | None:
        raw = req.arg("$select") or req.arg("select")
        return {s.strip() for s in raw.split(",") if s.strip()} if raw else None

    @staticmethod
    def _top(req: Request) -> int:
        raw = req.arg("$top") or req.arg("top")
        if raw is None:
            return DEFAULT_TOP
        try:
            top = int(raw)
        except ValueError as exc:
            raise InvalidRequest(f"Invalid $top value {raw!r}.") from exc
        if top < 1:
            raise InvalidRequest("$top must be at least 1.")
        return min(top, MAX_TOP)

    def _link(self, req: Request, **params: str) -> str:
        keep = {k: v[0] for k, v in req.query.items() if k in ("$select", "select", "$top", "top")}
        return f"{req.base_url}{req.raw_path}?{urlencode({**keep, **params})}"

    # --- reading ---------------------------------------------------------------------------------------

    def get_drive(self, req: Request) -> Response:
        self._check_drive(req)
        library = self.model.sites.library(req.params.get("drive") or "")
        if library is not None:
            from driveferry.emulator.graph.sites import render_library
            return Response.json(render_library(library, self.model.sites.site(library.site_id), self.model.quota()))
        return Response.json(self._renderer(req).drive())

    @staticmethod
    def _not_modified(req: Request, item: Item) -> bool:
        """`If-None-Match` naming the item's eTag or cTag (or *) answers 304 (api-notes 9.1, 10)."""
        # Graph's tags contain a comma ("{GUID},1"), so take whole quoted strings, not comma-split parts.
        raw = req.headers.get("if-none-match") or ""
        tags = set(re.findall(r'(?:W/)?"[^"]*"|\*', raw)) | {raw.strip()}
        return bool(tags & {"*", item.etag, item.ctag})

    def get_item(self, req: Request) -> Response:
        item = self._item(req)
        if self._not_modified(req, item):
            return Response.empty(304, [("ETag", item.etag)])
        return Response.json(self._renderer(req).item(item, select=self._select(req)))

    def list_children(self, req: Request) -> Response:
        folder = self._item(req)
        top = self._top(req)
        after: tuple[str, str] | None = None
        skip = req.arg("$skiptoken") or req.arg("$skipToken")
        if skip:
            try:
                key = _unb64(skip)
                after = (str(key[0]), str(key[1]))
            except (ValueError, binascii.Error, IndexError, TypeError, KeyError) as exc:
                raise InvalidRequest("Invalid $skiptoken.") from exc
        rows = self.model.children(folder.id, after, top + 1)
        page, more = rows[:top], len(rows) > top
        r, select = self._renderer(req), self._select(req)
        body: dict[str, Any] = {"value": [r.item(i, select=select) for i in page]}
        if more:
            last = page[-1]
            body["@odata.nextLink"] = self._link(req, **{"$skiptoken": _b64([last.name, last.id])})
        return Response.json(body)

    def delta(self, req: Request) -> Response:
        """Changes under the addressed folder since a token (see module docstring for token rules).

        Without a token it is an initial enumeration of live items in tree order (parents first), paged
        by a (depth, id) cursor; its final deltaLink resumes from the change sequence at which it
        started, so anything changed while paging is reported again later. With a token it lists the
        latest state of each item changed since, in change order, deleted items with the `deleted` facet.
        """
        scope = self._item(req)
        top, select, r = self._top(req), self._select(req), self._renderer(req)
        token = req.arg("token")
        with self.model.state.lock:
            upto, epoch = self.model.current_seq(), self.model.delta_epoch()
            if token == "latest":
                return Response.json({"value": [], "@odata.deltaLink": self._delta_link(req, {"s": upto})})
            try:
                if token is None:
                    tok: dict[str, Any] = {"e": 1, "b": upto, "d": 0, "i": "", "g": epoch}
                elif re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?", token):
                    # Business accepts a timestamp as the token: changes since then (api-notes 9.4)
                    tok = {"s": self.model.seq_at(parse_time(token)), "g": epoch}
                else:
                    tok = _unb64(token)
                if int(tok["g"]) != epoch:
                    raise self._resync(req)
                if "e" in tok:  # initial enumeration
                    base = int(tok["b"])
                    rows = self.model.enumerate(scope.id, (int(tok["d"]), str(tok["i"])), top + 1)
                    items = [item for _, item in rows]
                    nxt = {"e": 1, "b": base, "d": rows[top - 1][0], "i": rows[top - 1][1].id, "g": epoch} \
                        if len(rows) > top else None
                    final = {"s": base}
                else:
                    since = int(tok["s"])
                    cursor = (int(tok.get("q", since)), str(tok.get("i", "")))
                    items = self.model.changes(scope.id, since, cursor, upto, top + 1)
                    nxt = {"s": since, "q": items[top - 1].seq, "i": items[top - 1].id, "g": epoch} \
                        if len(items) > top else None
                    final = {"s": upto}
            except (ValueError, binascii.Error, KeyError, TypeError, AttributeError) as exc:
                raise self._resync(req) from exc
        body: dict[str, Any] = {"value": [r.item(i, delta=True, select=select) for i in items[:top]]}
        if nxt is not None:
            body["@odata.nextLink"] = self._delta_link(req, nxt)
        else:
            body["@odata.deltaLink"] = self._delta_link(req, final)
        return Response.json(body)

    def _delta_link(self, req: Request, tok: dict[str, Any]) -> str:
        tok.setdefault("g", self.model.delta_epoch())
        return self._link(req, token=_b64(tok))

    def _resync(self, req: Request) -> WireError:
        resp = graph_response(410, "resyncRequired", "The delta token is no longer valid; resync from scratch.",
                              "resyncChangesApplyDifferences")
        resp.headers.append(("Location", f"{req.base_url}{req.raw_path}"))
        return WireError(resp)

    def content(self, req: Request) -> Response:
        item = self._item(req)
        if self._not_modified(req, item):
            return Response.empty(304, [("ETag", item.etag)])
        if item.kind != "file":
            raise NotSupported("Only files can be downloaded; folders and packages such as OneNote notebooks"
                               " have no content stream.")
        return Response.empty(302, [("Location", self._renderer(req).download_url(item))])

    def download(self, req: Request) -> Response:
        """Serve a file through its pre-authenticated URL, honouring one `Range: bytes=` range."""
        item_id = self.tokens.check(req.params["token"])
        if item_id is None:
            raise Unauthenticated("The download URL has expired or is not valid.", "expiredToken")
        item = self.model.get(item_id)
        path = self.model.content_path(item)
        if path is None:
            raise NotSupported("The item has no content stream.")
        from driveferry.emulator.server import iter_file
        size, start, end, status = item.size, 0, item.size, 200
        headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes"), ("ETag", item.etag)]
        rng = "" if "ignore_range" in req.faults else (req.headers.get("range") or "").strip()
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng)
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(size, int(m.group(2)) + 1) if m.group(2) else size
            else:  # suffix range: the last N bytes
                start = max(0, size - int(m.group(2)))
            if start >= size or start >= end:
                return Response.json({"error": {"code": "invalidRange",
                                                "message": "The requested range is not satisfiable."}},
                                     416, [("Content-Range", f"bytes */{size}")])
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        # A multi-range or malformed Range is ignored and the whole file sent (Graph may do the same).
        return Response(status, headers, iter_file(path, start, end), length=end - start, download=True)

    # --- writing ---------------------------------------------------------------------------------------

    def create_folder(self, req: Request) -> Response:
        parent = self._item(req)
        body = json_body(req)
        if "folder" not in body:
            raise InvalidRequest("Only folders can be created with POST /children; use an upload for files.")
        fs_created, fs_modified = fs_times(body.get("fileSystemInfo"))
        item, created = self.model.create_folder(
            parent.id, body.get("name"), str(body.get(CONFLICT_KEY, "fail")),  # type: ignore[arg-type]
            fs_created=fs_created, fs_modified=fs_modified)
        return Response.json(self._renderer(req).item(item), 201 if created else 200)

    def update_item(self, req: Request) -> Response:
        item = self._item(req)
        body = json_body(req)
        parent_id = self._parent_ref(body)
        fs_created, fs_modified = fs_times(body.get("fileSystemInfo"))
        updated = self.model.update(item.id, name=body.get("name"), parent_id=parent_id, fs_created=fs_created,
                                    fs_modified=fs_modified, if_match=req.headers.get("if-match"))
        return Response.json(self._renderer(req).item(updated))

    def copy_item(self, req: Request) -> Response:
        """POST .../copy: 202 + monitor URL in Location (graph/copy.py has the rules)."""
        source = self._item(req)
        body = json_body(req)
        parent_id = self._parent_ref(body, check_drive=True)
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidRequest("name must be a string.")
        job = self.copies.start(source.id, parent_id, name, req.arg(CONFLICT_KEY, "fail") or "fail")
        return Response.empty(202, [("Location", f"{req.base_url}/_graphmonitor/{job.id}")])

    def _parent_ref(self, body: dict[str, Any], check_drive: bool = False) -> str | None:
        """The folder id a body's `parentReference` names (by `id`, or `path` as "/drive/root:/a/b"), or
        None when it names none; with check_drive, a `driveId` other than this drive is not found."""
        ref = body.get("parentReference")
        if ref is not None and not isinstance(ref, dict):
            raise InvalidRequest("parentReference must be an object.")
        if not ref:
            return None
        drive = ref.get("driveId")
        if check_drive and drive is not None and drive != self.model.drive_id:
            raise ItemNotFound(f"Drive {drive!r} was not found.")
        if "id" in ref:
            return str(ref["id"])
        if "path" in ref:
            return str(self.model.by_path(str(ref["path"]).split("root:", 1)[-1]).id)
        return None

    def copy_status(self, req: Request) -> Response:
        status, body = self.copies.status(req.params["job"])
        return Response.json(body, status)

    def delete_item(self, req: Request) -> Response:
        self.model.delete(self._item(req).id, if_match=req.headers.get("if-match"))
        return Response.empty(204)

    def simple_upload(self, req: Request) -> Response:
        """PUT .../content: create or replace (default conflict behaviour replace, from the query)."""
        if req.content_length is not None and req.content_length > self.simple_upload_limit:
            raise self._too_large()
        conflict = req.arg(CONFLICT_KEY, "replace") or "replace"
        target = self._new_target(req)
        if target is None:
            item = self._item(req)
            if item.kind != "file":
                raise InvalidRequest("Only a file's content can be replaced.")
            parent_id, name = item.parent_id or "", item.name
            conflict = "replace"
        else:
            parent_id, name = target[0].id, target[1]
        body = req.iter_body() if req.content_length is not None else self._limited(req.iter_body())
        result = self.model.create_file(parent_id, name, body, conflict=conflict)
        return Response.json(self._renderer(req).item(result), 201 if result.cversion == 1 else 200)

    def _too_large(self) -> GraphError:
        return GraphError(f"Simple upload is limited to {self.simple_upload_limit} bytes; use an upload"
                          " session.", "maxFileSizeExceeded", status=413, code="requestTooLarge")

    def _limited(self, body: Iterator[bytes]) -> Iterator[bytes]:
        """A chunked body (no Content-Length) held to the simple-upload limit while it streams."""
        seen = 0
        for data in body:
            seen += len(data)
            if seen > self.simple_upload_limit:
                raise self._too_large()
            yield data

    def create_session(self, req: Request) -> Response:
        body = json_body(req)
        spec = body.get("item") or {}
        if not isinstance(spec, dict):
            raise InvalidRequest("item must be an object.")
        fs_created, fs_modified = fs_times(spec.get("fileSystemInfo"))
        size = spec.get("fileSize")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
            raise InvalidRequest("fileSize must be an integer.")
        conflict = str(spec.get(CONFLICT_KEY, "fail"))  # the documented default (api-notes 11.2)
        target = self._new_target(req)
        if target is None:
            item = self._item(req)
            self.model._check_etag(item, req.headers.get("if-match"))
            parent_id, name, target_id = item.parent_id or "", item.name, item.id
        else:
            parent_id, name, target_id = target[0].id, target[1], None
            if "name" in spec and spec["name"] != name:
                raise InvalidRequest("The name in the body must match the name in the path.")
        s = self.sessions.create(parent_id, name, conflict, size, fs_created=fs_created, fs_modified=fs_modified,
                                 target_id=target_id, defer_commit=body.get("deferCommit") is True)
        return Response.json({"uploadUrl": f"{req.base_url}/_graphup/{s.id}",
                              "expirationDateTime": self.sessions.expiration(s),
                              "nextExpectedRanges": s.next_expected_ranges()})

    def put_fragment(self, req: Request) -> Response:
        sid = req.params["session"]
        self.sessions.get(sid)  # 404 before anything else, as for an expired session
        if "content-length" not in req.headers:
            raise GraphError("Content-Length is required.", "lengthRequired", status=411)
        m = _RANGE.fullmatch((req.headers.get("content-range") or "").strip())
        if not m:
            raise InvalidRequest("The Content-Range header is missing or malformed.", "invalidContentRange")
        start, end, total = (int(g) for g in m.groups())
        if end < start:
            raise InvalidRange("The Content-Range is empty or inverted.", "invalidRange", status=400)
        if req.content_length != end - start + 1:
            raise InvalidRequest("Content-Length does not match the Content-Range.", "invalidContentRange")
        result = self.sessions.put(sid, start, end, total, req.iter_body())
        if isinstance(result, Item):
            return Response.json(self._renderer(req).item(result), 201 if result.cversion == 1 else 200)
        return Response.json({"expirationDateTime": self.sessions.expiration(result),
                              "nextExpectedRanges": result.next_expected_ranges()}, 202)

    def session_status(self, req: Request) -> Response:
        s = self.sessions.get(req.params["session"])
        return Response.json({"expirationDateTime": self.sessions.expiration(s),
                              "nextExpectedRanges": s.next_expected_ranges()})

    def commit_session(self, req: Request) -> Response:
        """POST <uploadUrl> with an empty body commits a deferCommit session (api-notes 11.2)."""
        item = self.sessions.commit(req.params["session"])
        return Response.json(self._renderer(req).item(item), 201 if item.cversion == 1 else 200)

    def cancel_session(self, req: Request) -> Response:
        self.sessions.cancel(req.params["session"])
        return Response.empty(204)
