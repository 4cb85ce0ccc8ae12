"""The transport interface every device kind drives its device through.

A transport runs one command and moves files; it knows nothing about jobs, grids or metrics. Infrastructure faults
(device gone, link dropped, missing exit status) are raised as :class:`farm.errors.InfraError` subclasses, each
transport translating its library's exceptions through one table (:mod:`actors.transports.errors`); a command the
transport will not build (empty ``argv``, an env name that is no identifier) is :class:`farm.errors.RunRefused`. A
command that ran and failed is a :class:`Completed` with a non-zero ``exit_code``, never an exception.

The one exception to that is :meth:`Transport.check_output`, the verb for a short command that must succeed (a
probe, a status tool, housekeeping): it returns stdout and turns a failure into an error (:func:`checked`).
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from farm.errors import ConnectionLostError, DeviceOfflineError, RunRefused

CHECK_TIMEOUT_S = 30.0
"""The default ``timeout`` of :meth:`Transport.check_output`."""


@dataclass(frozen=True)
class Completed:
    """The outcome of one command that ran to an end (exit, timeout or cancel)."""

    exit_code: int | None  # None when killed on timeout/cancel before it exited
    stdout: str
    stderr: str
    duration_s: float  # wall time from process start to exit/kill
    timed_out: bool = False
    cancelled: bool = False
    pid: int | None = None  # pid on the device, when known
    # The kernel's peak RSS of the command and the descendants it reaped (KiB, ``wait4``'s ``ru_maxrss``), where the
    # transport reaps the command itself (local); None elsewhere.
    reaped_peak_kib: int | None = None


@dataclass(frozen=True)
class PushResult:
    """What an artifact push moved: ``bytes_pushed`` is 0 when the device already held the content."""

    dst: str
    sha256: str
    size: int
    bytes_pushed: int
    seconds: float


#: Called with the command's pid once it started. It may return a callable the transport then calls while it waits
#: for the command (the local transport does, from its wait loop, at most every 20 ms): a sampler's poll.
OnStart = Callable[[int], Callable[[], None] | None]
"""Called with the device-side pid as soon as the command has started (samplers attach to it)."""


@runtime_checkable
class Transport(Protocol):
    """Run commands on and move files to one device."""

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        on_start: OnStart | None = None,
    ) -> Completed:
        """Run ``argv`` (each argument quoted on the device side) and wait for it.

        On ``timeout`` seconds or when ``cancel`` is set the whole process group is killed on the device and the
        result has ``timed_out`` / ``cancelled`` set.
        """
        ...

    def check_output(self, argv: Sequence[str], *, timeout: float = CHECK_TIMEOUT_S) -> str:
        """Run a short command that must succeed and return its stdout (argv quoted like :meth:`run`; a compound
        script is ``["sh", "-c", script]``).

        A non-zero exit is a :class:`~farm.errors.DeviceOfflineError`, a timeout a
        :class:`~farm.errors.ConnectionLostError`, a dropped link what the transport's error table maps it to.
        """
        ...

    def push(self, src: Path, dst: str, mode: int | None = None) -> PushResult:
        """Copy a local file to ``dst`` on the device, skipping the transfer when the content is already there."""
        ...

    def pull(self, src: str, dst: Path) -> None:
        """Copy a device file to a local path."""
        ...

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards (it reconnects)."""
        ...


def refuse_empty(argv: Sequence[str]) -> None:
    """An empty ``argv`` is a :class:`~farm.errors.RunRefused`: nothing to run."""
    if not argv:
        raise RunRefused("empty argv: nothing to run")


def checked(done: Completed, where: str, argv: Sequence[str], timeout: float) -> str:
    """``done.stdout`` when the command exited 0; else the error :meth:`Transport.check_output` promises."""
    if done.timed_out:
        raise ConnectionLostError(f"{where}: {shlex.join(argv)} timed out after {timeout} s")
    if done.exit_code != 0:
        raise DeviceOfflineError(f"{where}: {shlex.join(argv)} exited {done.exit_code}: {done.stderr.strip()[-300:]}")
    return done.stdout
