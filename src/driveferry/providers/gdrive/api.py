"""The Drive v3 wire layer: a thread-local authorized client and thin typed calls.

JSON methods go through google-api-python-client built from the *bundled* discovery document; for
the emulator only `rootUrl`/`baseUrl` change (api-notes 1.2 option A: `api_endpoint` would leave media
upload URLs on https). Media ranges and upload-session requests use the same authorized httplib2
object directly, which keeps request bodies as bytes (the library's chunk retry re-sends a consumed
stream, api-notes 4.6). No call here retries: every failure is translated once and raised.

httplib2 is not thread-safe, so each thread gets its own Http, AuthorizedHttp and service; the
credentials object is shared.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import google_auth_httplib2
import httplib2
from google.auth import credentials as ga_credentials
from googleapiclient import discovery_cache
from googleapiclient.discovery import build_from_document
from googleapiclient.http import build_http

from driveferry import __version__
from driveferry.errors import PermanentError, TransientError
from driveferry.integrity.hashes import Buffer
from driveferry.providers import tls
from driveferry.providers.gdrive.errors import translate
from driveferry.providers.pacing import RequestTally

GOOGLE_ROOT_URL = "https://www.googleapis.com/"
FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
NATIVE_PREFIX = "application/vnd.google-apps."
# Everything Entry needs, plus createdTime to break ties between same-named items (Drive allows them).
FILE_FIELDS = ("id,name,mimeType,size,md5Checksum,sha1Checksum,sha256Checksum,modifiedTime,createdTime,"
               "parents,properties,appProperties,shortcutDetails,trashed")
PAGE_SIZE = 1000  # Drive's maximum; larger values are coerced (api-notes 3)
USER_AGENT = f"driveferry/{__version__}"  # on every request (JSON, media, upload sessions)

Raw = dict[str, Any]


def quote_q(value: str) -> str:
    """A Drive query string literal: single quotes, with \\ and ' escaped (api-notes 3.1)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def request_kind(uri: str) -> str:
    """The RequestTally kind of a request to `uri`: upload, media (a download), auth or metadata."""
    if "/upload/" in uri:
        return "upload"
    if "alt=media" in uri:
        return "media"
    if "/drive/" not in uri:
        return "auth"  # the token endpoint (oauth2.googleapis.com/token, or the emulator's)
    return "metadata"


def _decorated(http: httplib2.Http, tally: RequestTally) -> httplib2.Http:
    """`http` naming driveferry in the User-Agent of every request it makes (the API calls, media,
    upload sessions and, since the credentials refresh through the same object, the token requests),
    each counted in `tally`, its https connections on providers/tls.py (unless DRIVEFERRY_TLS=stdlib)."""
    plain = http.request
    bundled_tls = tls.use_bundled_tls()

    def request(uri: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
                *args: Any, **kwargs: Any) -> Any:
        tally.count(request_kind(uri))
        if kwargs.get("connection_type") is None and uri.startswith("https://") and bundled_tls:
            kwargs["connection_type"] = tls.Httplib2Connection
        headers = dict(headers or {})
        agent = headers.get("user-agent")
        headers["user-agent"] = USER_AGENT if not agent or USER_AGENT in agent else f"{USER_AGENT} {agent}"
        return plain(uri, method, body, headers, *args, **kwargs)
    http.request = request
    return http


