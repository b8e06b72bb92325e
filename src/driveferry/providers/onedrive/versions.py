"""OneDrive / SharePoint file versions as a driveferry capability (`Features.versions`, a VersionReader).

Graph lists a file's versions with the current one first (learn.microsoft.com/en-us/graph/api/
driveitem-list-versions); each driveItemVersion has an id, size and lastModifiedDateTime and no hashes,
so a version's bytes can be proven only against what the destination stored, not against the source.
`GET .../versions/{id}/content` answers 302 to a pre-authenticated URL, like an item's content
(driveitemversion-get-contents). Folders and OneNote packages have no versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin

from driveferry.providers.base import Entry, FileVersion, Kind
from driveferry.providers.onedrive.api import GraphClient
from driveferry.providers.onedrive.download import Download


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class GraphVersions:
    """VersionReader over one drive."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def previous_versions(self, entry: Entry) -> list[FileVersion]:
        """The file's previous versions, oldest first; the current version (listed first by Graph) is not
        among them. A folder or package has none."""
        if entry.kind is not Kind.FILE:
            return []
        listed = list(self.client.pages(self.client.id_url(entry.id) + "/versions"))
        return [FileVersion(id=str(v["id"]), size=int(v.get("size") or 0), modified=_time(v.get("lastModifiedDateTime")))
                for v in reversed(listed[1:])]

    def open_version(self, entry: Entry, version: FileVersion) -> Iterator[bytes]:
        """The version's bytes, whole, through the download URL its `content` redirects to."""
        url = self.client.id_url(entry.id) + f"/versions/{quote(version.id, safe='')}/content"
        what = f"GET content of version {version.id} of {entry.path}"
        resp = self.client.request("GET", url, ok=(301, 302, 303, 307), allow_redirects=False, what=what)
        resp.close()
        # fresh: an expired URL is an error here, never a fallback to /content (the current version's bytes)
        yield from Download(self.client, None, 0, None, urljoin(resp.url, resp.headers["Location"]), fresh=True)
