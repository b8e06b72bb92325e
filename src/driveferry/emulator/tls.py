"""A local CA and a server certificate for `--tls` (msal accepts only https authorities).

Generated once per data directory and reused, so clients can keep trusting the same CA file. The
server certificate also names the real services' hosts (PROXIED_HOSTS): clients with hard-coded
endpoints (rclone) reach the emulator through the CONNECT proxy (proxy.py) and check those names. A
certificate from an older data directory that lacks them is re-issued under the same CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# rclone's drive backend: www.googleapis.com (API and uploads), oauth2.googleapis.com (token refresh);
# onedrive backend: graph.microsoft.com, login.microsoftonline.com (rclone backend/drive/drive.go,
# backend/onedrive/onedrive.go)
PROXIED_HOSTS = ("www.googleapis.com", "oauth2.googleapis.com", "graph.microsoft.com",
                 "login.microsoftonline.com")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "driveferry emulator")])


def _has_names(cert_file: Path, host: str) -> bool:
    """Whether the certificate names every proxied host and `host` (or `host` is loopback/localhost)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(PROXIED_HOSTS) <= dns and (host in dns or host in ips or host == "localhost")


def _load_ca(ca_file: Path, ca_key_file: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not (ca_file.exists() and ca_key_file.exists()):
        return None
    key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return x509.load_pem_x509_certificate(ca_file.read_bytes()), key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _new_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name("driveferry emulator CA"))
               .issuer_name(_name("driveferry emulator CA")).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now)
               .not_valid_after(now + dt.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    return ca_cert, ca_key


def ensure_certificates(tls_dir: Path, host: str) -> tuple[Path, Path, Path]:
    """Return (ca.pem, server.pem, server.key), creating them if absent or if the server certificate lacks
    a name it must carry. The CA is kept when its key is on disk (ca.key), so trusting clients go on
    trusting; an older directory without ca.key gets a new CA. Keys are written mode 0600."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = tls_dir / "ca.pem", tls_dir / "server.pem", tls_dir / "server.key"
    ca_key_file = tls_dir / "ca.key"
    if ca_file.exists() and cert_file.exists() and key_file.exists() and _has_names(cert_file, host):
        return ca_file, cert_file, key_file
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    loaded = _load_ca(ca_file, ca_key_file)
    if loaded is None:
        ca_cert, ca_key = _new_ca(now)
        ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        _write_key(ca_key_file, ca_key)
    else:
        ca_cert, ca_key = loaded
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    names += [x509.DNSName(h) for h in PROXIED_HOSTS]
    try:
        ip = ipaddress.ip_address(host)
        if not ip.is_loopback:
            names.append(x509.IPAddress(ip))
    except ValueError:
        if host != "localhost" and host not in PROXIED_HOSTS:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    _write_key(key_file, key)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca_file, cert_file, key_file
