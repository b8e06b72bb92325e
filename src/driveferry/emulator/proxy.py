"""An HTTP CONNECT proxy that tunnels every `CONNECT host:port` to the emulator's own TLS port.

Clients with no endpoint setting (rclone's drive and onedrive backends hard-code www.googleapis.com,
oauth2.googleapis.com, graph.microsoft.com and login.microsoftonline.com) reach the emulator through
it: run them with `HTTPS_PROXY=http://127.0.0.1:PORT` and trust the emulator's CA. The emulator's
certificate names those hosts (tls.PROXIED_HOSTS) and routes by path only, so one TLS port serves them
all. The proxy binds loopback only and never resolves the requested host: it is not a general proxy.

    with ConnectProxy(("127.0.0.1", emu.port)) as proxy:
        env = {"HTTPS_PROXY": proxy.url}

Anything but CONNECT gets 405; a request line or header block over 64 KiB gets 400.
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import threading
from typing import Any

_MAX_HEAD_BYTES = 64 * 1024
_BUF_BYTES = 256 * 1024


class _Tunnel(socketserver.BaseRequestHandler):
    server: _ProxyServer
    request: socket.socket

    def handle(self) -> None:
        got = self._read_head()
        if got is None:
            self._reply(400, "Bad Request")
            return
        head, early = got
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or parts[0] != b"CONNECT":
            self._reply(405, "Method Not Allowed")
            return
        try:
            upstream = socket.create_connection(self.server.target, timeout=30)
        except OSError:
            self._reply(502, "Bad Gateway")
            return
        self.server.count_tunnel()
        with upstream:
            upstream.settimeout(None)
            self._reply(200, "Connection established")
            if early:  # bytes a client sent before reading our 200 belong to the tunnel
                upstream.sendall(early)
            back = threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True)
            back.start()
            _pipe(self.request, upstream)
            back.join(timeout=30)

    def _read_head(self) -> tuple[bytes, bytes] | None:
        """(request head, any bytes after it), or None for a head that is cut short or too long."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(4096)
            if not chunk or len(data) + len(chunk) > _MAX_HEAD_BYTES:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def _reply(self, status: int, reason: str) -> None:
        extra = "" if status == 200 else "Content-Length: 0\r\nConnection: close\r\n"
        try:
            self.request.sendall(f"HTTP/1.1 {status} {reason}\r\n{extra}\r\n".encode())
        except OSError:
            pass


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy bytes one way until EOF or an error, then half-close the other side."""
    try:
        while True:
            data = src.recv(_BUF_BYTES)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.tunnels_opened = 0
        self._count_lock = threading.Lock()
        super().__init__(addr, _Tunnel)

    def count_tunnel(self) -> None:
        with self._count_lock:
            self.tunnels_opened += 1

    def handle_error(self, request: Any, client_address: Any) -> None:  # a vanished client is routine
        pass


class ConnectProxy:
    """A CONNECT proxy on loopback whose every tunnel ends at `target` (the emulator's host and port)."""

    def __init__(self, target: tuple[str, int], port: int = 0, host: str = "127.0.0.1") -> None:
        if not _is_loopback(host):
            raise ValueError(f"the CONNECT proxy binds loopback only, not {host}")
        self._server = _ProxyServer((host, port), target)
        self.port: int = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    @property
    def tunnels_opened(self) -> int:
        """How many CONNECT tunnels have been opened (tests use it to prove traffic went through)."""
        return self._server.tunnels_opened

    def start(self) -> ConnectProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="driveferry-connect-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> ConnectProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
