"""HTTP handlers for the web pages. (Filled in by its feature.)"""

from __future__ import annotations

from outlast.http.routing import Routes

routes = Routes()
