"""TLS for both clouds' HTTP on the OpenSSL that `cryptography` ships (through pyOpenSSL), not the system's.

Why (issue #15, measured on the 2-core benchmark machine): Python's `ssl` module is bound to the system
OpenSSL (3.0 on Debian 12 and on Colab's Ubuntu). Its AES-256-GCM runs at about 2.1 GB/s here; the
OpenSSL 4 inside the cryptography wheel, which has the VAES/AVX-512 code, at about 5 GB/s. TLS records
are what a relay spends most of its CPU on: one 1 GiB download cost 1.26-1.31 s of CPU through
`ssl.SSLSocket`, and 0.78-0.89 s with SSL_read straight into the buffer here; an upload 1.09-1.20 s
against 0.93-1.04 s. Same protocol (TLS 1.2+, the same cipher suites, chain and host name checked by
OpenSSL during the handshake, as `ssl` does), other code.

`TLSContext` has the part of `ssl.SSLContext` that urllib3 (`ssl_context=`) and http.client/httplib2
(`_context.wrap_socket`) use; `TLSSocket` the part of `ssl.SSLSocket` they use. Failures are raised as
the standard exceptions (`ssl.SSLCertVerificationError`, `ssl.SSLError`, `TimeoutError`, `OSError`), so
the adapters' error translation is the same for both transports. `DRIVEFERRY_TLS=stdlib` switches back
to the `ssl` module (`use_bundled_tls`).

The read path calls SSL_read with a pointer into the caller's buffer (cffi's `from_buffer`), so a body
lands in the relay's chunk buffer with OpenSSL's one copy only; pyOpenSSL's own `recv_into` would
allocate and copy once more per call. The socket underneath stays blocking, with the timeout set in the
kernel (SO_RCVTIMEO/SO_SNDTIMEO, per call as `socket`'s own): no poll() before each read.
"""

from __future__ import annotations

import io
import ipaddress
import os
import select
import socket
import ssl
import struct
import threading
from typing import Any

import certifi
import httplib2
import requests.adapters
from cryptography.hazmat.bindings.openssl.binding import Binding
from OpenSSL import SSL

_lib: Any = Binding.lib  # the cffi binding pyOpenSSL itself calls (the same objects as OpenSSL.SSL._lib)
_ffi: Any = Binding.ffi
ENV = "DRIVEFERRY_TLS"
_EOF = -1  # _failed(): the peer closed (close_notify, or a ragged EOF: http.client checks the length)
_RETRY = 0
_MAX_IO = 2**31 - 1  # SSL_read/SSL_write take an int


# The binding's functions this module calls: cryptography's hazmat bindings carry no stability promise,
# so a release without one of them makes driveferry use Python's ssl instead of failing.
_NEEDED = ("SSL_read", "SSL_write", "SSL_do_handshake", "SSL_get_error", "SSL_get_verify_result",
           "SSL_get0_param", "X509_VERIFY_PARAM_set1_host", "X509_VERIFY_PARAM_set1_ip",
           "X509_VERIFY_PARAM_set_hostflags", "X509_verify_cert_error_string", "ERR_get_error", "ERR_clear_error",
           "ERR_GET_REASON", "ERR_reason_error_string", "SSL_pending", "SSL_R_UNEXPECTED_EOF_WHILE_READING",
           "SSL_OP_NO_RENEGOTIATION", "X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS", "X509_CHECK_FLAG_NEVER_CHECK_SUBJECT")
AVAILABLE = all(hasattr(_lib, name) for name in _NEEDED) and hasattr(SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD)), "_ssl")


def use_bundled_tls() -> bool:
    """Whether to use this module (default, when the binding has what it needs) or Python's ssl
    (DRIVEFERRY_TLS=stdlib)."""
    return AVAILABLE and os.environ.get(ENV, "").strip().lower() not in ("stdlib", "ssl", "system")


