"""What the emulated `files.export` answers: a native document's stored text converted to the format asked.

Real Drive offers, per type (developers.google.com/drive/api/guides/ref-export-formats): Docs as
.docx, .pdf, text, HTML...; Sheets as .xlsx, .pdf, CSV...; Slides as .pptx, .pdf, text...; Drawings as
.pdf, SVG, PNG... The emulator makes small but well-formed files: an Office Open XML package (a ZIP with
`[Content_Types].xml` and one part holding the text) or a one-page PDF. The output is deterministic (fixed
ZIP timestamps), so a test can compare what was uploaded with an export of its own. The 10 MB cap
applies to the converted output, as Drive's "The exported content is limited to 10MB" says
(developers.google.com/drive/api/reference/rest/v3/files/export).
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
PDF = "application/pdf"

_G = "application/vnd.google-apps."
EXPORTS: dict[str, tuple[str, ...]] = {
    _G + "document": ("text/plain", "text/html", DOCX, PDF),
    _G + "spreadsheet": ("text/csv", XLSX, PDF),
    _G + "presentation": ("text/plain", PPTX, PDF),
    _G + "drawing": ("image/svg+xml", PDF),
    _G + "script": ("application/vnd.google-apps.script+json",),
}

# (part name, content type, root element) of the one part each package holds
_PARTS = {
    DOCX: ("word/document.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
           "<w:t>{}</w:t></w:r></w:p></w:body></w:document>"),
    XLSX: ("xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
           '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><definedNames>'
           '<definedName name="text">{}</definedName></definedNames></workbook>'),
    PPTX: ("ppt/presentation.xml", "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
           '<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">'
           "<!-- {} --></p:presentation>"),
}


def _package(mime: str, text: str) -> bytes:
    part, content_type, body = _PARTS[mime]
    types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
             f'content-types"><Override PartName="/{part}" ContentType="{content_type}"/></Types>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in (("[Content_Types].xml", types), (part, body.format(escape(text)))):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def _pdf(text: str) -> bytes:
    shown = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").replace("\n", " ")
    stream = f"BT /F1 12 Tf 72 720 Td ({shown}) Tj ET".encode("latin-1", "replace")
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def convert(text: bytes, mime: str) -> bytes:
    """The export of a document whose content is `text` as `mime` (one of EXPORTS' formats)."""
    if mime in _PARTS:
        return _package(mime, text.decode("utf-8", "replace"))
    if mime == PDF:
        return _pdf(text.decode("utf-8", "replace"))
    if mime == "text/html":
        return b"<html><body><pre>" + text + b"</pre></body></html>"
    return text