class DriveApi:
    """One Drive account: credentials plus where to reach it (real Google unless `endpoint` is set)."""

    def __init__(self, credentials: ga_credentials.Credentials, *, endpoint: str | None = None,
                 ca_file: str | None = None, timeout_s: float = 60.0, drive_id: str | None = None) -> None:
        self.credentials = credentials
        self.root_url = endpoint.rstrip("/") + "/" if endpoint else GOOGLE_ROOT_URL
        self.base_url = self.root_url + "drive/v3/"
        self.upload_url = self.root_url + "upload/drive/v3/files"
        self.ca_file = ca_file
        self.timeout_s = timeout_s
        self.drive_id = drive_id
        self._local = threading.local()
        self.tally = RequestTally()
        self._ids: list[str] = []  # pre-generated file ids (generate_id), one generateIds call per 1000
        self._ids_lock = threading.Lock()
        self._doc = json.loads(discovery_cache.get_static_doc("drive", "v3") or "{}")
        if not self._doc:
            raise PermanentError("the bundled Drive v3 discovery document is missing from googleapiclient")
        if endpoint:
            self._doc["rootUrl"] = self.root_url
            self._doc["baseUrl"] = self.base_url

    # --- per-thread plumbing ---------------------------------------------------------------------------

    def http(self) -> Any:
        """This thread's AuthorizedHttp (built on build_http(), which does not follow 308s), sending
        the driveferry User-Agent on every request."""
        authed = getattr(self._local, "http", None)
        if authed is None:
            h = build_http()
            h.timeout = self.timeout_s
            if self.ca_file:
                h.ca_certs = self.ca_file
            authed = google_auth_httplib2.AuthorizedHttp(self.credentials, http=_decorated(h, self.tally))
            self._local.http = authed
        return authed

    def service(self) -> Any:
        svc = getattr(self._local, "service", None)
        if svc is None:
            svc = build_from_document(self._doc, http=self.http())
            self._local.service = svc
        return svc

    def call(self, make: Callable[[Any], Any], what: str) -> Raw:
        """Execute `make(files_resource)` once; errors are translated (see errors.translate)."""
        try:
            result = make(self.service().files()).execute(num_retries=0)
        except Exception as exc:  # noqa: BLE001 - translate() is the single mapping point
            raise translate(exc, what=what) from exc
        return result if isinstance(result, dict) else {}

    def about_user(self) -> Raw:
        """The signed-in account: about.get's `user` ({emailAddress, displayName}). Raises ProviderError."""
        try:
            result = self.service().about().get(fields="user(emailAddress,displayName)").execute(num_retries=0)
        except Exception as exc:  # noqa: BLE001 - translate() is the single mapping point
            raise translate(exc, what="about") from exc
        user = result.get("user") if isinstance(result, dict) else None
        return user if isinstance(user, dict) else {}

    def raw(self, method: str, uri: str, *, body: Buffer = b"", headers: dict[str, str] | None = None,
            what: str) -> tuple[httplib2.Response, bytes]:
        """One request on the authorized http. Network failures are translated; statuses are not."""
        try:
            resp, content = self.http().request(uri, method, body=body or None, headers=headers or {})
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what=what) from exc
        return resp, content or b""

    # --- shared-drive flags (needed on every call, or shared-drive items look absent: api-notes 3) -----

    def _all_drives(self, listing: bool = False) -> dict[str, Any]:
        flags: dict[str, Any] = {"supportsAllDrives": True}
        if listing:
            flags["includeItemsFromAllDrives"] = True
            if self.drive_id:
                flags.update(corpora="drive", driveId=self.drive_id)
        return flags

    # --- metadata ------------------------------------------------------------------------------------

    def list_page(self, folder_id: str, page_token: str | None = None, *, name: str | None = None,
                  folders_only: bool = False, prop: tuple[str, str] | None = None) -> tuple[list[Raw], str | None]:
        """One page of the untrashed children of `folder_id` (optionally only those called `name`, or
        carrying the shared property `prop` = (key, value)).

        Returns (items, next page token or None on the last page).
        """
        q = f"{quote_q(folder_id)} in parents and trashed = false"
        if name is not None:
            q += f" and name = {quote_q(name)}"
        if prop is not None:
            q += f" and properties has {{key={quote_q(prop[0])} and value={quote_q(prop[1])}}}"
        if folders_only:
            q += f" and mimeType = {quote_q(FOLDER_MIME)}"
        params = dict(q=q, pageSize=PAGE_SIZE, fields=f"nextPageToken,files({FILE_FIELDS})",
                      **self._all_drives(listing=True))
        if page_token:
            params["pageToken"] = page_token
        page = self.call(lambda f: f.list(**params), f"list folder {folder_id}")
        # q already excludes trashed items; the check guards against a server that ignores the term
        items = [item for item in page.get("files", []) if not item.get("trashed")]
        return items, page.get("nextPageToken") or None

    def get(self, file_id: str) -> Raw:
        return self.call(lambda f: f.get(fileId=file_id, fields=FILE_FIELDS, **self._all_drives()),
                         f"get {file_id}")

    def create_folder(self, parent_id: str, name: str, *, folder_id: str | None = None) -> Raw:
        """Create a folder (under `folder_id`, from generate_id, when given: 409 if it exists)."""
        body: Raw = {"name": name, "mimeType": FOLDER_MIME, "parents": [parent_id]}
        if folder_id:
            body["id"] = folder_id
        return self.call(lambda f: f.create(body=body, fields=FILE_FIELDS, **self._all_drives()),
                         f"create folder {name!r} in {parent_id}")

    def generate_id(self) -> str:
        """A fresh file id for a create. Drive hands them out up to 1000 per files.generateIds call, and a
        create that repeats an id already in use answers 409 instead of making a twin (api-notes 4.3,
        "pre-generated IDs"; developers.google.com/drive/api/reference/rest/v3/files/generateIds), so a
        retried create is idempotent and costs no lookup."""
        with self._ids_lock:
            if not self._ids:
                page = self.call(lambda f: f.generateIds(count=1000, space="drive", type="files", fields="ids"),
                                 "generate file ids")
                self._ids = [str(i) for i in reversed(page.get("ids") or [])]
            if not self._ids:
                raise TransientError("files.generateIds returned no ids")
            return self._ids.pop()

    def update(self, file_id: str, body: Raw) -> Raw:
        return self.call(lambda f: f.update(fileId=file_id, body=body, fields=FILE_FIELDS, **self._all_drives()),
                         f"update {file_id}")

    def delete(self, file_id: str, *, trash: bool) -> None:
        """Move to the trash (recoverable for 30 days) or delete permanently (204, empty body)."""
        if trash:
            self.update(file_id, {"trashed": True})
        else:
            self.call(lambda f: f.delete(fileId=file_id, **self._all_drives()), f"delete {file_id}")

    # --- content ---------------------------------------------------------------------------------------

    def get_range(self, file_id: str, start: int, end: int) -> tuple[bytes, int | None]:
        """Bytes [start, end) of a blob and the file's total size (from Content-Range), if known.

        Returns (b"", total) when `start` is at or past the end (416). Raises TransientError when the
        body is shorter than the server promised (a cut connection), PermanentError if Range is ignored.
        """
        uri = f"{self.base_url}files/{file_id}?" + urlencode({"alt": "media", "supportsAllDrives": "true"})
        # identity: a Content-Range over a gzip-decoded body could not be checked against the bytes
        headers = {"range": f"bytes={start}-{end - 1}", "accept-encoding": "identity"}
        resp, content = self.raw("GET", uri, headers=headers, what=f"download {file_id}")
        crange = resp.get("content-range", "")
        total = _total(crange)
        if resp.status == 416:
            return b"", total
        if resp.status == 206:
            first = int(crange.split()[1].split("-")[0]) if crange.startswith("bytes ") and "-" in crange else -1
            if first != start:
                raise PermanentError(f"download {file_id}: asked for byte {start}, got Content-Range {crange!r}")
        elif resp.status == 200:
            # Range ignored: the whole file came back. Usable only when that is exactly what was asked.
            total = len(content)
            if start != 0 or len(content) > end:
                raise PermanentError(f"download {file_id}: server ignored the Range header")
        else:
            raise translate(resp, content, what=f"download {file_id}")
        expected = min(end, total) - start if total is not None else end - start
        if len(content) != expected:  # a cut connection that httplib2 did not notice, or a bad server
            raise TransientError(f"download {file_id}: got {len(content)} of {expected} bytes")
        return content, total


def _total(content_range: str) -> int | None:
    """The total from `bytes a-b/TOTAL` or `bytes */TOTAL`; None when absent or `*`."""
    _, _, tail = content_range.rpartition("/")
    return int(tail) if tail.isdigit() else None
