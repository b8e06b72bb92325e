"""`driveferry status`: what a journal says about a migration, as text, JSON or a live web page.

`readonly` opens a journal without ever writing to it, `snapshot` turns it into one JSON-able
picture (the same one `status --json` prints and the page's /api/status serves), `server` serves
the page and `page` holds its self-contained HTML.
"""
