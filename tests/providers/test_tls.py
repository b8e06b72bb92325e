"""providers/tls.py: TLS on cryptography's OpenSSL, over real sockets against stdlib-ssl servers.

Checks what a transport must get right besides speed: the peer's chain and name (DNS and IP), the
bytes both ways, timeouts that fire, ragged and clean ends of a stream, resets, the makefile/close
life cycle http.client relies on, and that both adapters really use it (and `DRIVEFERRY_TLS=stdlib`
switches back)."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from test_gdrive_emulator import google_section
from test_onedrive_emulator import ms_section

from driveferry.emulator.server import Emulator
from driveferry.emulator.tls import ensure_certificates
from driveferry.providers import tls
from driveferry.providers.gdrive import from_remote_config as drive_from_config
from driveferry.providers.onedrive import from_remote_config

Handler = Callable[[ssl.SSLSocket], None]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return ensure_certificates(tmp_path_factory.mktemp("tls"), "localhost")


@pytest.fixture()
def serve(certs: tuple[Path, Path, Path]) -> Iterator[Callable[[Handler], int]]:
    """serve(handler) -> port: a one-connection stdlib TLS server running handler(conn) in a thread."""
    threads: list[threading.Thread] = []
    listeners: list[socket.socket] = []

    def start(handler: Handler) -> int:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs[1], certs[2])
        ls = socket.create_server(("127.0.0.1", 0))
        listeners.append(ls)

        def run() -> None:
            raw, _ = ls.accept()
            try:
                conn = ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()  # the client refused our certificate
                return
            try:
                handler(conn)
            except OSError:
                pass
            finally:
                conn.close()
        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        return int(ls.getsockname()[1])
    yield start
    for ls in listeners:
        ls.close()
    for t in threads:
        t.join(10)


def client(port: int, ca: Path | None, name: str | None = "localhost", timeout: float | None = 10) -> tls.TLSSocket:
    ctx = tls.TLSContext()
    if ca is not None:
        ctx.load_verify_locations(str(ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=name)


def test_bytes_both_ways_are_exact(certs: tuple[Path, Path, Path], serve: Callable[[Handler], int]) -> None:
    data = os.urandom(3 * 1024 * 1024 + 12345)

    def echo_digest(conn: ssl.SSLSocket) -> None:
        h, left = hashlib.sha256(), len(data)
        while left:
            piece = conn.recv(min(left, 65536))
            h.update(piece)
            left -= len(piece)
        conn.sendall(h.digest() + data)  # the digest of what arrived, then the same bytes back
    s = client(serve(echo_digest), certs[0])
    assert s.version() in ("TLSv1.2", "TLSv1.3")
    s.sendall(memoryview(data))
    f = s.makefile("rb")
    assert f.read(32) == hashlib.sha256(data).digest()
    buf = bytearray(len(data))
    view, got = memoryview(buf), 0
    while got < len(data):
        n = f.readinto(view[got:])
        assert n > 0
        got += n
    assert bytes(buf) == data
    f.close()
    s.close()


def test_unknown_ca_is_refused(certs: tuple[Path, Path, Path], serve: Callable[[Handler], int],
                               tmp_path: Path) -> None:
    other_ca = ensure_certificates(tmp_path / "other", "localhost")[0]
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        client(serve(lambda c: None), other_ca)
    assert "certificate verify failed" in str(err.value)
    # another CA of the same name: its signature does not verify (7); of another name: no issuer (20)
    assert err.value.verify_code in (7, 20)


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_names_in_the_certificate_pass(certs: tuple[Path, Path, Path], serve: Callable[[Handler], int],
                                       name: str) -> None:
    s = client(serve(lambda c: c.sendall(b"hi")), certs[0], name)
    assert s.recv(2) == b"hi"
    s.close()


@pytest.mark.parametrize("name", ["elsewhere.example", "127.0.0.2", "localhost.evil"])
def test_a_name_not_in_the_certificate_is_refused(certs: tuple[Path, Path, Path],
                                                  serve: Callable[[Handler], int], name: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        client(serve(lambda c: None), certs[0], name)
    assert err.value.verify_code in (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH / IP_ADDRESS_MISMATCH


def test_a_silent_server_times_out(certs: tuple[Path, Path, Path], serve: Callable[[Handler], int]) -> None:
    release = threading.Event()
    s = client(serve(lambda c: release.wait(10)), certs[0], timeout=0.3)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        s.recv_into(bytearray(100))
    assert 0.2 < time.monotonic() - start < 5
    release.set()
    s.close()


def test_clean_and_ragged_ends_read_as_the_end(certs: tuple[Path, Path, Path],
                                               serve: Callable[[Handler], int]) -> None:
    def clean(c: ssl.SSLSocket) -> None:
        c.sendall(b"abc")
        c.unwrap()  # close_notify

    def ragged(c: ssl.SSLSocket) -> None:
        c.sendall(b"abc")
        c.shutdown(socket.SHUT_RDWR)  # TCP FIN without close_notify (a cut body, or a careless server)
    for handler in (clean, ragged):
        s = client(serve(handler), certs[0])
        f = s.makefile("rb")
        assert f.read() == b"abc"
        assert s.recv_into(bytearray(10)) == 0  # and again: no SSL_read after a fatal end
        f.close()
        s.close()


def test_a_reset_is_an_oserror(certs: tuple[Path, Path, Path], serve: Callable[[Handler], int]) -> None:
    def reset(c: ssl.SSLSocket) -> None:
        c.sendall(b"x")
        time.sleep(0.2)
        raw = socket.socket(fileno=os.dup(c.fileno()))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()
        c.close()  # the last descriptor: closed with linger 0, the kernel sends RST
    s = client(serve(reset), certs[0])
    assert s.recv(1) == b"x"
    time.sleep(0.5)
    with pytest.raises(ConnectionResetError):
        for _ in range(10):
            s.sendall(b"y" * 65536)
            s.recv_into(bytearray(10))
    s.close()


def test_close_waits_for_the_open_reader(certs: tuple[Path, Path, Path], serve: Callable[[Handler], int]) -> None:
    """http.client may close the socket while its response still reads through makefile()."""
    s = client(serve(lambda c: c.sendall(b"0123456789")), certs[0])
    f = s.makefile("rb")
    s.close()
    assert f.read(10) == b"0123456789"
    fd = s.fileno()
    f.close()
    assert fd >= 0 and s._sock.fileno() == -1  # closed with its last reader


def _sockets(fresh_emulator: Emulator, state_dir: Path) -> list[object]:
    """The TLS sockets each adapter is left holding after one call to the emulator."""
    od = from_remote_config(ms_section(fresh_emulator), name="onedrive", state_dir=state_dir / "od")
    od.root()
    pool = od.client.session().get_adapter(fresh_emulator.base_url).poolmanager
    graph = [c.sock for p in pool.pools._container.values() for c in list(p.pool.queue) if c and c.sock]
    gd = drive_from_config({**google_section(fresh_emulator), "root": "tls-check", "create_root": True},
                           name="gdrive", state_dir=state_dir / "gd")
    gd.root()
    drive = [c.sock for c in gd.api.http().http.connections.values() if c.sock]
    assert graph and drive
    return graph + drive


def test_both_adapters_use_it_and_the_switch_turns_it_off(fresh_emulator: Emulator, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(isinstance(s, tls.TLSSocket) for s in _sockets(fresh_emulator, tmp_path / "a"))
    monkeypatch.setenv(tls.ENV, "stdlib")
    assert all(type(s) is ssl.SSLSocket for s in _sockets(fresh_emulator, tmp_path / "b"))


def test_the_requests_adapter_takes_each_requests_trust(certs: tuple[Path, Path, Path], tmp_path: Path,
                                                        serve: Callable[[Handler], int],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """verify= per request, and REQUESTS_CA_BUNDLE for a session that trusts the environment: each
    bundle gets its own context, so one in use never has to take another."""
    def answer(c: ssl.SSLSocket) -> None:
        c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    other_ca = ensure_certificates(tmp_path / "other", "localhost")[0]
    s = requests.Session()
    s.mount("https://", tls.TLSAdapter())
    assert s.get(f"https://localhost:{serve(answer)}/", verify=str(certs[0])).text == "ok"
    with pytest.raises(requests.exceptions.SSLError):
        s.get(f"https://localhost:{serve(answer)}/", verify=str(other_ca))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs[0]))
    assert s.get(f"https://localhost:{serve(answer)}/").text == "ok"
    pools = list(s.get_adapter("https://localhost").poolmanager.pools._container.values())
    assert all(type(p.conn_kw.get("ssl_context")) is tls.TLSContext for p in pools)
    assert len(pools) == 3  # three servers (ports); two bundles, the environment's being the first one's
    assert len({id(p.conn_kw["ssl_context"]) for p in pools}) == 2


def test_a_binding_without_what_it_needs_means_the_ssl_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tls.ENV, raising=False)
    assert tls.AVAILABLE and tls.use_bundled_tls()
    monkeypatch.setattr(tls, "AVAILABLE", False)
    assert not tls.use_bundled_tls()


def test_a_file_that_holds_no_certificate_is_an_ssl_error(tmp_path: Path) -> None:
    """As the ssl module raises it, so both adapters report a bad ca_file the same way as before."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError, match="bad.pem"):
        tls.TLSContext().load_verify_locations(str(bad))
