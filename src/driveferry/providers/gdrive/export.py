"""Exporting Google Docs editor files (no bytes of their own) to files other drives can hold.

`files.export` converts a Docs, Sheets, Slides or Drawings file to a chosen MIME type and answers with
the whole converted content: no Range, no resumable download, and "The exported content is limited to
10MB" (developers.google.com/drive/api/reference/rest/v3/files/export); past that Drive answers 403
`exportSizeLimitExceeded`, which is reported as an UnsupportedError naming the cap. The formats offered
per type are listed at developers.google.com/drive/api/guides/ref-export-formats.

"office" picks the Microsoft Office format of the type (.docx, .xlsx, .pptx), "pdf" the PDF; types with
no such conversion (Forms, Sites, Apps Script, Jamboards, My Maps) get None and are reported by the plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from driveferry.errors import UnsupportedError
from driveferry.providers.base import Entry, ExportFormat, Kind
from driveferry.providers.gdrive.errors import translate

if TYPE_CHECKING:
    from driveferry.providers.gdrive.api import DriveApi

EXPORT_LIMIT_BYTES = 10 * 1000 * 1000  # files.export: "limited to 10MB"

DOCX = ExportFormat("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx")
XLSX = ExportFormat("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx")
PPTX = ExportFormat("application/vnd.openxmlformats-officedocument.presentationml.presentation", ".pptx")
PDF = ExportFormat("application/pdf", ".pdf")

_GOOGLE = "application/vnd.google-apps."
FORMATS: dict[str, dict[str, ExportFormat]] = {
    _GOOGLE + "document": {"office": DOCX, "pdf": PDF},
    _GOOGLE + "spreadsheet": {"office": XLSX, "pdf": PDF},
    _GOOGLE + "presentation": {"office": PPTX, "pdf": PDF},
    _GOOGLE + "drawing": {"pdf": PDF},
}
BY_EXTENSION = {f.extension: f for f in (DOCX, XLSX, PPTX, PDF)}


def format_for(mime_type: str | None, choice: str) -> ExportFormat | None:
    """The export of a native document of `mime_type` that `choice` ("office" | "pdf") means, or None."""
    return FORMATS.get(mime_type or "", {}).get(choice)


class DriveExporter:
    """The `Features.exporter` of a Drive provider."""

    def __init__(self, api: DriveApi) -> None:
        self.api = api

    def export_format(self, entry: Entry, choice: str) -> ExportFormat | None:
        if entry.kind is not Kind.NATIVE_DOC:
            return None
        return format_for(entry.mime_type, choice)

    def format_named(self, name: str) -> ExportFormat | None:
        return next((f for ext, f in BY_EXTENSION.items() if name.lower().endswith(ext)), None)

    def export(self, entry: Entry, fmt: ExportFormat) -> bytes:
        """The converted document. Raises UnsupportedError past the 10 MB cap (or for a conversion Drive
        does not offer), other ProviderErrors as translated."""
        uri = f"{self.api.base_url}files/{quote(entry.id, safe='')}/export?" + urlencode({"mimeType": fmt.mime_type})
        what = f"export {entry.path or entry.id} as {fmt.extension}"
        resp, content = self.api.raw("GET", uri, headers={"accept-encoding": "identity"}, what=what)
        if resp.status != 200:
            exc = translate(resp, content, what=what)
            if getattr(exc, "code", None) == "exportSizeLimitExceeded":
                raise UnsupportedError(f"{entry.path}: Drive exports at most 10 MB (files.export) and this "
                                       f"document's {fmt.extension} export is larger; download it from the "
                                       f"Docs editor (File > Download) and copy that file") from exc
            raise exc
        return content