def _bytes(data: Any) -> memoryview:
    """`data` as a flat memoryview of bytes (what SSL_read/SSL_write are given a pointer into)."""
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class TLSContext:
    """A client context: TLS 1.2 or later, peer verified against the loaded CAs, host name checked."""

    def __init__(self) -> None:
        self._ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        self._ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        self._ctx.set_options(SSL.OP_NO_COMPRESSION | _lib.SSL_OP_NO_RENEGOTIATION)
        self._ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)  # idle pooled connections give their 34 KiB back
        self._loaded: set[tuple[Any, ...]] = set()
        self._used = False
        self._verify_mode = ssl.CERT_REQUIRED
        self.check_hostname = True
        self._alpn: list[str] = []
        self.set_alpn_protocols(["http/1.1"])  # what both clients speak (urllib3 offers the same)
        self._apply_verify()

    # --- the ssl.SSLContext surface urllib3 and httplib2 use ------------------------------------------

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        return ssl.VerifyMode(self._verify_mode)

    @verify_mode.setter
    def verify_mode(self, mode: int) -> None:
        if int(mode) == self._verify_mode:  # urllib3 sets it for every connection; a used context is frozen
            return
        self._verify_mode = ssl.VerifyMode(int(mode))
        if self._verify_mode == ssl.CERT_NONE:
            self.check_hostname = False
        self._apply_verify()

    def _apply_verify(self) -> None:
        self._ctx.set_verify(SSL.VERIFY_NONE if self._verify_mode == ssl.CERT_NONE else SSL.VERIFY_PEER)

    def load_verify_locations(self, cafile: Any = None, capath: Any = None, cadata: Any = None) -> None:
        key = (cafile, capath, cadata if isinstance(cadata, (str, bytes, type(None))) else bytes(cadata))
        if key in self._loaded:  # urllib3 hands the same bundle over for every new connection
            return
        if self._used:
            raise ssl.SSLError(f"this TLS context already trusts {sorted(k[0] or '' for k in self._loaded)}; "
                               "a connection with another CA bundle needs its own context")
        if cafile is not None or capath is not None:
            try:
                self._ctx.load_verify_locations(cafile, capath)
            except SSL.Error as exc:  # as the ssl module raises it, so the adapters report it the same way
                raise ssl.SSLError(f"cannot load the CA certificates in {cafile or capath}: {exc}") from exc
        if cadata:
            from cryptography import x509
            from OpenSSL.crypto import X509
            store = self._ctx.get_cert_store()
            if store is None:
                raise ssl.SSLError("no certificate store to add cadata to")
            data = cadata.encode() if isinstance(cadata, str) else bytes(cadata)
            certs = x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]
            for cert in certs:
                store.add_cert(X509.from_cryptography(cert))
        self._loaded.add(key)

    def load_default_certs(self, purpose: Any = None) -> None:
        self.load_verify_locations(certifi.where())  # what requests trusts by default

    def set_default_verify_paths(self) -> None:
        self.load_default_certs()

    def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        raise NotImplementedError("client certificates are not used by driveferry")

    def set_alpn_protocols(self, protocols: list[str]) -> None:
        if list(protocols) == self._alpn:  # urllib3 sets it for every connection
            return
        self._ctx.set_alpn_protos([p.encode() for p in protocols])
        self._alpn = list(protocols)

    def wrap_socket(self, sock: socket.socket, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: str | None = None,
                    session: Any = None) -> TLSSocket:
        if server_side:
            raise NotImplementedError("TLSContext is a client context")
        if self._verify_mode != ssl.CERT_NONE and not self._loaded:
            self.load_default_certs()
        self._used = True
        return TLSSocket(self, sock, server_hostname)


def _host_checks(conn: SSL.Connection, hostname: str | None, check: bool) -> None:
    """SNI for a DNS name; the name (or IP address) OpenSSL must find in the certificate when `check`."""
    if not hostname:
        if check:
            raise ValueError("check_hostname requires server_hostname")
        return
    name = hostname.strip("[]")
    try:
        ip: bytes | None = ipaddress.ip_address(name).packed
    except ValueError:
        ip = None
        conn.set_tlsext_host_name(name.encode("idna"))
    if not check:
        return
    param = _lib.SSL_get0_param(conn._ssl)  # noqa: SLF001 - the SSL* pyOpenSSL made for this connection
    if ip is not None:
        ok = _lib.X509_VERIFY_PARAM_set1_ip(param, ip, len(ip))
    else:
        _lib.X509_VERIFY_PARAM_set_hostflags(param, _lib.X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS
                                             | _lib.X509_CHECK_FLAG_NEVER_CHECK_SUBJECT)
        raw = name.encode("idna")
        ok = _lib.X509_VERIFY_PARAM_set1_host(param, raw, len(raw))
    if ok != 1:
        raise ssl.SSLError(f"cannot check the host name {name!r}")


