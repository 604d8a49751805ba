"""Handlers grouped by the part of the Client-Server API they serve."""
