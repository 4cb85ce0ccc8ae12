"""A real adb server on a private port, and connecting virtual phones to it.

Uses the ``adb`` program on ``PATH`` (Debian package ``adb``) with ``ANDROID_ADB_SERVER_PORT`` / ``-P`` so it
never touches the adb server (and phones) a developer already has on the default port 5037.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from farm.errors import DeviceOfflineError, InfraError

logger = logging.getLogger(__name__)


@dataclass
class AdbServer:
    """Handle on one adb server: its port and how to run the ``adb`` CLI against it."""

    port: int
    host: str = "127.0.0.1"
    adb: str = "adb"
    home: str | None = None  # where the server keeps its adbkey (a private dir for servers we start)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        env = dict(os.environ)
        env["ANDROID_ADB_SERVER_PORT"] = str(self.port)
        if self.home:
            env["HOME"] = self.home
            env["ANDROID_SDK_HOME"] = self.home
            env["ANDROID_USER_HOME"] = os.path.join(self.home, ".android")
        self.env = env

    def run(self, *args: str, timeout: float = 30.0, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``adb -P <port> <args>`` and return the completed process (text)."""
        return subprocess.run(
            [self.adb, "-P", str(self.port), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def is_running(self) -> bool:
        try:
            return self.run("version", timeout=5).returncode == 0 and self._server_answers()
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _server_answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def start(self) -> AdbServer:
        """``adb start-server`` on :attr:`port` (a no-op when one already listens there)."""
        if shutil.which(self.adb) is None:
            raise InfraError(f"adb not found on PATH (install the Debian package 'adb'): {self.adb}")
        if self.home:
            os.makedirs(os.path.join(self.home, ".android"), exist_ok=True)
        proc = self.run("start-server", timeout=30)
        if proc.returncode != 0:
            raise InfraError(f"adb start-server on port {self.port} failed: {proc.stderr.strip()}")
        return self

    def kill(self) -> None:
        try:
            self.run("kill-server", timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("adb kill-server on port %d: %s", self.port, exc)

    def states(self) -> dict[str, str]:
        """``{serial: state}`` from ``adb devices``."""
        out = self.run("devices", timeout=10).stdout
        result = {}
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2:
                result[parts[0]] = parts[1]
        return result

    def connect(self, serial: str) -> str:
        """``adb connect serial``; returns the server's answer (it does not fail on a dead port)."""
        return self.run("connect", serial, timeout=15).stdout.strip()

    def disconnect(self, serial: str) -> None:
        self.run("disconnect", serial, timeout=10)

    def wait_for(self, serials: Iterable[str], state: str = "device", timeout: float = 10.0) -> None:
        """Wait until every serial shows ``state`` in ``adb devices``; else :class:`DeviceOfflineError`."""
        wanted = list(serials)
        deadline = time.monotonic() + timeout
        while True:
            current = self.states()
            missing = [s for s in wanted if current.get(s) != state]
            if not missing:
                return
            if time.monotonic() > deadline:
                seen = {s: current.get(s, "absent") for s in missing}
                raise DeviceOfflineError(f"adb server :{self.port}: not {state!r} after {timeout:.0f}s: {seen}")
            time.sleep(0.05)
