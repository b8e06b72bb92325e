"""The self-contained HTML verify report: one file, no external resources (inline CSS, JS and SVG).

Layout: a summary table (count, bytes, advice per status) with a bar chart, then every finding in a
table the reader can sort (click a header) and filter (status menu, path search). The page works
without JS too: the tables are plain HTML; JS only sorts and filters.

For machines (and the headless-browser test): each count is in an element with
`data-status-count="<status>"` and `id="count-<status>"`; the total is `data-total-count`; each row of
the files table has `data-status`. Every piece of text from findings is HTML-escaped.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import TextIO

from driveferry.units import format_size
from driveferry.verify.classify import STATUS_INFO, Finding, Status

__all__ = ["ReportContext", "render_html", "write_page"]


@dataclass(frozen=True)
class ReportContext:
    """What the report compared, shown in its header: both sides as the user named them, how each was
    read, and the run (the command and when). For a local folder, "source" is the local tree.

    `before_counts` (status -> (files, bytes)) and `before_report` (a file name) are the findings
    before `verify --fix` re-uploaded, when this page shows the state after it."""

    source: str
    destination: str
    source_kind: str = "source"  # e.g. "local folder" or "remote (metadata)"
    destination_kind: str = "destination"
    run: str = ""
    before_counts: dict[Status, tuple[int, int]] | None = None
    before_report: str | None = None

_BAR_COLOURS = {"ok": "#2e7d32", "info": "#1565c0", "warning": "#ef6c00", "error": "#c62828"}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}#files th{cursor:pointer;user-select:none}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px;word-break:break-all}
code.path{word-break:normal;overflow-wrap:anywhere;min-width:14em;display:inline-block}
.sev-ok{color:#2e7d32}.sev-info{color:#1565c0}.sev-warning{color:#ef6c00}.sev-error{color:#c62828;font-weight:600}
.controls{margin:1em 0}.controls *{margin-right:.8em}
"""

# Sorting compares data-sort (numbers) when present, else the cell text.
_JS = """
(function(){
  var table=document.getElementById('files'); if(!table) return;
  var body=table.tBodies[0], sel=document.getElementById('status-filter'), q=document.getElementById('path-filter');
  function apply(){
    var s=sel.value, t=q.value.toLowerCase(), shown=0;
    for (var r of body.rows){
      var ok=(!s||r.dataset.status===s)&&(!t||r.cells[0].textContent.toLowerCase().indexOf(t)>=0);
      r.style.display=ok?'':'none'; if(ok) shown++;
    }
    document.getElementById('shown-count').textContent=shown;
  }
  sel.addEventListener('change',apply); q.addEventListener('input',apply);
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
    th.addEventListener('click',function(){
      var asc=th.dataset.dir!=='asc'; th.dataset.dir=asc?'asc':'desc';
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[i],y=b.cells[i],xs=x.dataset.sort,ys=y.dataset.sort;
        var c=(xs!==undefined&&ys!==undefined)?(Number(xs)-Number(ys)):x.textContent.localeCompare(y.textContent);
        return asc?c:-c;
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
  apply();
})();
"""


def _summary_rows(counts: dict[Status, tuple[int, int]]) -> str:
    out = []
    for status in Status:
        n, size = counts.get(status, (0, 0))
        info = STATUS_INFO[status]
        out.append(
            f'<tr data-status-row="{status.value}"><td class="sev-{info.severity}">{status.value}</td>'
            f'<td class="num" id="count-{status.value}" data-status-count="{status.value}">{n}</td>'
            f'<td class="num" data-status-bytes="{status.value}" data-sort="{size}">{escape(format_size(size))}</td>'
            f"<td>{escape(info.meaning)}</td><td>{escape(info.advice)}</td></tr>")
    return "\n".join(out)


def _chart(counts: dict[Status, tuple[int, int]]) -> str:
    """Horizontal bars, one per status with a non-zero count (scaled to the largest count)."""
    present = [(s, counts[s][0]) for s in Status if counts.get(s, (0, 0))[0] > 0]
    if not present:
        return "<p>No files.</p>"
    biggest = max(n for _, n in present)
    row_h, label_w, bar_w = 22, 160, 420
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="files per status" '
             f'width="{label_w + bar_w + 80}" height="{row_h * len(present) + 4}">']
    for i, (status, n) in enumerate(present):
        y = i * row_h + 2
        w = max(1, round(bar_w * n / biggest))
        colour = _BAR_COLOURS[STATUS_INFO[status].severity]
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="13">{status.value}</text>'
            f'<rect data-bar="{status.value}" x="{label_w}" y="{y}" width="{w}" height="{row_h - 6}" '
            f'fill="{colour}"/><text x="{label_w + w + 6}" y="{y + 13}" font-size="12">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _iso(t: datetime | None) -> str:
    return t.isoformat(timespec="seconds") if t is not None else ""


