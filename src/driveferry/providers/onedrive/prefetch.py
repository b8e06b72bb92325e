"""Download URLs for a batch of files, 20 per Graph `$batch`, instead of one `/content` call per file.

A copy takes each file's pre-authenticated download URL from the listing that found it (api.py keeps
them for DOWNLOAD_URL_TTL_S). In a long migration most of them are stale by the time the file's turn
comes (a million-file plan alone takes minutes), and each file would cost a `GET /content` (a 302)
before its bytes. A worker that claims a batch of files asks for the URLs it lacks here first:
`GET /items/{id}?$select=id,content.downloadUrl` as sub-requests of `POST /$batch` (up to 20 per batch,
learn.microsoft.com/en-us/graph/json-batching; `content.downloadUrl` in `$select` is what makes
SharePoint emit `@microsoft.graph.downloadUrl`, api-notes 9.3).

Each sub-request is throttled on its own (json-batching, "Throttling and batching"). As in
permissions.py `read_many`, every batch is sent and its answers kept, then the longest Retry-After
among throttled sub-requests is raised, so the retry layer (providers/retrying.py) waits that long
and its retry asks only for the URLs still missing. Any other failure leaves a file to the `/content`
call it would have made anyway; the caller treats a prefetch that still fails as done.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from driveferry.errors import DriveferryError, TransientError
from driveferry.providers.base import Entry, Kind
from driveferry.providers.onedrive.batching import BATCH_MAX, sub_response, wait_s
from driveferry.providers.onedrive.errors import translate

if TYPE_CHECKING:
    from driveferry.providers.onedrive.api import GraphClient

log = logging.getLogger(__name__)


class DownloadPrefetch:
    """Features.prefetch of a OneDrive provider (thread-safe: the client's URL cache has its lock)."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def prefetch(self, entries: Sequence[Entry]) -> int:
        """Ask for the download URLs of the files in `entries` that have no fresh one; how many came.
        Raises the TransientError with the longest Retry-After when sub-requests were throttled."""
        todo = [e for e in entries if e.kind is Kind.FILE and (e.size or 0) > 0
                and not self.client.has_download_url(e.id)]
        got, again = 0, None
        for start in range(0, len(todo), BATCH_MAX):
            n, failed = self._batch(todo[start:start + BATCH_MAX])
            got += n
            if failed is not None and (again is None or wait_s(failed) > wait_s(again)):
                again = failed
        if again is not None:
            raise again
        return got

    def _batch(self, chunk: Sequence[Entry]) -> tuple[int, TransientError | None]:
        subs = [{"id": str(n), "method": "GET", "url": self.client.id_url(e.id) + "?$select=id,content.downloadUrl"}
                for n, e in enumerate(chunk)]
        what = "POST $batch of download URLs"
        try:
            resp = self.client.request("POST", "/$batch", json={"requests": subs}, what=what)
            answers = [a for a in resp.json().get("responses", []) if isinstance(a, dict)]
        except TransientError:
            raise
        except (DriveferryError, ValueError, AttributeError) as exc:
            log.debug("download URLs for %d files: %s; each asks /content instead", len(chunk), exc)
            return 0, None
        again: TransientError | None = None
        for answer in answers:
            if answer.get("status") == 200:
                continue
            err = translate(sub_response(answer, resp), what="GET download URL of an item")
            if isinstance(err, TransientError) and (again is None or wait_s(err) > wait_s(again)):
                again = err
        bodies: list[Any] = [a.get("body") for a in answers if a.get("status") == 200]
        return self.client.remember_download_urls(bodies), again
