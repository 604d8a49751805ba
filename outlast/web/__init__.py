"""Static web pages served by Outlast itself: the chat (``chat/``) and shared helpers.

The pages are plain files (HTML, ES modules, CSS, SVG) shipped as package data.
They are real clients of the Client-Server API on the same origin and make no
other network request, so every response carries a strict Content-Security-Policy
(no inline script or style, no other origin) and ``nosniff``.

This module is pure (no aiohttp): it resolves a request path to a file inside a
page's folder, names its content type and lists the security headers; the HTTP
handlers in ``outlast/http/routes`` turn that into responses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

WEB_ROOT = Path(__file__).resolve().parent
CHAT_DIR = WEB_ROOT / "chat"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class StaticFile:
    """One file ready to serve: its bytes, content type and a strong ETag."""

    body: bytes
    content_type: str
    etag: str


def resolve(base: Path, relative: str) -> Path | None:
    """The file ``relative`` names inside ``base``, or None (missing, hidden, or outside)."""
    if not relative or "\\" in relative or "\x00" in relative:
        return None
    parts = PurePosixPath(relative).parts
    if any(part in ("..", ".") or part.startswith(".") for part in parts):
        return None
    path = (base / PurePosixPath(*parts)).resolve()
    try:
        path.relative_to(base.resolve())
    except ValueError:
        return None
    if path.suffix.lower() not in CONTENT_TYPES or not path.is_file():
        return None
    return path


def load(path: Path) -> StaticFile:
    """Read a resolved file (small files only: pages, scripts, styles, icons)."""
    body = path.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return StaticFile(body, CONTENT_TYPES[path.suffix.lower()], etag)
