"""Composing the POSIX shell line a remote transport (adb, ssh) runs, and reading back the pid it announces.

A remote command is started as ``export K=V; cd DIR || exit; … echo <marker>$$; exec argv`` so the farm learns
the device-side pid (for samplers and for killing the process group) without a second round trip; the marker
line is then taken out of the command's stdout. Every argument and env value is quoted: env values are literal
(``$HOME`` is not expanded), quoting is what keeps arguments from being code. The one expansion is the device's
own variable under a prepend (:class:`farm.envvars.EnvPrepend`): ``export K='value'"${K:+:$K}"``.
"""

from __future__ import annotations

import re
import secrets
import shlex
import time
from collections.abc import Mapping

from farm.envvars import EnvPrepend
from farm.errors import RunRefused

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def prelude(env: Mapping[str, str] | None, workdir: str | None, cd: str = "cd") -> list[str]:
    """``export`` lines for ``env`` and the ``cd`` into ``workdir`` (exit 127 if it is missing, like a shell)."""
    lines = []
    for key, value in (env or {}).items():
        if not _ENV_KEY.match(key):
            raise RunRefused(f"invalid environment variable name {key!r}")
        tail = value.shell_suffix(key) if isinstance(value, EnvPrepend) else ""
        lines.append(f"export {key}={shlex.quote(value)}{tail}")
    if workdir is not None:
        lines.append(f"{cd} {shlex.quote(workdir)} || exit 127")
    return lines


def new_marker() -> str:
    """A marker no benchmark prints by accident."""
    return f"__farm_pid_{secrets.token_hex(6)}__="


class PidMarker:
    """Feed it stdout bytes as they arrive; it hands back the bytes that are the command's own output."""

    def __init__(self, marker: bytes | None) -> None:
        self._marker = marker
        self._head = b""
        self.pid: int | None = None
        self.started_at: float | None = None  # time.monotonic() when the marker line arrived

    @property
    def pending(self) -> bool:
        """Still waiting for the marker line."""
        return self._marker is not None and self.pid is None

    def feed(self, data: bytes) -> bytes:
        if not self.pending:
            return data
        assert self._marker is not None
        self._head += data
        line, sep, rest = self._head.partition(b"\n")
        if not sep:
            return b""
        if line.startswith(self._marker) and line[len(self._marker) :].isdigit():
            self.pid = int(line[len(self._marker) :])
            self.started_at = time.monotonic()
        else:  # never expected: keep everything rather than lose output
            rest = self._head
            self._marker = None
        self._head = b""
        return rest

    def flush(self) -> bytes:
        """At end of stream: whatever was held back waiting for a newline."""
        head, self._head = self._head, b""
        return head
