"""The emulator as a WSGI application: environ -> `Request` -> route handler -> `Response` -> WSGI.

Routing is by path only (the Host header is ignored), so the emulator can stand in for the real host
names. Per request, in this order: route match, bearer-token check (`Emulator.authorized`), the realism
hook (`Emulator.realism.before`), injected faults, the handler. Every request is counted (requests,
bytes in/out per route, statuses, faults fired) and every response carries a `Date` from the emulator
clock, so an HTTP-date `Retry-After` means the same to clients as to the emulator.

Dropping a connection (a `reset` fault in the request body, a `truncate` mid-download) needs the
server's help: the application sets SO_LINGER 0 on `environ["werkzeug.socket"]` (so closing sends
RST), marks `environ[DROP]` and stops; the server (server.py) then closes without writing more.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from email.utils import format_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from driveferry.emulator.faults import FaultRule
from driveferry.emulator.http import FileBody, Headers, Request, Response, WireError, parse_query

if TYPE_CHECKING:
    from driveferry.emulator.server import Emulator

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator"
DROP = "driveferry.drop"  # environ key: the server must close the connection at once, writing nothing more
CLOSE = "driveferry.close"  # environ key: close the connection after this response
_LINGER_0 = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {on=1, 0 s}: close() sends RST
_UNKNOWN_CUT_SPAN = 1 << 20
_SENDFILE_BLOCK = 8 << 20  # counted per block: counters move during a long download  # a reset in a body of unknown length cuts within its first MiB
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _reason(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


class _ResetInBody(Exception):
    """A reset fault fired while reading the request body: drop the connection."""


class _ReadErrors:
    """Wraps the request stream: a broken or malformed stream (bad chunk framing, TLS error) is a
    ConnectionError, as a client gone in the middle of the body is."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = self._raw.read(n)
        except ConnectionError:
            raise
        except OSError as exc:  # werkzeug's DechunkedInput raises OSError on bad framing
            raise ConnectionError(f"request body unreadable: {exc}") from exc
        return data


class _CountingReader(_ReadErrors):
    """Also counts bytes in per route (uploads included) and applies the bandwidth cap."""

    def __init__(self, raw: Any, emulator: Emulator, route: str) -> None:
        super().__init__(raw)
        self._emu = emulator
        self._route = route

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        if data:
            self._emu.state.counters.add("bytes_in", self._route, len(data))
            self._emu.throttle(len(data))
        return data


class _CutReader(_CountingReader):
    """Raises _ResetInBody once `cut_at` bytes were read (or at the end of a shorter chunked body)."""

    def __init__(self, raw: Any, emulator: Emulator, route: str, cut_at: int) -> None:
        super().__init__(raw, emulator, route)
        self._left = cut_at

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise _ResetInBody()
        data = super().read(min(n, self._left) if n >= 0 else self._left)
        if not data:
            raise _ResetInBody()
        self._left -= len(data)
        return data


