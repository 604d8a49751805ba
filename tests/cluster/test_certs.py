"""The cluster CA and node certificates (outlast.cluster.certs) and how a TLS plan uses them.

Pure file work: certificates are made in tmp_path and checked with the ssl module
and cryptography; no server runs here (tests/log/test_tls.py runs them).
"""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

from cryptography import x509

from outlast.cluster.certs import issue, make_ca
from outlast.cluster.plan import ClusterPlan
from outlast.log.engine import render_config


def test_a_node_certificate_names_loopback_and_is_signed_by_the_ca(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    node = issue(ca, tmp_path / "nodes", "a-1")
    cert = x509.load_pem_x509_certificate(Path(node.cert).read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(Path(ca.ca).read_bytes()))
    # A server context loads it, a client context trusting the CA is built from it.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(node.cert, node.key)
    for key in (ca.key, node.key):
        assert stat.S_IMODE(Path(key).stat().st_mode) == 0o600


def test_a_tls_plan_gives_each_node_a_certificate_and_workers_the_ca(tmp_path: Path) -> None:
    plan = ClusterPlan.new(tmp_path / "c", 3, 2, 1, tls=True)
    site = plan.sites[0]
    spec = plan.node_spec(site)
    assert spec.tls_ca == plan.tls_ca and Path(spec.tls_cert).is_file()
    text = render_config(spec)
    assert text.count("tls {") == 2  # clients, and routes inside cluster { }
    assert f'tls_ca = "{plan.tls_ca}"' in plan.worker_config(site, 0)
    assert plan.tls_context() is not None
    pem = Path(plan.front_door_pem())
    assert b"PRIVATE KEY" in pem.read_bytes() and stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert plan.front_door_url.startswith("https://")
    # A rebuilt site's new node gets its own certificate from the same CA.
    first_ca = Path(plan.tls_ca).read_bytes()
    site.generation += 1
    rebuilt = plan.node_spec(site)
    assert rebuilt.tls_cert != spec.tls_cert and Path(rebuilt.tls_cert).is_file()
    assert Path(plan.tls_ca).read_bytes() == first_ca


def test_a_plan_without_tls_has_no_certificates(tmp_path: Path) -> None:
    plan = ClusterPlan.new(tmp_path / "c", 3, 2, 1)
    assert "tls {" not in render_config(plan.node_spec(plan.sites[0]))
    assert "tls_ca" not in plan.worker_config(plan.sites[0], 0)
    assert plan.front_door_pem() == "" and plan.front_door_url.startswith("http://")
    assert plan.tls_context() is None and not (tmp_path / "c" / "tls").exists()
