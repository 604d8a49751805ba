"""TLS from an Outlast process to nats-server: the client side of the log's encryption.

A worker verifies the node's certificate against the cluster CA (``[log]
tls_ca``); with ``tls_cert``/``tls_key`` it also presents its own (for nodes
that require client certificates). The node's half is in engine.py.
"""

from __future__ import annotations

import ssl

TlsContext = ssl.SSLContext | None  # None: plain TCP


class LogTlsRefused(Exception):
    """The TLS handshake with the log failed (wrong CA, bad certificate): retrying will not help."""


def client_context(ca: str, cert: str = "", key: str = "") -> ssl.SSLContext | None:
    """An SSL context that trusts only ``ca``; None when no CA is configured (plain TCP)."""
    if not ca:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        context.load_cert_chain(cert, key or None)
    return context


def is_tls_failure(exc: BaseException) -> bool:
    """A handshake refusal (certificate not trusted, protocol mismatch), not a network blip."""
    return isinstance(exc, ssl.SSLError)
