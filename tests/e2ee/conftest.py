"""The view fixture of tests/view (a fresh view database with a fake log)."""

from tests.view.conftest import view

__all__ = ["view"]
