"""Backups of a whole deployment (every stream and the media bucket) and restores from them."""
