"""Download URLs for a batch of files, 20 per Graph `$batch`, instead of one `/content` call per file.

A copy takes each file's pre-authenticated download URL from the listing that found it (api.py keeps
them for DOWNLOAD_URL_TTL_S). In a long migration most of them are stale by the time the file's turn
comes (a million-file plan alone takes minutes), and each file would cost a `GET /content` (a 302)
before its bytes. A worker that claims a batch of files asks for the URLs it lacks here first:
`GET /items/{id}?$select=id,content.downloadUrl` as sub-requests of `POST /$batch` (up to 20 per batch,
learn.microsoft.com/en-us/graph/json-batching; `content.downloadUrl` in `$select` is what makes
SharePoint emit `@microsoft.graph.downloadUrl`, api-notes 9.3).

Best effort: a sub-request that fails, or a batch that does, leaves that file to the `/content` call
it would have made anyway; nothing here raises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from driveferry.errors import DriveferryError
from driveferry.providers.base import Entry, Kind

if TYPE_CHECKING:
    from driveferry.providers.onedrive.api import GraphClient

log = logging.getLogger(__name__)

BATCH_MAX = 20  # json-batching: "up to 20 requests" per POST /$batch


class DownloadPrefetch:
    """Features.prefetch of a OneDrive provider (thread-safe: the client's URL cache has its lock)."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def prefetch(self, entries: Sequence[Entry]) -> int:
        """Ask for the download URLs of the files in `entries` that have no fresh one; how many came."""
        todo = [e for e in entries if e.kind is Kind.FILE and (e.size or 0) > 0
                and not self.client.has_download_url(e.id)]
        got = 0
        for start in range(0, len(todo), BATCH_MAX):
            got += self._batch(todo[start:start + BATCH_MAX])
        return got

    def _batch(self, chunk: Sequence[Entry]) -> int:
        subs = [{"id": str(n), "method": "GET", "url": self.client.id_url(e.id) + "?$select=id,content.downloadUrl"}
                for n, e in enumerate(chunk)]
        try:
            resp = self.client.request("POST", "/$batch", json={"requests": subs},
                                       what="POST $batch of download URLs")
            answers = resp.json().get("responses", [])
        except (DriveferryError, ValueError, AttributeError) as exc:
            log.debug("download URLs for %d files: %s; each asks /content instead", len(chunk), exc)
            return 0
        bodies: list[Any] = [a.get("body") for a in answers if isinstance(a, dict) and a.get("status") == 200]
        return self.client.remember_download_urls(bodies)