def _headers(environ: dict[str, Any]) -> Headers:
    items = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            items.append((key[5:].replace("_", "-"), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            items.append((key.replace("_", "-"), value))
    return Headers(items)


def _target(environ: dict[str, Any]) -> tuple[str, str]:
    """(raw path, raw query) as the client sent them."""
    # REQUEST_URI is the request target after the WSGI "encoding dance" (UTF-8 bytes read as latin-1);
    # undone, it is the target exactly as http.server parsed it
    uri = str(environ.get("REQUEST_URI") or environ.get("RAW_URI") or "")
    if not uri:
        return str(environ.get("PATH_INFO", "/")), str(environ.get("QUERY_STRING", ""))
    try:
        uri = uri.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    split = urlsplit(uri)
    path = split.path
    if not split.scheme and split.netloc:  # "//a/b" is a path here, not a network location
        path = "//" + split.netloc + path
    return path, split.query


def _drop(environ: dict[str, Any]) -> None:
    environ[DROP] = True
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
        except OSError:
            pass


class EmulatorApp:
    """The WSGI callable over an Emulator's router, faults, counters and realism hook."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        emu = self.emu
        method = str(environ["REQUEST_METHOD"]).upper()
        raw_path, raw_query = _target(environ)
        headers = _headers(environ)
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):
            length: int | None = None  # chunked: read to the end of the de-chunked stream
        else:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0:
                environ[CLOSE] = True
                return self._finish(environ, start_response, Response.json(
                    {"error": {"code": 400, "message": "Invalid Content-Length"}}, 400), {}, "unknown", method)
        override = headers.get("x-http-method-override")
        if method == "POST" and override:
            method = override.upper()
        path = unquote(raw_path)
        query = parse_query(raw_query)
        req = Request(method=method, path=path, raw_path=raw_path, query=query, headers=headers,
                      body_stream=_ReadErrors(stream), content_length=length,
                      base_url=emu.base_url)
        fired: dict[str, FaultRule] = {}
        name = "unknown"
        try:
            if override and method == "GET" and length != 0:
                # googleapiclient turns a long GET into a POST with the query string as the body
                query.update(parse_query(req.body().decode("utf-8", "replace")))
            route, params, known = emu.router.match(method, path, query)
            name = route.name if route else "unknown"
            req.params, req.route = params, name
            req.body_stream = _CountingReader(stream, emu, name)
            if req.body_read:  # a query read from the body before the route was known
                emu.state.counters.add("bytes_in", name, req.body_read)
            emu.state.counters.add("requests", name)
            errors = route.errors if route else emu.errors_for_path(path)
            try:
                if route is None:
                    req.drain()
                    status = 405 if known else 404
                    raise WireError(errors(status, "notFound" if status == 404 else "methodNotAllowed",
                                           f"No such endpoint: {method} {raw_path}"))
                if route.auth and not emu.authorized(req, route.name):
                    req.drain()
                    resp = errors(401, "unauthenticated", "Invalid Credentials")
                    resp.headers.append(("WWW-Authenticate",
                                         'Bearer realm="driveferry-emulator", error="invalid_token"'))
                    raise WireError(resp)
                control = path.startswith(CONTROL_PREFIX)
                if not control:
                    answer = emu.realism.before(req)
                    if answer is not None:
                        req.drain()
                        raise WireError(answer)
                fired = emu.faults.decide(route.name, method) if not control else {}
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
                req.faults = frozenset(fired)
                if "reset" in fired and not req.body_consumed:
                    cut = emu.faults.cut_point(length if length is not None else _UNKNOWN_CUT_SPAN)
                    req.body_stream = _CutReader(stream, emu, name, cut)
                resp = route.handler(req)
            except WireError as exc:
                resp = exc.response
            except (ConnectionError, _ResetInBody):
                raise
            except Exception:  # never a traceback to the client: a 500 in the API's own shape
                log.exception("emulator handler failed for %s %s", method, raw_path)
                resp = errors(500, "backendError", "Backend Error")
            req.drain()  # keep-alive: the next request starts after this body
        except _ResetInBody:
            _drop(environ)
            return []
        except ConnectionError:  # the client went away, or sent a body we cannot frame
            environ[DROP] = True
            return []
        if "reset" in fired and length == 0 and resp.download:
            fired["truncate"] = fired["reset"]
        return self._finish(environ, start_response, resp, fired, name, method)

    def _finish(self, environ: dict[str, Any], start_response: StartResponse, resp: Response,
                fired: dict[str, FaultRule], route: str, method: str) -> Iterable[bytes]:
        emu = self.emu
        emu.state.counters.add("statuses", str(resp.status))
        body = resp.body
        length = len(body) if isinstance(body, bytes | bytearray) else resp.length
        headers = list(resp.headers)
        names = {k.lower() for k, _ in headers}
        if length is not None and "content-length" not in names:
            headers.append(("Content-Length", str(length)))
        if "date" not in names:
            headers.append(("Date", format_datetime(emu.state.clock.now(), usegmt=True)))
        start_response(_reason(resp.status), headers)
        if method == "HEAD" or length == 0 or resp.status in (204, 304):
            if not isinstance(body, bytes | bytearray):
                _close(body)
            return []
        if not fired and emu.faults.bandwidth_bps <= 0:
            if isinstance(body, bytes | bytearray):
                emu.state.counters.add("bytes_out", route, len(body))
                return [bytes(body)]
            if isinstance(body, FileBody) and length == body.end - body.start:
                return FileStream(body, lambda n: emu.state.counters.add("bytes_out", route, n))
        return self._stream(environ, resp, length, fired, route)

    def _stream(self, environ: dict[str, Any], resp: Response, length: int | None,
                fired: dict[str, FaultRule], route: str) -> Iterator[bytes]:
        emu = self.emu
        body = resp.body
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
                    part = chunk[: cut - sent]
                    emu.state.counters.add("bytes_out", route, len(part))
                    if part:
                        yield part
                    _drop(environ)
                    return
                emu.throttle(len(chunk))
                # counted when handed to the socket: a client that has the bytes must see them counted
                emu.state.counters.add("bytes_out", route, len(chunk))
                yield chunk
                sent += len(chunk)
        finally:
            _close(chunks)


class FileStream:
    """A file range on its way out with nothing to apply to its bytes: the server sends it with
    sendfile where it can (`send_to`), else iterates it. Bytes are counted before they are handed to
    the socket either way (a client that has them must see them counted)."""

    def __init__(self, body: FileBody, count: Callable[[int], None]) -> None:
        self.body = body
        self._count = count

    def __iter__(self) -> Iterator[bytes]:
        for block in self.body:
            self._count(len(block))
            yield block

    def send_to(self, sock: socket.socket) -> None:
        """sendfile the whole range; ConnectionError if the file ends early (the length was promised)."""
        offset, end = self.body.start, self.body.end
        while offset < end:
            n = min(end - offset, _SENDFILE_BLOCK)
            self._count(n)
            stop = offset + n
            while offset < stop:
                sent = os.sendfile(sock.fileno(), self.body.fileno(), offset, stop - offset)
                if sent == 0:
                    raise ConnectionError("the file is shorter than the response's Content-Length")
                offset += sent

    def close(self) -> None:
        self.body.close()


def _close(body: object) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()
