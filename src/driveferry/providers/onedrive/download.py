"""One Graph download: bytes [start, end) of a file, as blocks or read straight into the caller's buffer.

`GraphClient.download` returns a `Download`. Iterating it gives blocks of up to READ_BLOCK bytes (verify,
the journal backup). `readinto(view)` reads the body straight into `view` through http.client's
`readinto`: no block object per read and no copy into the relay's chunk buffer (providers/streaming.py
`rechunk` uses it when the stream offers it; issue #15). It does so only for a plain body: one
with a Content-Encoding, or a 200 to a ranged request whose first bytes must be dropped, is read
through urllib3 and copied. Both ways:
- an expired pre-authenticated URL (401/403/404/410 on a URL that did not come fresh from /content)
  is replaced by a new one from /content;
- a 206 that covers less than was asked for is followed by a request for the rest;
- a body that ends early, or a connection that fails, raises TransientError, and the retry layer
  resumes from the last byte received (providers/retrying.py).
A body read outside urllib3 returns its connection to the pool once it is read to the end (as
urllib3 does itself); one abandoned half-read is closed with its response.
"""

from __future__ import annotations

import http.client
import logging
from typing import TYPE_CHECKING

import requests
import urllib3

from driveferry.errors import TransientError
from driveferry.providers.onedrive.errors import translate

if TYPE_CHECKING:
    from driveferry.providers.onedrive.api import GraphClient

log = logging.getLogger(__name__)

READ_BLOCK = 256 * 1024  # below glibc's pinned 1 MiB mmap threshold: reused heap, not a fresh mapping per block
WHAT = "GET download URL"  # capability URLs are never named in messages: they carry tempauth
_TRANSPORT = (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError)


class ExpiredUrl(Exception):
    """The pre-authenticated download URL stopped working; ask /content for a new one."""


class Download:
    """Bytes [start, end) of one file (end None: to its end). Not thread-safe: one reader."""

    def __init__(self, client: GraphClient, item_id: str | None, start: int, end: int | None,
                 url: str, fresh: bool = False) -> None:
        """`url`: a download URL ("" asks /content). `item_id` None: only `url` (fresh), no renewal."""
        self._client = client
        self._item = item_id
        self._pos = start
        self._end = end
        self._url = url
        self._fresh = fresh
        self._done = end is not None and start >= end
        self._resp: requests.Response | None = None
        self._direct: http.client.HTTPResponse | None = None  # the body's own reader, for readinto
        self._skip = 0  # bytes to drop first (a 200 to a ranged request)
        self._expect: int | None = None  # bytes this response should deliver (None: until it ends)
        self._got = 0
        self._from = start  # where the current response started

    def __iter__(self) -> Download:
        return self

    def __next__(self) -> bytes:
        while self._response():
            block = self._block(READ_BLOCK)
            if block:
                return block
            self._ended()
        raise StopIteration

    def readinto(self, view: memoryview) -> int:
        """Read up to len(view) bytes into `view`; 0 when the range is complete."""
        if not len(view):
            return 0
        while self._response():
            n = self._read_into(view)
            if n:
                return n
            self._ended()
        return 0

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = self._direct = None

    def __del__(self) -> None:
        self.close()

    def _response(self) -> bool:
        """Open the next response when none is open and bytes remain; False once the range is complete."""
        while self._resp is None:
            if self._done or (self._end is not None and self._pos >= self._end):
                self._done = True
                return False
            if not self._url:
                if self._item is None:
                    raise TransientError(f"{WHAT}: the download URL expired")
                self._url, self._fresh = self._client.download_location(self._item), True
            try:
                self._open()
            except ExpiredUrl:
                log.info("download URL of %s expired; asking for a new one", self._item)
                self._url = ""
        return True

    def _open(self) -> None:
        pos, end = self._pos, self._end
        headers = {"Range": f"bytes={pos}-{'' if end is None else end - 1}"} if pos or end is not None else {}
        try:
            resp = self._client.session().get(self._url, headers=headers, stream=True,
                                              timeout=self._client.timeout)
        except requests.RequestException as exc:
            raise translate(exc, what=WHAT) from exc
        try:
            self._skip, self._expect = self._client.check_range(resp, pos, end, self._fresh, WHAT)
        except BaseException:
            resp.close()
            raise
        self._resp, self._got, self._from = resp, 0, pos
        fp = getattr(resp.raw, "_fp", None)  # urllib3's http.client response: read past urllib3 when plain
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        plain = encoding in ("", "identity") and not self._skip
        self._direct = fp if plain and isinstance(fp, http.client.HTTPResponse) else None

    def _left(self, limit: int) -> int:
        return limit if self._expect is None else min(limit, self._expect - self._got)

    def _block(self, limit: int) -> bytes:
        """Up to `limit` bytes of the open response, through urllib3 (b"" at its end)."""
        assert self._resp is not None
        want = self._left(limit)
        if want <= 0:
            return b""
        try:
            while self._skip:  # a 200 to a ranged request: drop the bytes before `pos`
                dropped = self._resp.raw.read(min(self._skip, READ_BLOCK), decode_content=True)
                if not dropped:
                    return b""
                self._skip -= len(dropped)
            block: bytes = self._resp.raw.read(want, decode_content=True)
        except (requests.RequestException, *_TRANSPORT) as exc:
            raise TransientError(f"{WHAT}: connection failed ({type(exc).__name__})") from exc
        self._got += len(block)
        self._pos += len(block)
        return block

    def _read_into(self, view: memoryview) -> int:
        want = self._left(len(view))
        if want <= 0:
            return 0
        if self._direct is None:
            block = self._block(want)
            view[:len(block)] = block
            return len(block)
        try:
            n = self._direct.readinto(view[:want])
        except _TRANSPORT as exc:
            raise TransientError(f"{WHAT}: connection failed ({type(exc).__name__})") from exc
        self._got += n
        self._pos += n
        return n

    def _ended(self) -> None:
        """The open response delivered all it will: close it, and decide whether more must be asked for."""
        assert self._resp is not None
        resp, direct, got, expect = self._resp, self._direct, self._got, self._expect
        self._resp = self._direct = None
        if direct is not None and direct.isclosed():
            resp.raw.release_conn()  # read to its end outside urllib3: the connection can be reused
        resp.close()
        if expect is not None and got < expect:
            raise TransientError(f"{WHAT}: body ended after {got} of {expect} bytes")
        if self._end is None or self._pos == self._from:
            self._done = True  # to EOF, or nothing left; otherwise a 206 covered less: ask for the rest
