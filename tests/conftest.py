"""Test-wide fixtures: the real adb server + virtual phones, the real sshd box, and the local Ray."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.adb",
    "tests.fixtures.controller",
    "tests.fixtures.ray",
    "tests.fixtures.s3",
    "tests.fixtures.ssh",
]
