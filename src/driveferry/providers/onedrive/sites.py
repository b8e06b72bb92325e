"""A SharePoint document library named in a remote (`site` and `library`), resolved to its drive.

A site is found by its server-relative path, `GET /sites/{hostname}:/{path}` (site-getbypath), and its
document libraries are its drives, `GET /sites/{site-id}/drives` (drive-list), each with a `name` ("Documents"
for the default library) and driveType "documentLibrary". The library is then addressed as any drive,
`/drives/{drive-id}` (learn.microsoft.com/en-us/graph/api/resources/sharepoint).
"""

from __future__ import annotations

from urllib.parse import quote

from driveferry.errors import NotFoundError, UserError
from driveferry.providers.onedrive.api import GraphClient


def library_drive_id(client: GraphClient, site: str, library: str, remote: str) -> str:
    """The drive id of `library` in `site` ("contoso.sharepoint.com:/sites/Team").

    Raises UserError for a malformed site, a site that does not exist, or a library it does not have
    (naming the libraries it has)."""
    host, sep, path = site.partition(":")
    path = path.strip("/")
    if not sep or not host or not path:
        raise UserError(f"remote {remote!r}: site = {site!r} is not a site address; write it as "
                        "\"<tenant>.sharepoint.com:/sites/<name>\"")
    try:
        found = client.get_json(f"/sites/{quote(host)}:/{'/'.join(quote(p) for p in path.split('/'))}")
    except NotFoundError:
        raise UserError(f"remote {remote!r}: site {site!r} was not found; check its address (the part of its "
                        "URL after the host name, such as /sites/Team)") from None
    drives = list(client.pages(f"/sites/{quote(str(found['id']), safe=',')}/drives"))
    names_of = [(str(d.get("name", "")), str(d.get("id"))) for d in drives]
    exact = [i for n, i in names_of if n == library] or [i for n, i in names_of if n.lower() == library.lower()]
    if exact:
        return exact[0]
    names = ", ".join(repr(d.get("name")) for d in drives) or "none"
    raise UserError(f"remote {remote!r}: site {site!r} has no document library {library!r} (its libraries: "
                    f"{names}); set library to one of them")
