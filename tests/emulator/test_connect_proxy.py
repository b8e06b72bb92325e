"""The CONNECT proxy (emulator/proxy.py) and the certificate names it relies on (emulator/tls.py): a client
asking for www.googleapis.com through the proxy reaches the emulator and verifies its certificate under
that name; anything but CONNECT is refused; old certificates without the names are re-issued."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from driveferry.emulator.proxy import ConnectProxy
from driveferry.emulator.server import Emulator
from driveferry.emulator.tls import PROXIED_HOSTS, ensure_certificates


def _via_proxy(emu: Emulator, proxy: ConnectProxy, url: str, token: str | None = None) -> requests.Response:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(emu.ca_file)
    s.proxies = {"https": proxy.url}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return s.get(url, headers=headers, timeout=30)


def test_real_host_names_reach_the_emulator_through_the_proxy(emulator: Emulator) -> None:
    token = emulator.credentials()["google"]["access_token"]
    with ConnectProxy(("127.0.0.1", emulator.port)) as proxy:
        r = _via_proxy(emulator, proxy, "https://www.googleapis.com/drive/v3/about?fields=user", token)
        assert r.status_code == 200 and r.json()["user"]["emailAddress"]
        ms = _via_proxy(emulator, proxy, "https://graph.microsoft.com/v1.0/me/drive")
        assert ms.status_code == 401  # Graph's own shape: no token
        assert "error" in ms.json()
        assert proxy.tunnels_opened == 2


def test_anything_but_connect_is_refused(emulator: Emulator) -> None:
    with ConnectProxy(("127.0.0.1", emulator.port)) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(b"GET http://www.googleapis.com/ HTTP/1.1\r\nHost: www.googleapis.com\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 405 ")
        assert proxy.tunnels_opened == 0


def test_the_proxy_binds_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ConnectProxy(("127.0.0.1", 1), host="0.0.0.0")


def _names(cert_file: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))


def test_a_certificate_without_the_real_host_names_is_reissued_under_the_same_ca(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = ensure_certificates(tmp_path, "127.0.0.1")
    assert set(PROXIED_HOSTS) <= _names(cert_file)
    ca_before = ca_file.read_bytes()
    # what an older data directory holds: a server certificate naming localhost only
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(ca_before)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    old = (x509.CertificateBuilder().subject_name(ca.subject).issuer_name(ca.subject).public_key(key.public_key())
           .serial_number(x509.random_serial_number()).not_valid_before(now)
           .not_valid_after(now + dt.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
           .sign(ca_key, hashes.SHA256()))
    cert_file.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    ensure_certificates(tmp_path, "127.0.0.1")
    assert set(PROXIED_HOSTS) <= _names(cert_file)
    assert ca_file.read_bytes() == ca_before  # clients trusting the CA go on trusting
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    before = cert_file.read_bytes()
    ensure_certificates(tmp_path, "127.0.0.1")
    assert cert_file.read_bytes() == before  # complete certificates are kept


def test_serve_connect_proxy_needs_tls(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "emulator", "serve", "--data", str(tmp_path / "d"),
                           "--connect-proxy", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["driveferry: error: --connect-proxy needs --tls and a port in 0..65535"]
    assert not (tmp_path / "d").exists()


def test_serve_prints_the_proxy_it_runs(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "driveferry.cli", "emulator", "serve", "--data", str(tmp_path / "d"),
                             "--tls", "--connect-proxy", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        described = json.loads(proc.stdout.readline())
        s = requests.Session()
        s.trust_env, s.verify = False, described["ca_file"]
        s.proxies = {"https": described["connect_proxy"]}
        token = described["credentials"]["google"]["access_token"]
        r = s.get("https://www.googleapis.com/drive/v3/about?fields=user", headers={"Authorization": f"Bearer {token}"},
                  timeout=30)
        assert r.status_code == 200 and "emailAddress" in r.json()["user"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
