"""The adb fixtures for this folder (``tests/conftest.py`` may also load them for everyone as a plugin)."""

from tests.fixtures.adb import adb_server, virtual_phones

__all__ = ["adb_server", "virtual_phones"]
