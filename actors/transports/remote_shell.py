"""Composing the POSIX shell line a remote transport (adb, ssh) runs, and reading back the pid it announces.

A remote command is started as ``export K=V; cd DIR || exit; … echo <marker>$$; exec argv`` so the farm learns
the device-side pid (for samplers and for killing the process group) without a second round trip; the marker
line is then taken out of the command's stdout. :func:`build_command` writes that line, in one of two shapes
(``exec`` in place for adb, ``setsid`` in the background for ssh: see its docstring). Every argument and env
value is quoted: env values are literal (``$HOME`` is not expanded), quoting is what keeps arguments from being
code. The one expansion is the device's own variable under a prepend (:class:`farm.envvars.EnvPrepend`):
``export K='value'"${K:+:$K}"``.
"""

from __future__ import annotations

import re
import secrets
import shlex
import time
from collections.abc import Mapping, Sequence

from actors.transports.base import refuse_empty
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


def build_command(
    argv: Sequence[str],
    marker: str,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    *,
    own_group: bool = False,
) -> str:
    """The remote command line for ``argv``: env exported, ``cd workdir``, pid marker, then ``argv``.

    By default ``argv`` is ``exec``'d in place (adb: adbd makes the shell a group leader where it can), in one
    ``;``-joined line using only ``export``, ``cd``, ``||``, ``echo $$`` and ``exec``, which mksh and the virtual
    phone's shell both have. With ``own_group`` (ssh) the line is ``sh -c`` of a script that starts ``argv`` in
    the background under ``setsid`` (its own session and process group, pgid == the pid it prints) and
    ``wait``s for it, so the waiting shell, outside that group, always reports an exit status (128+N for a
    signal) and a channel that ends without one means the link died, not the benchmark.
    """
    refuse_empty(argv)
    if not own_group:
        return "; ".join([*prelude(env, workdir), f"echo {marker}$$", f"exec {shlex.join(argv)}"])
    lines = prelude(env, workdir, cd="cd --")
    # the background child is not a group leader, so setsid(1) calls setsid() without forking: the pid printed
    # by the inner sh is the pid of the exec'd command and the id of its new process group
    inner = f'echo {marker}$$; exec "$@"'
    lines.append(f"setsid sh -c {shlex.quote(inner)} farm-run {shlex.join(argv)} &")
    lines.append('wait "$!"')
    return f"sh -c {shlex.quote(chr(10).join(lines))}"


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
