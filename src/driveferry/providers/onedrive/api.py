"""A small Microsoft Graph client over requests: auth, paging, delta, ranged downloads.

Thread-safe: each thread gets its own requests.Session (connection pools are not shared across threads).
Errors leave this module already translated (errors.translate) and nothing here retries: the retry
layer (providers/retrying.py) wraps the provider, and collection pages go through `page_call`, which
that layer sets. Every request carries a User-Agent naming driveferry and its version (Microsoft's
throttling guidance asks for decorated traffic: api-notes Part C §18).

Graph quirks handled here (api-notes sections 9, 10, 13):
- paging: follow `@odata.nextLink` verbatim (absolute URL, skiptoken inside); delta ends with
  `@odata.deltaLink`; a stale delta token gives 410 resyncRequired with a fresh start in `Location`;
- download: GET .../content answers 302 to a pre-authenticated URL that must be fetched WITHOUT our
  Authorization header, with Range on that URL (not on /content). The URL expires (401/403/404 then):
  ask /content again. A server may answer a ranged GET with 200 and the whole body: skip ahead.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import requests

from driveferry import __version__
from driveferry.errors import PermanentError, PermissionDeniedError, TransientError
from driveferry.providers import tls
from driveferry.providers.onedrive.auth import TokenSource
from driveferry.providers.onedrive.download import Download, ExpiredUrl
from driveferry.providers.onedrive.errors import ResyncRequiredError, translate
from driveferry.providers.pacing import RequestTally
from driveferry.providers.retrying import plain_call

log = logging.getLogger(__name__)


class _RedactQuery(logging.Filter):
    """urllib3 logs each request line at DEBUG; Graph's download and upload URLs carry `tempauth` (a
    bearer capability) in the query, so the query is cut from those records before anyone sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.split("?", 1)[0] + "?…" if isinstance(a, str) and "?" in a and "/" in a
                                else a for a in record.args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactQuery())

GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
ITEM_FIELDS = ("id,name,size,file,folder,package,root,deleted,parentReference,fileSystemInfo,"
               "lastModifiedDateTime,eTag,cTag")
# Listings also ask for each file's pre-authenticated download URL, so a copy needs no per-file GET
# /content. `content.downloadUrl` is the $select spelling that makes SharePoint (Business) emit the
# `@microsoft.graph.downloadUrl` annotation; `$select=...,@microsoft.graph.downloadUrl` has been seen
# to drop it (api-notes 9.3; microsoft-graph-docs-contrib#1387, onedrive-api-docs#606).
LISTING_FIELDS = ITEM_FIELDS + ",content.downloadUrl"
DOWNLOAD_URL = "@microsoft.graph.downloadUrl"
# The URL is short-lived ("a few minutes" per the download doc, "1 hour" per the driveItem doc:
# api-notes 8.1); an older one is not tried. One that has expired anyway falls back to /content.
DOWNLOAD_URL_TTL_S = 300.0
DOWNLOAD_URLS_KEPT = 20_000  # about 10 MB at most; the oldest go first
PAGE_SIZE = 1000  # the largest $top known to work (rclone's default); Graph clamps silently above
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIABLE = re.compile(r"bytes \*/(\d+)")
# Microsoft's decoration format is "ISV|Company|App/Version" (learn.microsoft.com/sharepoint/dev/
# general-development/how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online)
USER_AGENT = f"ISV|driveferry|driveferry/{__version__}"
PageCall = Callable[[Callable[[], dict[str, Any]], str], dict[str, Any]]


def path_segments(path: str) -> str:
    """`a b/c#d` -> `a%20b/c%23d`: each segment percent-encoded (RFC 3986), slashes kept."""
    return "/".join(quote(seg, safe="") for seg in path.split("/"))


