"""The plumbing of the virtual phone's shell: where output goes, where input comes from, what a command gets.

:class:`CommandContext` is what every handler (builtin, applet, scripted binary) receives; :class:`CommandTable`
maps command names and pushed-binary basenames to handlers. The shell itself is :mod:`farm.sim.shell_session`;
the stock table is :func:`farm.sim.commands.default_table`.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from farm.sim.filesystem import normalize
from farm.sim.processes import Process
from farm.sim.state import PhoneState

SH = "/system/bin/sh"


class Sink(Protocol):
    """Where a command's stdout or stderr goes."""

    async def write(self, data: bytes) -> None: ...


class BufferSink:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data


class NullSink:
    async def write(self, data: bytes) -> None:
        return None


class FileSink:
    """Appends to a phone file (the target of ``>`` / ``>>``)."""

    def __init__(self, state: PhoneState, path: str, append: bool) -> None:
        self._host = state.fs.open_for_write(path, append=append)
        self._host.touch()

    async def write(self, data: bytes) -> None:
        with self._host.open("ab") as f:
            f.write(data)


class SysfsSink:
    """A write to a tunable ``/sys`` file (``echo performance > …/scaling_governor``): refused when opened unless
    the writer is root, stored as the kernel would on write (:mod:`farm.sim.device_settings`)."""

    def __init__(self, state: PhoneState, path: str, uid: int) -> None:
        state.device.check_writable(path, uid)
        self._state, self._path = state, path

    async def write(self, data: bytes) -> None:
        self._state.device.write(self._path, data)


class InputPipe:
    """A command's stdin: bytes fed by the stream or a previous pipeline stage, then EOF."""

    def __init__(self, data: bytes | None = None) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        if data is not None:
            if data:
                self._queue.put_nowait(data)
            self._queue.put_nowait(b"")

    def feed(self, data: bytes) -> None:
        if data:
            self._queue.put_nowait(data)

    def close(self) -> None:
        self._queue.put_nowait(b"")

    async def read(self) -> bytes:
        """The next piece of input, ``b""`` at EOF (and on every later call)."""
        data = await self._queue.get()
        if not data:
            self._queue.put_nowait(b"")
        return data

    async def read_all(self) -> bytes:
        out = bytearray()
        while chunk := await self.read():
            out += chunk
        return bytes(out)

    async def read_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = await self.read()
            if not chunk:
                break
            out += chunk
        return bytes(out)


class Shell(Protocol):
    """What a handler may reach of the shell that runs it (:class:`farm.sim.shell_session.ShellSession`)."""

    cwd: str
    vars: dict[str, str]
    exported: set[str]
    status: int
    args: list[str]

    async def execute(
        self,
        argv: list[str],
        env: dict[str, str],
        stdin: InputPipe,
        stdout: Sink,
        stderr: Sink,
        *,
        as_proc: Process | None = None,
        parent: Process | None = None,
    ) -> int: ...

    def subshell(self, proc: Process, env: dict[str, str]) -> Shell: ...

    async def run_script(self, script: str, stdin: InputPipe, stdout: Sink, stderr: Sink) -> int: ...


@dataclass
class CommandContext:
    """What a handler gets: its arguments, environment, I/O and the phone."""

    state: PhoneState
    proc: Process
    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdin: InputPipe
    stdout: Sink
    stderr: Sink
    session: Shell

    async def out(self, text: str | bytes) -> None:
        await self.stdout.write(text.encode() if isinstance(text, str) else text)

    async def err(self, text: str | bytes) -> None:
        await self.stderr.write(text.encode() if isinstance(text, str) else text)

    def path(self, p: str) -> str:
        return normalize(p, self.cwd)


Handler = Callable[[CommandContext], Coroutine[Any, Any, int]]


@dataclass
class CommandTable:
    """Command name → handler, plus basename-prefix matches for scripted binaries pushed to the phone."""

    commands: dict[str, Handler] = field(default_factory=dict)
    binaries: list[tuple[str, Handler]] = field(default_factory=list)

    def register(self, name: str, handler: Handler) -> None:
        """Make ``name`` (no ``/``) a command, like a toybox applet on ``PATH``."""
        self.commands[name] = handler

    def register_binary(self, basename_prefix: str, handler: Handler) -> None:
        """Run ``handler`` for any pushed executable whose basename starts with ``basename_prefix``."""
        self.binaries.insert(0, (basename_prefix, handler))

    def binary_for(self, path: str) -> Handler | None:
        base = posixpath.basename(path)
        for prefix, handler in self.binaries:
            if base.startswith(prefix):
                return handler
        return None
