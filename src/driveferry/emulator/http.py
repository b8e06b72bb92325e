"""Minimal HTTP plumbing for the emulator: requests, responses, a path router and wire errors.

The API modules (drive/, graph/, identity.py) register handlers on a Router; each handler takes a
Request and returns a Response. Wire errors are raised as `WireError` carrying a ready response, so a
handler never builds an error body by hand outside its API's `errors.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs


class Headers:
    """Case-insensitive header mapping (first value wins on read)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._d: dict[str, str] = {}
        for k, v in items:
            self._d.setdefault(k.lower(), v)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._d.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d

    def items(self) -> Iterable[tuple[str, str]]:
        return self._d.items()


class BodyStream(Protocol):
    """What a request body is read from (the server wraps the socket's stream to count and throttle)."""

    def read(self, n: int = -1, /) -> bytes: ...


@dataclass
class Request:
    """One request as the handlers see it.

    `content_length` is the declared body length, or None when the body's end is only known from the
    stream (`Transfer-Encoding: chunked`, RFC 9112 section 7.1): then the body is read to the end of
    the de-chunked stream. `user` and `client_id` are set by `Emulator.authorized` on routes that
    check a bearer token (None otherwise, and `client_id` None when the token names no client).
    """

    method: str
    path: str  # percent-decoded path, no query
    raw_path: str  # path as sent (still percent-encoded)
    query: dict[str, list[str]]
    headers: Headers
    body_stream: BodyStream
    content_length: int | None
    base_url: str  # scheme://host:port of this server, as clients should use it
    params: dict[str, str] = field(default_factory=dict)  # router captures
    route: str = ""  # route name, for counters and faults
    faults: frozenset[str] = frozenset()  # kinds of the fault rules that fired for this request
    in_batch: bool = False  # a sub-request of a Graph `$batch` (its round trip is the batch's)
    user: str | None = None
    client_id: str | None = None
    _body: bytes | None = None
    _read: int = 0  # body bytes read so far
    _ended: bool = False  # the whole body has been read

    def arg(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[0] if vals else default

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() == "true"

    @property
    def body_read(self) -> int:
        """Body bytes read so far (the size of a chunked body once it has been read)."""
        return self._read

    @property
    def body_consumed(self) -> bool:
        """True once nothing of the body is left on the connection."""
        return self._ended or self.content_length == 0

    def body(self) -> bytes:
        """The whole request body (for JSON requests; uploads should use `iter_body`)."""
        if self._body is None:
            self._body = b"".join(self.iter_body())
        return self._body

    def iter_body(self, block: int = 1 << 20) -> Iterator[bytes]:
        """Stream the body in blocks; raises ConnectionError if the client stops short."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        while not self._ended:
            want = block if self.content_length is None else min(block, self.content_length - self._read)
            data = self.body_stream.read(want) if want > 0 else b""
            if not data:
                if self.content_length is not None and self._read < self.content_length:
                    raise ConnectionError("client closed the connection in the middle of the body")
                self._ended = True
                return
            self._read += len(data)
            if self.content_length is not None and self._read >= self.content_length:
                self._ended = True
            yield data

    def drain(self) -> None:
        for _ in self.iter_body():
            pass

    def json(self) -> Any:
        raw = self.body()
        if not raw:
            return {}
        return json.loads(raw)


class FileBody:
    """Bytes [start, end) of a file as a response body. The file is opened now, not when the body is
    sent, so a concurrent update or delete can't fail a response whose headers are out: the open handle
    keeps the old blob readable. Iterates in blocks; the server may hand the range to the kernel
    (sendfile) instead when nothing has to see the bytes on the way (no byte fault, no TLS)."""

    def __init__(self, path: Path, start: int, end: int, block: int = 1 << 20) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close(), which the server always calls
        self.start, self.end, self.block = start, end, block

    def fileno(self) -> int:
        return self._fh.fileno()

    def __iter__(self) -> Iterator[bytes]:
        self._fh.seek(self.start)
        left = self.end - self.start
        while left > 0:
            data = self._fh.read(min(self.block, left))
            if not data:
                return
            left -= len(data)
            yield data

    def close(self) -> None:
        self._fh.close()


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""
    length: int | None = None  # Content-Length for an iterable body
    download: bool = False  # a content body: byte faults (corrupt, truncate) may apply

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Response:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        hdrs = [("Content-Type", "application/json; charset=UTF-8"), *headers]
        return cls(status, hdrs, data)

    @classmethod
    def empty(cls, status: int = 204, headers: Iterable[tuple[str, str]] = ()) -> Response:
        return cls(status, list(headers), b"")

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class WireError(Exception):
    """Raised by handlers and models' adapters: carries the response to send."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response


Handler = Callable[[Request], Response]
ErrorFactory = Callable[[int, str, str], Response]  # (status, reason/code, message) -> Response


@dataclass
class Route:
    name: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    errors: ErrorFactory  # the API's error body shape, used for faults and unexpected errors
    auth: bool = True
    query: dict[str, str | None] | None = None  # required query parameters (None value: any value)

    def wants(self, query: dict[str, list[str]] | None) -> bool:
        """True if the request's query has the parameters this route requires (e.g. alt=media)."""
        if not self.query:
            return True
        q = query or {}
        return all(q.get(k) and (v is None or q[k][0] == v) for k, v in self.query.items())


class Router:
    """Routes by method and path regex (named groups become `request.params`)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, name: str, method: str, pattern: str, handler: Handler, errors: ErrorFactory,
            auth: bool = True, query: dict[str, str | None] | None = None) -> None:
        """Add a route; `query` makes it match only requests carrying those parameters (first match wins)."""
        self.routes.append(Route(name, method.upper(), re.compile(pattern + r"\Z"), handler, errors, auth, query))

    def match(self, method: str, path: str, query: dict[str, list[str]] | None = None,
              ) -> tuple[Route | None, dict[str, str], bool]:
        """(route, captures, path_known). path_known is True if the path matched for another method."""
        known = False
        for route in self.routes:
            m = route.pattern.match(path)
            if not m:
                continue
            if route.method == method.upper() and route.wants(query):
                return route, {k: v for k, v in m.groupdict().items() if v is not None}, True
            known = True
        return None, {}, known


def parse_query(raw: str) -> dict[str, list[str]]:
    return parse_qs(raw, keep_blank_values=True)
