"""`status --serve`: the live page over HTTP, read-only, loopback unless asked otherwise.

Routes (GET only; anything else is 405, as nothing here changes the journal):
  /              the page (page.PAGE): inline HTML, CSS and script, no network resources
  /api/status    {"journal", "generated", "jobs": [job_snapshot + "live"]}: what `status --json` prints,
                 plus "live": the rate this server measured between its own polls of the journal
  /api/files     ?job=ID&filter=NAME&limit=N: snapshot.file_rows (default filter all, limit 500)
The page polls /api/status every 2 s, so it updates without reloading and survives tunnel drops.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from driveferry.errors import DriveferryError, UserError
from driveferry.journal.store import Journal
from driveferry.statuspage.page import PAGE
from driveferry.statuspage.snapshot import FILTERS, file_context, file_rows, job_snapshot

DEFAULT_ADDRESS = "127.0.0.1:8765"
LIVE_WINDOW_S = 60.0  # the live rate is measured over this much of the server's recent samples
MAX_FILES = 5000
# Polls closer together than this share one snapshot: a snapshot reads every item's state once
# (about 0.3 s for 200 000 items on SQLite), and several open tabs must not multiply that.
MIN_SNAPSHOT_S = 1.5


def parse_address(text: str, allow_remote: bool) -> tuple[str, int, str | None]:
    """(host, port, warning) for `--serve [HOST:]PORT`. Loopback unless HOST is given explicitly or
    `allow_remote` (then all interfaces); a non-loopback bind comes with a warning to print.

    Raises UserError for a bad port or host.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise UserError(f"--serve: {text!r} is not [HOST:]PORT (e.g. 127.0.0.1:8765)") from None
    if not 0 <= port <= 65535:
        raise UserError(f"--serve: port {port} is outside 0-65535")
    if not host:
        host = "0.0.0.0" if allow_remote else "127.0.0.1"
    if host == "localhost" or _loopback(host):
        return host, port, None
    return host, port, (f"warning: the status page listens on {host}, reachable from other machines; "
                        "it shows file names and has no login. Prefer 127.0.0.1 and an SSH tunnel.")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusState:
    """The journal and the samples behind the live rate; shared by the handler threads."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.lock = threading.Lock()
        self.samples: dict[int, deque[tuple[float, str, int]]] = {}
        self._last: tuple[float, dict[str, Any]] | None = None
        self._snapshot_lock = threading.Lock()

    def status(self) -> dict[str, Any]:
        """The /api/status body; a snapshot less than MIN_SNAPSHOT_S old is served again."""
        with self._snapshot_lock:
            if self._last is not None and time.monotonic() - self._last[0] < MIN_SNAPSHOT_S:
                return self._last[1]
            body = self._status()
            self._last = (time.monotonic(), body)
            return body

    def _status(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        jobs = [job_snapshot(self.journal, job, now) for job in self.journal.jobs()]
        mono = time.monotonic()
        with self.lock:
            for job in jobs:
                ring = self.samples.setdefault(job["job_id"], deque(maxlen=600))
                ring.append((mono, now.isoformat(), job["totals"]["bytes_done"]))
                while len(ring) > 2 and mono - ring[0][0] > LIVE_WINDOW_S * 10:
                    ring.popleft()
                recent = [s for s in ring if mono - s[0] <= LIVE_WINDOW_S]
                rate = None
                if not any(w["alive"] for w in job["workers"]):
                    rate = 0.0  # nothing transfers now, whatever the last minute's samples say
                elif len(recent) >= 2 and recent[-1][0] > recent[0][0]:
                    rate = max(0.0, (recent[-1][2] - recent[0][2]) / (recent[-1][0] - recent[0][0]))
                job["live"] = {"rate_bytes_per_s": None if rate is None else round(rate, 1),
                               "samples": [[at, n] for _, at, n in ring]}
        return {"journal": self.journal.label, "generated": now.isoformat(), "jobs": jobs}

    def files(self, query: dict[str, list[str]]) -> dict[str, Any]:
        which = (query.get("filter") or ["all"])[0]
        if which not in FILTERS:
            raise UserError(f"filter must be one of {', '.join(FILTERS)}")
        try:
            limit = min(MAX_FILES, max(1, int((query.get("limit") or ["500"])[0])))
            wanted = int((query.get("job") or ["0"])[0])
        except ValueError:
            raise UserError("job and limit must be numbers") from None
        jobs = self.journal.jobs()
        job = next((j for j in jobs if j.id == wanted), jobs[0] if jobs and not wanted else None)
        if job is None:
            return {"job_id": wanted, "filter": which, "files": []}
        stopped, dead = file_context(self.journal, job.id, datetime.now(UTC))
        return {"job_id": job.id, "filter": which,
                "files": file_rows(self.journal, job.id, which, quota_stopped=stopped, dead_workers=dead,
                                   limit=limit)}


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(state: StatusState, host: str, port: int) -> ThreadingHTTPServer:
    """A server for `state` bound to host:port (port 0: any free one). Raises UserError when the
    address cannot be bound."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "driveferry-status"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            try:
                if url.path == "/":
                    self._send(200, "text/html; charset=utf-8", PAGE.encode())
                elif url.path == "/api/status":
                    self._json(200, state.status())
                elif url.path == "/api/files":
                    self._json(200, state.files(parse_qs(url.query)))
                else:
                    self._json(404, {"error": f"no such page {url.path}"})
            except UserError as e:
                self._json(400, {"error": str(e)})
            except DriveferryError as e:  # the journal could not be read this time: the page retries
                self._json(503, {"error": str(e)})

        def do_POST(self) -> None:  # noqa: N802
            self._json(405, {"error": "the status page is read-only"})

        do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

        def _json(self, code: int, body: dict[str, Any]) -> None:
            self._send(code, "application/json", json.dumps(body).encode())

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            pass  # a poll every 2 s would flood the terminal

    try:
        return (_V6Server if ":" in host else ThreadingHTTPServer)((host, port), Handler)
    except OSError as e:
        raise UserError(f"--serve: cannot listen on {host}:{port}: {e.strerror or e}") from None


def serve(journal: Journal, host: str, port: int, warning: str | None) -> int:
    """Serve the page until Ctrl-C. Prints the URL (and `warning`) first. Returns the exit code."""
    httpd = make_server(StatusState(journal), host, port)
    bound_port = httpd.server_address[1]
    if warning:
        print(warning, file=sys.stderr, flush=True)
    shown = f"[{host}]" if ":" in host else host
    print(f"status page: http://{shown}:{bound_port}/ (read-only; Ctrl-C stops)", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0