class GraphClient:
    """Graph v1.0 at `api_root` for one drive (`drive_base`, e.g. "/drives/{id}" or "/users/{upn}/drive")."""

    def __init__(self, api_root: str, drive_base: str, tokens: TokenSource, *, ca_file: str | None = None,
                 timeout_s: float = 120.0, login_hint: str = "run `driveferry auth login onedrive`") -> None:
        self.login_hint = login_hint
        self.api_root = api_root.rstrip("/")
        self.drive_base = drive_base
        self.tokens = tokens
        self.ca_file = ca_file
        self.timeout = (30.0, timeout_s)
        self.page_call: PageCall = plain_call
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self.tally = RequestTally()
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()  # item id -> (download URL, seen at)

    # --- transport ----------------------------------------------------------------------------------

    def session(self) -> requests.Session:
        """This thread's requests.Session."""
        s: requests.Session | None = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            if tls.use_bundled_tls():
                s.mount("https://", tls.TLSAdapter())  # providers/tls.py: the faster OpenSSL
            s.headers["User-Agent"] = USER_AGENT
            s.hooks["response"].append(self._counted)
            if self.ca_file:
                s.verify = self.ca_file
                s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise beat verify= (api-notes 15.2)
            self._local.session = s
            with self._lock:
                self._sessions.append(s)
        return s

    def _counted(self, resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Response hook: every request on the wire, by kind (API, download URL, upload session URL)."""
        method = (resp.request.method or "") if resp.request is not None else ""
        if resp.url.startswith(self.api_root):
            self.tally.count("metadata")
        else:
            self.tally.count("media" if method == "GET" else "upload")

    def remember_download_urls(self, items: list[Any]) -> int:
        """Keep the download URL of each listed file (see DOWNLOAD_URL_TTL_S) for `download`; how many."""
        now = time.monotonic()
        kept = 0
        with self._lock:
            for item in items:
                if isinstance(item, dict) and item.get(DOWNLOAD_URL) and "id" in item:
                    self._urls[str(item["id"])] = (str(item[DOWNLOAD_URL]), now)
                    self._urls.move_to_end(str(item["id"]))
                    kept += 1
            while len(self._urls) > DOWNLOAD_URLS_KEPT:
                self._urls.popitem(last=False)
        return kept

    def has_download_url(self, item_id: str) -> bool:
        """Whether a download URL of `item_id` is kept and still fresh (see prefetch.py)."""
        with self._lock:
            url, seen = self._urls.get(item_id, ("", 0.0))
        return bool(url) and time.monotonic() - seen < DOWNLOAD_URL_TTL_S

    def listed_download_url(self, item_id: str) -> str | None:
        """The download URL a recent listing gave for `item_id` (used once), or None."""
        with self._lock:
            url, seen = self._urls.pop(item_id, ("", 0.0))
        return url if url and time.monotonic() - seen < DOWNLOAD_URL_TTL_S else None

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            s.close()

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.api_root + path_or_url

    def request(self, method: str, path_or_url: str, *, ok: tuple[int, ...] = (200,), what: str | None = None,
                **kwargs: Any) -> requests.Response:
        """One authenticated Graph request; a status outside `ok` raises the translated error.

        A 401 is retried once with a fresh token (the cached one may be expired or revoked).
        """
        url = self.url(path_or_url)
        for attempt in (1, 2):
            token = self.tokens.get_token()
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
            try:
                resp = self.session().request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                raise translate(exc, what=what or f"{method} {self.redact(url)}") from exc
            if resp.status_code in ok:
                return resp
            err = translate(resp, what=what)
            if isinstance(err, PermissionDeniedError) and err.status == 401 and attempt == 1:
                self.tokens.invalidate(token)
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            if isinstance(err, PermissionDeniedError) and err.status == 401:
                err = PermissionDeniedError(f"{err}; {self.login_hint}", status=401, code=err.code)
            raise err
        raise AssertionError("unreachable")

    @staticmethod
    def redact(url: str) -> str:
        return url.split("?", 1)[0]

    def get_json(self, path_or_url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a JSON object (one request; a transient failure raises)."""
        data = self.request("GET", path_or_url, params=params).json()
        if not isinstance(data, dict):
            raise PermanentError(f"GET {self.redact(path_or_url)}: expected a JSON object")
        return data

    def get_page(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """One page of a collection, through `page_call` (so the retry layer retries it on its own)."""
        page = self.page_call(lambda: self.get_json(url, params), f"list {self.redact(url)}")
        values = page.get("value")
        if isinstance(values, list):
            self.remember_download_urls(values)
        return page

    # --- addressing ---------------------------------------------------------------------------------

    def item_url(self, drive_path: str) -> str:
        """URL of the item at `drive_path` (relative to the drive root, already OneDrive-encoded)."""
        if not drive_path:
            return f"{self.drive_base}/root"
        return f"{self.drive_base}/root:/{path_segments(drive_path)}:"

    def id_url(self, item_id: str) -> str:
        return f"{self.drive_base}/items/{quote(item_id, safe='')}"

    # --- listing ------------------------------------------------------------------------------------

    def pages(self, path_or_url: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every object of a collection, page by page (nextLink followed verbatim, without our params)."""
        url: str | None = path_or_url
        while url:
            page = self.get_page(url, params)
            params = None  # the nextLink already carries $top/$select/$skiptoken
            yield from (v for v in page.get("value", []) if isinstance(v, dict))
            url = page.get("@odata.nextLink")

    def children(self, item_id: str) -> Iterator[dict[str, Any]]:
        return self.pages(self.id_url(item_id) + "/children", {"$top": str(PAGE_SIZE), "$select": LISTING_FIELDS})

    def delta(self, link: str | None) -> tuple[list[dict[str, Any]], str]:
        """All changes since `link` (None: everything from the drive root) and the next deltaLink.

        On 410 resyncRequired we start again from the server's `Location` (a full enumeration).
        """
        start = f"{self.drive_base}/root/delta?" + urlencode({"$top": PAGE_SIZE, "$select": LISTING_FIELDS})
        url = link or start
        for _ in range(3):
            items: list[dict[str, Any]] = []
            try:
                next_url: str | None = url
                while next_url:
                    page = self.get_page(next_url)  # next/delta links keep $top and $select
                    items.extend(v for v in page.get("value", []) if isinstance(v, dict))
                    next_url = page.get("@odata.nextLink")
                    if not next_url:
                        return items, str(page.get("@odata.deltaLink") or url)
            except ResyncRequiredError as exc:
                log.info("OneDrive delta token expired; enumerating again")
                url = exc.location or start
        raise TransientError("OneDrive delta kept asking for a resync")

    def delta_latest(self) -> str:
        """A deltaLink for "from now on" (`token=latest`: no items, just the cursor)."""
        url = f"{self.drive_base}/root/delta?" + urlencode({"token": "latest", "$select": ITEM_FIELDS})
        page = self.get_json(url)
        link = page.get("@odata.deltaLink")
        if not link:
            raise TransientError("OneDrive delta with token=latest returned no deltaLink")
        return str(link)

    # --- download -----------------------------------------------------------------------------------

    def download_location(self, item_id: str) -> str:
        """The pre-authenticated download URL of a file (GET /content -> 302 Location)."""
        resp = self.request("GET", self.id_url(item_id) + "/content", ok=(301, 302, 303, 307),
                            allow_redirects=False, what=f"GET content of {item_id}")
        resp.close()
        return urljoin(resp.url, resp.headers["Location"])

    def download(self, item_id: str, start: int = 0, end: int | None = None, *,
                 url: str | None = None) -> Download:
        """Bytes [start, end) of a file (providers/onedrive/download.py): blocks, or `readinto` a buffer.

        It follows expired download URLs and short 206 answers; a transient failure raises (the retry
        layer resumes from the last byte it received).

        `url`: a download URL obtained earlier; by default the one a recent listing gave (children and
        delta pages carry @microsoft.graph.downloadUrl), so a copy makes no per-file /content call.
        When it has expired, /content is asked for a new one.
        """
        return Download(self, item_id, start, end, url or self.listed_download_url(item_id) or "")

    def check_range(self, resp: requests.Response, pos: int, end: int | None, fresh: bool,
                     what: str) -> tuple[int, int | None]:
        """(bytes to skip, bytes to deliver or None for "until EOF") for a download response."""
        status = resp.status_code
        if status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != pos:
                raise TransientError(f"{what}: 206 without a Content-Range starting at {pos}")
            return 0, int(m.group(2)) - pos + 1
        if status == 200:
            length = resp.headers.get("Content-Length")
            total = int(length) - pos if length is not None else None
            want = None if end is None else end - pos
            expect = want if total is None else (total if want is None else min(want, total))
            return pos, expect
        eof = _UNSATISFIABLE.match(resp.headers.get("Content-Range", ""))
        if status == 416 and eof and int(eof.group(1)) <= pos:
            return 0, 0  # at or past EOF: nothing left to read
        err = translate(resp, what=what)
        if status in (401, 403, 404, 410) and not fresh:
            raise ExpiredUrl()
        raise err
