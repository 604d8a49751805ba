"""Simplified sliding sync (MSC4186), the sync that Element X speaks.

The endpoint is ``POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync``.
A client asks for windows ("ranges") over its room list sorted by recent
activity, plus explicit room subscriptions, and gets only rooms that are new
to the connection or changed since its ``pos``. This package is the pure part:

- :mod:`.request` parses and validates the body (both the tuple form of
  ``required_state`` that matrix-rust-sdk and matrix-js-sdk send and the
  ``include``/``exclude`` form of the current MSC text);
- :mod:`.state` decides which state events a room entry carries, lazy members
  included;
- :mod:`.lists` filters and sorts rooms and cuts the windows;
- :mod:`.connection` holds what a connection has already been sent and decides,
  room by room, what the next response must carry;
- :mod:`.pos` is the ``pos`` token, valid at any site;
- :mod:`.rooms` renders one room entry and the response.
"""
