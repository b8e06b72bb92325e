"""The emulator's HTTP server: one loopback port for Drive, Graph, both sign-in services and control.

Each API module registers its routes and its error shape on the emulator's Router. The request path
(routing by path only, bearer tokens, the realism hook, faults, counters) is the WSGI application in
wsgi.py; this module serves it with werkzeug's threaded server and owns what is left of the transport:
HTTP/1.1 keep-alive, TLS, binding (loopback unless allowed), bandwidth cap, sendfile downloads and
lifecycle.

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
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from driveferry.emulator.faults import FaultPlan
from driveferry.emulator.http import ErrorFactory, FileBody, Request, Response, Router
from driveferry.emulator.realism import Realism
from driveferry.emulator.state import State
from driveferry.emulator.wsgi import CLOSE, DROP, EmulatorApp, FileStream

log = logging.getLogger(__name__)

_BLOCK = 1 << 20
_SMALL_BODY = 64 * 1024  # bodies up to this size go out in the same write as the headers


class ApiModule(Protocol):
    """One API (Drive, Graph, identity): registers routes, names its token audience, offers credentials."""

    audience: str
    route_prefix: str  # route names start with this ("drive.", "graph.", "identity.")

    def register(self, router: Router, emulator: Emulator) -> None: ...

    def credentials(self, base_url: str) -> dict[str, Any]: ...


def _plain_errors(status: int, code: str, message: str) -> Response:
    return Response.json({"error": {"code": code, "message": message}}, status)


class _Handler(WSGIRequestHandler):
    """werkzeug's request handler with HTTP/1.1 keep-alive.

    werkzeug's own `run_wsgi` answers every request with `Connection: close` and, after the response,
    reads whatever is left on the socket, which on a persistent connection is the next request. Here
    the application always consumes the request body (or asks for the connection to be dropped), so a
    connection stays open for the next request, as clients that pool connections expect.
    """

    protocol_version = "HTTP/1.1"
    # with Nagle on, a write that follows a small one (headers, then a large body) waits for the
    # client's delayed ACK (~40 ms per request); small bodies also go out with their headers
    disable_nagle_algorithm = True
    server: _Server

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        log.debug("%s " + message, self.address_string(), *args)

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # a failure ends here, quietly (_Server.handle_error)
        super().setup()

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return None

        try:
            result = self.server.app(environ, start_response)
            try:
                self._write_response(environ, started, result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except (OSError, ssl.SSLError) as exc:  # the client went away mid-response: routine here
            log.debug("connection from %s ended: %s", self.address_string(), exc)
            self.close_connection = True
        except Exception:
            log.exception("emulator response to %s %s failed", self.command, self.path)
            self.close_connection = True
        if environ.get(DROP) or environ.get(CLOSE):
            self.close_connection = True

    def _write_response(self, environ: dict[str, Any], started: list[Any], result: Iterable[bytes]) -> None:
        if isinstance(result, FileStream) and started and not isinstance(self.connection, ssl.SSLSocket):
            whole, framed = self._head(started)
            if not framed:  # the kernel copies file to socket: no pass through user space
                self.wfile.write(whole)
                result.send_to(self.connection)
                return
        head: bytearray | None = None
        chunked = False
        for data in result:
            if head is None and not started:
                raise RuntimeError("the application sent a body before start_response")
            if head is None:
                head, chunked = self._head(started)
                if len(data) <= _SMALL_BODY and not chunked:
                    head += data
                    self.wfile.write(head)
                    continue
                self.wfile.write(head)
            if not data:
                continue
            if chunked:
                self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                self.wfile.write(data)
        if environ.get(DROP):
            return
        if head is None:
            if not started:
                raise RuntimeError("the application returned without start_response")
            head, chunked = self._head(started)
            self.wfile.write(head)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _head(self, started: list[Any]) -> tuple[bytearray, bool]:
        """The status line and headers; chunked framing when the length is unknown (HTTP/1.1)."""
        status, headers = started
        code = int(status.split(None, 1)[0])
        out = bytearray(f"{self.protocol_version} {status}\r\n".encode("latin-1"))
        has_length = False
        for k, v in headers:
            out += f"{k}: {v}\r\n".encode("latin-1")
            has_length = has_length or k.lower() == "content-length"
        chunked = not (has_length or self.command == "HEAD" or code < 200 or code in (204, 304))
        if chunked and self.request_version == "HTTP/1.0":  # no chunked framing in 1.0: the close ends the body
            chunked, self.close_connection = False, True
        if chunked:
            out += b"Transfer-Encoding: chunked\r\n"
        if self.close_connection or self.environ.get(CLOSE):
            out += b"Connection: close\r\n"
        out += b"\r\n"
        return out, chunked


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server; a vanished client (TLS EOF, reset) is not an error worth a traceback."""

    request_queue_size = 128

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        log.debug(message, *args)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | ssl.SSLError):
            log.debug("connection from %s ended: %s", client_address, exc)
            return
        log.exception("emulator connection from %s failed", client_address)