def _file_row(f: Finding) -> str:
    sev = STATUS_INFO[f.status].severity
    # Finding's local_* fields are the source side, remote_* the destination (classify.Finding)
    digest = f"{f.hash_type.value}: source {f.local_hash or '-'} / destination {f.remote_hash or '-'}" \
        if f.hash_type else ""
    return (
        f'<tr data-status="{f.status.value}"><td><code class="path">{escape(f.path)}</code></td>'
        f'<td class="sev-{sev}">{f.status.value}</td><td>{escape(f.reason)}</td>'
        f'<td class="num" data-sort="{f.local_size if f.local_size is not None else -1}">'
        f'{"" if f.local_size is None else f.local_size}</td>'
        f'<td class="num" data-sort="{f.remote_size if f.remote_size is not None else -1}">'
        f'{"" if f.remote_size is None else f.remote_size}</td>'
        f'<td class="num" data-sort="{f.zero_tail_bytes}">{f.zero_tail_bytes or ""}</td>'
        f"<td>{escape(_iso(f.local_mtime))}</td><td>{escape(_iso(f.remote_modified))}</td>"
        f"<td><code>{escape(digest)}</code></td></tr>")


def render_html(findings: Sequence[Finding], counts: dict[Status, tuple[int, int]], *, title: str,
                generated_at: datetime, context: ReportContext | None = None) -> str:
    """The whole page as text. `counts` maps status to (files, bytes); statuses absent count as 0."""
    buf = io.StringIO()
    write_page(findings, counts, buf, title=title, generated_at=generated_at, context=context)
    return buf.getvalue()


def _context_block(ctx: ReportContext | None) -> str:
    """The header naming both sides and the run, and the findings before --fix (if any)."""
    if ctx is None:
        return ""
    rows = [("Source", ctx.source, ctx.source_kind), ("Destination", ctx.destination, ctx.destination_kind)]
    out = ['<table id="sides"><tbody>']
    out += [f'<tr><th>{label}</th><td><code data-side="{label.lower()}">{escape(name)}</code></td>'
            f"<td>{escape(kind)}</td></tr>" for label, name, kind in rows]
    if ctx.run:
        out.append(f'<tr><th>Run</th><td colspan="2"><code id="run">{escape(ctx.run)}</code></td></tr>')
    out.append("</tbody></table>")
    if ctx.before_counts is not None:
        found = [(s, n) for s in Status for n in [ctx.before_counts.get(s, (0, 0))[0]] if n]
        listed = ", ".join(f'<span data-before-count="{s.value}">{n}</span> {s.value}' for s, n in found)
        where = f' (every finding: <code>{escape(ctx.before_report)}</code>)' if ctx.before_report else ""
        out.append(f'<p id="before-fix">This page shows the state <b>after</b> <code>--fix</code>. Before it: '
                   f"{listed or 'no files'}{where}.</p>")
    return "\n".join(out)


def write_page(findings: Iterable[Finding], counts: dict[Status, tuple[int, int]], out: TextIO, *,
               title: str, generated_at: datetime, context: ReportContext | None = None) -> None:
    """The page written to `out` row by row: `findings` is iterated once and never held, so a report
    of any size is written in bounded memory. `counts` must be the findings' own (the summary and the
    "showing" line come first)."""
    total = sum(n for n, _ in counts.values())
    total_bytes = sum(b for _, b in counts.values())
    options = "".join(f'<option value="{s.value}">{s.value}</option>' for s in Status)
    heads = ("Path", "Status", "Reason", "Source bytes", "Destination bytes", "Zero tail",
             "Source modified (UTC)", "Destination modified (UTC)", "Hashes compared")
    out.write(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
{_context_block(context)}
<p>Generated {escape(_iso(generated_at))}. <span data-total-count="{total}">{total}</span> files,
{escape(format_size(total_bytes))}. A file is <b>ok</b> only when a content hash proves it; nothing is
assumed from sizes.</p>
{_chart(counts)}
<table id="summary"><thead><tr><th>Status</th><th>Files</th><th>Bytes</th><th>Meaning</th><th>Advice</th></tr>
</thead><tbody>
{_summary_rows(counts)}
</tbody></table>
<div class="controls"><label>Status <select id="status-filter"><option value="">all</option>{options}</select></label>
<label>Path contains <input id="path-filter" type="search"></label>
<span>showing <span id="shown-count">{total}</span> of {total}</span></div>
<table id="files"><thead><tr>{"".join(f"<th>{h}</th>" for h in heads)}</tr></thead><tbody>
""")
    first = True
    for f in findings:
        out.write(("" if first else "\n") + _file_row(f))
        first = False
    out.write(f"""
</tbody></table>
<script>{_JS}</script>
</body></html>
""")