class TLSSocket:
    """A connected client TLS socket with the `ssl.SSLSocket` methods http.client, httplib2 and urllib3 call."""

    def __init__(self, context: TLSContext, sock: socket.socket, server_hostname: str | None) -> None:
        self.context = context
        self.server_hostname = server_hostname
        self._sock = sock
        self._timeout = sock.gettimeout()
        self._io_refs = 0
        self._closed = False
        self._eof = False
        sock.settimeout(None)
        self._apply_timeout()
        self._conn = SSL.Connection(context._ctx, sock)  # noqa: SLF001
        self._ssl = self._conn._ssl  # noqa: SLF001 - the hot path calls SSL_read/SSL_write on it
        try:
            _host_checks(self._conn, server_hostname, context.check_hostname)
            self._conn.set_connect_state()
            self._handshake()
        except BaseException:
            sock.close()
            raise

    # --- the I/O loop ----------------------------------------------------------------------------------

    def _apply_timeout(self) -> None:
        """The socket stays blocking (SSL_read waits in recv, not in a poll loop); its timeout is the
        kernel's SO_RCVTIMEO/SO_SNDTIMEO, after which OpenSSL reports WANT_READ/WANT_WRITE."""
        t = self._timeout
        if t is not None and t <= 0:
            raise ValueError("TLSSocket does not do non-blocking I/O; give a timeout > 0 or None")
        whole = 0 if t is None else int(t)
        tv = struct.pack("ll", whole, 0 if t is None else max(1 if not whole else 0, int((t - whole) * 1e6)))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)

    def _wait(self, events: int) -> None:
        """OpenSSL wants to read or write again: the kernel timeout ran out unless the socket is ready now."""
        poller = select.poll()
        poller.register(self._sock.fileno(), events)
        if not poller.poll(0):
            raise TimeoutError("The read operation timed out" if events & select.POLLIN
                               else "The write operation timed out")

    def _failed(self, ret: int) -> int:
        """After an SSL_* call returned `ret` <= 0: wait and return _RETRY, return _EOF, or raise."""
        err = _lib.SSL_get_error(self._ssl, ret)
        if err == _lib.SSL_ERROR_WANT_READ:
            self._wait(select.POLLIN)
            return _RETRY
        if err == _lib.SSL_ERROR_WANT_WRITE:
            self._wait(select.POLLOUT)
            return _RETRY
        if err == _lib.SSL_ERROR_ZERO_RETURN:
            self._eof = True
            return _EOF
        if err == _lib.SSL_ERROR_SYSCALL:
            errno = _ffi.errno
            _lib.ERR_clear_error()
            if errno:
                raise OSError(errno, os.strerror(errno))
            self._eof = True
            return _EOF
        code = _lib.ERR_get_error()
        _lib.ERR_clear_error()
        if _lib.ERR_GET_REASON(code) == _lib.SSL_R_UNEXPECTED_EOF_WHILE_READING:
            self._eof = True  # fatal to the connection in OpenSSL 3+: later reads must not call SSL_read
            return _EOF
        verify = _lib.SSL_get_verify_result(self._ssl)
        if verify != _lib.X509_V_OK:
            message = _ffi.string(_lib.X509_verify_cert_error_string(verify)).decode(errors="replace")
            exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                                  f"{message}")
            exc.verify_code, exc.verify_message = verify, message
            raise exc
        reason = _lib.ERR_reason_error_string(code)
        text = _ffi.string(reason).decode(errors="replace") if reason != _ffi.NULL else f"error {code:#x}"
        raise ssl.SSLError(1, f"[SSL] {text}")

    def _handshake(self) -> None:
        _lib.ERR_clear_error()
        while True:
            ret = _lib.SSL_do_handshake(self._ssl)
            if ret == 1:
                return
            if self._failed(ret) == _EOF:
                raise ssl.SSLEOFError(8, "EOF occurred in violation of protocol")

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Read up to `nbytes` (all of `buffer`) decrypted bytes into `buffer`; 0 at the end."""
        view = _bytes(buffer)
        size = min(nbytes or view.nbytes, view.nbytes, _MAX_IO)
        if size <= 0 or self._eof:
            return 0
        _lib.ERR_clear_error()  # SSL_get_error reads the thread's error queue: start from an empty one
        with _ffi.from_buffer(view, require_writable=True) as ptr:
            while True:
                ret = _lib.SSL_read(self._ssl, ptr, size)
                if ret > 0:
                    return int(ret)
                if self._failed(ret) == _EOF:
                    return 0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        buf = bytearray(bufsize)
        n = self.recv_into(buf)
        return bytes(buf[:n])

    def _write(self, data: Any, everything: bool) -> int:
        """SSL_write `data`: all of it, or (not `everything`) what the first successful call took.
        Partial writes are on (pyOpenSSL's mode), so sending everything loops to the end."""
        view = _bytes(data)
        total, sent = view.nbytes, 0
        _lib.ERR_clear_error()
        with _ffi.from_buffer(view) as ptr:
            while sent < total:
                ret = _lib.SSL_write(self._ssl, ptr + sent, min(total - sent, _MAX_IO))
                if ret > 0:
                    sent += ret
                    if not everything:
                        break
                elif self._failed(ret) == _EOF:
                    raise BrokenPipeError(32, "the peer closed the TLS connection")
        return sent

    def send(self, data: Any, flags: int = 0) -> int:
        return self._write(data, everything=False)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._write(data, everything=True)

    # --- socket plumbing ---------------------------------------------------------------------------

    def makefile(self, mode: str = "rb", buffering: int | None = None, **_: Any) -> Any:
        if "w" in mode or "b" not in mode:
            raise ValueError(f"TLSSocket.makefile supports binary reading only, not {mode!r}")
        self._io_refs += 1
        raw = _Reader(self)
        return raw if buffering == 0 else io.BufferedReader(raw, buffering or io.DEFAULT_BUFFER_SIZE)

    def _decref_socketios(self) -> None:
        self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        self._sock.close()

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def fileno(self) -> int:
        return self._sock.fileno()

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self._apply_timeout()

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def getpeercert(self, binary_form: bool = False) -> Any:
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        if cert is None:
            return None
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding
        if binary_form:
            return cert.public_bytes(Encoding.DER)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        alt = ([("DNS", n) for n in san.get_values_for_type(x509.DNSName)]
               + [("IP Address", str(a)) for a in san.get_values_for_type(x509.IPAddress)]) if san else []
        cn = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
        return {"subject": tuple((("commonName", str(v)),) for v in cn), "subjectAltName": tuple(alt)}

    def selected_alpn_protocol(self) -> str | None:
        proto = self._conn.get_alpn_proto_negotiated()
        return proto.decode() if proto else None

    def version(self) -> str | None:
        return self._conn.get_protocol_version_name()

    def cipher(self) -> tuple[str, str, int] | None:
        name = self._conn.get_cipher_name()
        if name is None:
            return None
        return name, self._conn.get_cipher_version() or "", self._conn.get_cipher_bits() or 0

    def __getattr__(self, name: str) -> Any:  # getpeername, getsockname, setsockopt, family, ...
        return getattr(self._sock, name)


class _Reader(io.RawIOBase):
    """The raw reader under makefile('rb'). BufferedReader loops over it in C until a large read is filled."""

    def __init__(self, sock: TLSSocket) -> None:
        super().__init__()
        self._tls: TLSSocket | None = sock

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        """One record at most (the socket blocks, so never wait for a second). This runs once per 16 KiB
        record, so the common case is inline here (about 5 % of a download's CPU against calling
        recv_into); a wait, the end and errors go through the socket's own handling."""
        tls = self._tls
        if tls is None:
            raise ValueError("I/O operation on closed file.")
        if tls._eof:  # noqa: SLF001 - after a fatal end OpenSSL must not be called again
            return 0
        _lib.ERR_clear_error()
        with _ffi.from_buffer(b, require_writable=True) as ptr:
            size = min(len(ptr), _MAX_IO)
            ret = _lib.SSL_read(tls._ssl, ptr, size) if size else 0  # noqa: SLF001
        if ret > 0:
            return int(ret)
        if not size or tls._failed(ret) == _EOF:  # noqa: SLF001
            return 0
        return tls.recv_into(b)  # the socket became ready: read again

    def fileno(self) -> int:
        if self._tls is None:
            raise ValueError("I/O operation on closed file.")
        return self._tls.fileno()

    def close(self) -> None:
        if self._tls is not None:
            tls, self._tls = self._tls, None
            tls._decref_socketios()  # noqa: SLF001
        super().close()


# --- the two HTTP stacks' hooks ------------------------------------------------------------------------

_contexts: dict[tuple[str | None, str | None, bool], TLSContext] = {}
_contexts_lock = threading.Lock()


def shared_context(cafile: str | None, capath: str | None = None, verify: bool = True) -> TLSContext:
    """One context per trust setting for the process (an SSL_CTX serves many threads' connections):
    the CA bundle is parsed once, not for every new connection. No bundle: requests' (certifi's)."""
    if verify and not cafile and not capath:
        cafile = certifi.where()
    key = (cafile, capath, verify)
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = TLSContext()
            if verify:
                ctx.load_verify_locations(cafile, capath)
            else:
                ctx.verify_mode = ssl.CERT_NONE
            _contexts[key] = ctx
        return ctx


class TLSAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose https pools use TLSContext. The context is chosen per request from the
    trust requests resolved for it (`verify=`, REQUESTS_CA_BUNDLE, certifi), as requests documents for a
    custom SSL context (`build_connection_pool_key_attributes`): a context in use cannot take another
    bundle, so each bundle has its own."""

    def build_connection_pool_key_attributes(self, request: Any, verify: Any,
                                             cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        if host.get("scheme") == "https":
            pool["ssl_context"] = shared_context(pool.get("ca_certs"), pool.get("ca_cert_dir"), verify is not False)
        return host, pool


class Httplib2Connection(httplib2.HTTPSConnectionWithTimeout):  # type: ignore[misc]
    """httplib2's https connection (timeouts, proxies, connect loop) on TLSContext."""

    def __init__(self, host: str, port: int | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._context = shared_context(self.ca_certs, None, not self.disable_ssl_certificate_validation)