def _listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket; OSError (address in use, ...) reaches the caller as an exception.

    werkzeug's server binds by itself but answers a bind error with a message on stderr and exit(1)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_Server.request_queue_size)
    except BaseException:
        sock.close()
        raise
    return sock


def iter_file(path: Path, start: int = 0, end: int | None = None, block: int = _BLOCK) -> FileBody:
    """Bytes [start, end) of a file as a response body (end None: to the end), opened now."""
    return FileBody(path, start, path.stat().st_size if end is None else end, block)


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
                 modules: list[ApiModule] | None = None, realism: Realism | None = None,
                 profile: Path | str | None = None) -> None:
        """`realism` or `profile` (a realism TOML, e.g. configs/emulator/real.toml; ValueError if bad,
        FileNotFoundError if missing) make it behave like the real clouds; neither: the kind default."""
        if not allow_remote and not _is_loopback(host):
            raise ValueError(f"refusing to bind the emulator to non-loopback address {host}; "
                             "pass allow_remote (--allow-remote) if you really mean it")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.tls = tls
        self.state = State(self.data_dir)
        self.faults = faults or FaultPlan()
        self.realism = realism or (Realism.load(profile) if profile is not None else Realism())
        self.router = Router()
        self._prefix_errors: list[tuple[str, ErrorFactory]] = []
        self._audiences: list[tuple[str, str]] = []  # (route prefix, audience)
        self._bw_lock = threading.Lock()
        self._bw_next = 0.0
        self.modules = modules if modules is not None else default_modules()
        self.ca_file: Path | None = None
        ctx: ssl.SSLContext | None = None
        if tls:
            from driveferry.emulator.tls import ensure_certificates
            self.ca_file, cert, key = ensure_certificates(self.data_dir / "tls", host)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
        sock = _listen(host, port)
        try:
            # werkzeug serves a socket it is handed (fd) and wraps it for TLS itself
            self._server = _Server(host, port, EmulatorApp(self), _Handler, fd=sock.fileno())
        finally:
            sock.close()  # the server holds its own duplicate of the descriptor
        if ctx is not None:
            # wrapped here rather than by werkzeug so that the handshake runs in the connection's own
            # thread (_Handler.setup), not in the accept loop where one silent client would stall all
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
            self._server.ssl_context = ctx
        self.port = self._server.server_address[1]
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
        """True if the request carries a valid bearer token for the route's audience; sets `req.user`
        (the token's subject) and `req.client_id` (the OAuth client it was issued to, if known).
        The one place that sets them."""
        auth = req.headers.get("authorization") or ""
        if not auth.lower().startswith("bearer "):
            return False
        audience = next((a for p, a in self._audiences if route.startswith(p)), "*")
        checked: Any = self.state.check_token(auth[7:].strip(), audience)
        if checked is None:
            return False
        if isinstance(checked, str):  # a bare subject: the issuer recorded no client
            req.user, req.client_id = checked, None
        else:
            req.user, req.client_id = str(checked.subject), getattr(checked, "client_id", None) or None
        return True

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
