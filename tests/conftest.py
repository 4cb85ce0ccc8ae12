"""Test-wide fixtures: the real adb server + virtual phones, and the real sshd box."""

from __future__ import annotations

pytest_plugins = ["tests.fixtures.adb", "tests.fixtures.ssh"]
