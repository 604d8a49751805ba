"""A private certificate authority for a local cluster's TLS: one CA, one cert per node.

``cluster up --tls`` and the TLS tests make these at run time; no key is ever
committed. Each node certificate names 127.0.0.1 and localhost (the local
cluster is loopback only) and may serve as both server and client certificate:
a route is dialled by one node and accepted by another, and both sides verify
the other's certificate against the cluster CA (mutual TLS).

Written with the ``cryptography`` package (``pip install outlast[tls]``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VALID_DAYS = 825


@dataclass(frozen=True)
class CertFiles:
    """Where one party's certificate, key and the CA that signed it are on disk."""

    ca: str
    cert: str
    key: str


def _modules() -> tuple[Any, Any, Any, Any, Any]:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise SystemExit(
            "outlast: TLS certificates need the cryptography package (pip install outlast[tls])"
        ) from exc
    return x509, hashes, serialization, ec, NameOID


def _write_key(path: Path, key: Any) -> None:
    _, _, serialization, _, _ = _modules()
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as sink:
        sink.write(data)


def _write_cert(path: Path, cert: Any) -> None:
    _, _, serialization, _, _ = _modules()
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(directory: Path, name: str = "Outlast cluster CA") -> CertFiles:
    """A new self-signed CA in ``directory`` (ca.pem, ca-key.pem)."""
    x509, hashes, _, ec, NameOID = _modules()
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    files = CertFiles(
        ca=str(directory / "ca.pem"),
        cert=str(directory / "ca.pem"),
        key=str(directory / "ca-key.pem"),
    )
    _write_key(Path(files.key), key)
    _write_cert(Path(files.ca), cert)
    return files


def issue(ca: CertFiles, directory: Path, name: str) -> CertFiles:
    """A certificate for ``name`` signed by ``ca``, valid for 127.0.0.1 and localhost,
    usable as server and as client certificate."""
    x509, hashes, serialization, ec, NameOID = _modules()
    ca_cert = x509.load_pem_x509_certificate(Path(ca.cert).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca.key).read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = CertFiles(
        ca=ca.ca, cert=str(directory / f"{name}.pem"), key=str(directory / f"{name}-key.pem")
    )
    _write_key(Path(files.key), key)
    _write_cert(Path(files.cert), cert)
    return files
