"""Simplified sliding sync (MSC4186) served from the view: the I/O around
:mod:`outlast.core.sliding` (service, stored connection state, cross-room reads)."""
