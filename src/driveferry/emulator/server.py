"""The emulator's HTTP server: one loopback port for Drive, Graph, both sign-in services and control.

Routing is by path only (the Host header is ignored), so the emulator can stand in for the real host
names. Each API module registers its routes and its error shape; this module owns the transport:
authentication by bearer token, fault injection, byte counters, bandwidth cap, TLS and lifecycle.

Use in-process:

    with Emulator(data_dir) as emu:
        emu.base_url, emu.credentials()

or from the command line: `driveferry emulator serve --data DIR`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from driveferry.emulator.faults import FaultPlan, FaultRule
from driveferry.emulator.http import ErrorFactory, Headers, Request, Response, Router, WireError, parse_query
from driveferry.emulator.state import State
from driveferry.fileio import iter_range

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator"
_BLOCK = 1 << 20


class ApiModule(Protocol):
    """One API (Drive, Graph, identity): registers routes, names its token audience, offers credentials."""

    audience: str
    route_prefix: str  # route names start with this ("drive.", "graph.", "identity.")

    def register(self, router: Router, emulator: Emulator) -> None: ...

    def credentials(self, base_url: str) -> dict[str, Any]: ...


def _plain_errors(status: int, code: str, message: str) -> Response:
    return Response.json({"error": {"code": code, "message": message}}, status)


class _CountingReader:
    """Wraps the request stream to count bytes in per route (uploads included)."""

    def __init__(self, raw: Any, emulator: Emulator, route: str) -> None:
        self._raw = raw
        self._emu = emulator
        self._route = route

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._raw.read(n)
        if data:
            self._emu.state.counters.add("bytes_in", self._route, len(data))
            self._emu.throttle(len(data))
        return data


class _ResetInBody(Exception):
    """A reset fault fired while reading the request body: drop the connection."""


class _CutReader(_CountingReader):
    def __init__(self, raw: Any, emulator: Emulator, route: str, cut_at: int) -> None:
        super().__init__(raw, emulator, route)
        self._left = cut_at

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise _ResetInBody()
        data = super().read(min(n, self._left) if n >= 0 else self._left)
        self._left -= len(data)
        return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and a small body go out in separate writes; with Nagle on, the second write waits for
    # the client's delayed ACK (~40 ms per request)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _dispatch(self) -> None:
        emu = self.server.emulator
        split = urlsplit(self.path)
        method = self.command
        headers = Headers(self.headers.items())
        override = headers.get("x-http-method-override")
        if method == "POST" and override:
            method = override.upper()
        path = unquote(split.path)
        query = parse_query(split.query)
        route, params, known = emu.router.match(method, path, query)
        length = int(headers.get("content-length") or 0)
        if override and method == "GET" and length:
            # googleapiclient turns a long GET into a POST with the query string as the body
            query.update(parse_query(self.rfile.read(length).decode()))
            length = 0
        name = route.name if route else "unknown"
        errors: ErrorFactory = route.errors if route else emu.errors_for_path(path)
        req = Request(method=method, path=path, raw_path=split.path, query=query, headers=headers,
                      body_stream=_CountingReader(self.rfile, emu, name),  # type: ignore[arg-type]
                      content_length=length, base_url=emu.base_url, params=params, route=name)
        emu.state.counters.add("requests", name)
        fired: dict[str, FaultRule] = {}
        try:
            if route is None:
                req.drain()
                status = 405 if known else 404
                raise WireError(errors(status, "notFound" if status == 404 else "methodNotAllowed",
                                       f"No such endpoint: {method} {split.path}"))
            if route.auth and not emu.authorized(req, route.name):
                req.drain()
                resp = errors(401, "unauthenticated", "Invalid Credentials")
                resp.headers.append(("WWW-Authenticate", 'Bearer realm="driveferry-emulator", error="invalid_token"'))
                raise WireError(resp)
            fired = emu.faults.decide(route.name, method) if not path.startswith(CONTROL_PREFIX) else {}
            for kind in fired:
                emu.state.counters.add("faults", f"{route.name}:{kind}")
            if "latency" in fired:
                time.sleep(fired["latency"].latency_ms / 1000)
            if "status" in fired:
                req.drain()
                rule = fired["status"]
                resp = errors(rule.status, rule.code or "backendError", rule.message or "Injected fault")
                if rule.retry_after is not None:
                    resp.headers.append(("Retry-After", rule.retry_after))
                raise WireError(resp)
            if "reset" in fired and length > 0:
                req.body_stream = _CutReader(self.rfile, emu, name, emu.faults.cut_point(length))  # type: ignore[assignment]
            resp = route.handler(req)
        except WireError as exc:
            resp = exc.response
        except _ResetInBody:
            self._drop()
            return
        except ConnectionError:
            self.close_connection = True
            return
        except Exception:  # never a traceback to the client: a 500 in the API's own shape
            log.exception("emulator handler failed for %s %s", method, split.path)
            resp = errors(500, "backendError", "Backend Error")
        if req.content_length:
            try:
                req.drain()
            except (ConnectionError, _ResetInBody):
                self._drop()
                return
        if "reset" in fired and length == 0 and resp.download:
            fired["truncate"] = fired["reset"]
        self._send(resp, fired, name)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass

    def _send(self, resp: Response, fired: dict[str, FaultRule], route: str) -> None:
        emu = self.server.emulator
        emu.state.counters.add("statuses", str(resp.status))
        body = resp.body
        length = len(body) if isinstance(body, bytes | bytearray) else resp.length
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        if length is not None and resp.header("Content-Length") is None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD" or length == 0:
            return
        chunks: Iterable[bytes] = [body] if isinstance(body, bytes | bytearray) else body
        cut = emu.faults.cut_point(length or 1) if resp.download and "truncate" in fired else None
        corrupt_at = emu.faults.corrupt_offset(length or 1) if resp.download and "corrupt" in fired else None
        sent = 0
        try:
            for chunk in chunks:
                if corrupt_at is not None and sent <= corrupt_at < sent + len(chunk):
                    b = bytearray(chunk)
                    b[corrupt_at - sent] ^= 0xFF
                    chunk = bytes(b)
                if cut is not None and sent + len(chunk) > cut:
                    self.wfile.write(chunk[: cut - sent])
                    self._drop()
                    return
                emu.throttle(len(chunk))
                # counted when handed to the socket: a client that has the bytes must see them counted
                emu.state.counters.add("bytes_out", route, len(chunk))
                self.wfile.write(chunk)
                sent += len(chunk)
        except (OSError, ssl.SSLError):  # the client went away mid-body (killed relay, reset): normal here
            self.close_connection = True
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], emulator: Emulator, family: int) -> None:
        self.address_family = family
        self.emulator = emulator
        super().__init__(addr, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a vanished client (TLS EOF, reset) is routine here
        import sys
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | ssl.SSLError):
            log.debug("connection from %s ended: %s", client_address, exc)
            return
        log.exception("emulator connection from %s failed", client_address)


def iter_file(path: Path, start: int = 0, end: int | None = None, block: int = _BLOCK) -> Iterator[bytes]:
    """Stream bytes [start, end) of a file in blocks (end None: to the end)."""
    with open(path, "rb") as fh:
        yield from iter_range(fh, start, end, block)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Emulator:
    """A running (or startable) emulator over a data directory."""

    def __init__(self, data_dir: Path | str, host: str = "127.0.0.1", port: int = 0, tls: bool = False,
                 faults: FaultPlan | None = None, allow_remote: bool = False,
                 modules: list[ApiModule] | None = None) -> None:
        if not allow_remote and not _is_loopback(host):
            raise ValueError(f"refusing to bind the emulator to non-loopback address {host}; "
                             "pass allow_remote (--allow-remote) if you really mean it")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.tls = tls
        self.state = State(self.data_dir)
        self.faults = faults or FaultPlan()
        self.router = Router()
        self._prefix_errors: list[tuple[str, ErrorFactory]] = []
        self._audiences: list[tuple[str, str]] = []  # (route prefix, audience)
        self._bw_lock = threading.Lock()
        self._bw_next = 0.0
        self.modules = modules if modules is not None else default_modules()
        self._server = _Server((host, port), self, socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.port = self._server.server_address[1]
        self.ca_file: Path | None = None
        if tls:
            from driveferry.emulator.tls import ensure_certificates
            self.ca_file, cert, key = ensure_certificates(self.data_dir / "tls", host)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        hostpart = f"[{host}]" if ":" in host else host
        self.base_url = f"{'https' if tls else 'http'}://{hostpart}:{self.port}"
        from driveferry.emulator.control import register_control
        register_control(self.router, self)
        for module in self.modules:
            self._audiences.append((module.route_prefix, module.audience))
            module.register(self.router, self)
        self._thread: threading.Thread | None = None

    # --- wiring used by modules ------------------------------------------------------------------------

    def add_prefix_errors(self, path_prefix: str, errors: ErrorFactory) -> None:
        """Error shape for unknown paths under `path_prefix` (e.g. Drive JSON under /drive/)."""
        self._prefix_errors.append((path_prefix, errors))

    def errors_for_path(self, path: str) -> ErrorFactory:
        for prefix, errors in self._prefix_errors:
            if path.startswith(prefix):
                return errors
        return _plain_errors

    def authorized(self, req: Request, route: str) -> bool:
        auth = req.headers.get("authorization") or ""
        if not auth.lower().startswith("bearer "):
            return False
        audience = next((a for p, a in self._audiences if route.startswith(p)), "*")
        return self.state.check_token(auth[7:].strip(), audience) is not None

    def throttle(self, nbytes: int) -> None:
        """Apply the plan's bandwidth cap (shared by all connections)."""
        bps = self.faults.bandwidth_bps
        if bps <= 0:
            return
        with self._bw_lock:
            now = time.monotonic()
            start = max(now, self._bw_next)
            self._bw_next = start + nbytes / bps
            delay = self._bw_next - now
        if delay > 0:
            time.sleep(delay)

    def credentials(self) -> dict[str, Any]:
        """Ready-to-use credentials for every cloud this emulator serves (tests and `serve` print them)."""
        creds: dict[str, Any] = {}
        for module in self.modules:
            creds.update(module.credentials(self.base_url))
        return creds

    def describe(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "ca_file": str(self.ca_file) if self.ca_file else None,
                "data_dir": str(self.data_dir), "credentials": self.credentials()}

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="driveferry-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self.state.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_modules() -> list[ApiModule]:
    """Drive, Graph and both identity services (imported lazily to keep this module light)."""
    mods: list[ApiModule] = []
    from driveferry.emulator import identity
    mods.extend(identity.modules())
    from driveferry.emulator.drive.routes import DriveApi
    mods.append(DriveApi())
    from driveferry.emulator.graph.routes import GraphApi
    mods.append(GraphApi())
    return mods


def describe_json(emu: Emulator) -> str:
    return json.dumps(emu.describe())
