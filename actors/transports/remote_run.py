"""The run loop both remote transports (adb, ssh) share; each supplies only its channel.

:class:`RemoteTransport` implements ``run`` once: build the command line (:func:`~actors.transports.remote_shell.
build_command`), start it through the transport's channel, hand the pid the command announces to ``on_start``, and
wait for its exit status, the timeout or the cancel event. Choices a caller may rely on, whichever transport:

* Timeout and cancel kill the command's process group through a second stream (the transport's ``_kill``), then
  wait up to ``EXIT_WAIT_S`` for its exit status; the result has ``exit_code`` None and ``timed_out`` /
  ``cancelled`` set. A command killed before it announced its pid is given ``_PID_WAIT_S`` to do so. A ``cancel``
  already set returns at once, nothing started.
* If ``on_start`` (or anything else in the wait) raises, the command is killed before the exception propagates:
  nothing is left running unattended on the device.
* A stream that ends without an exit status is a :class:`~farm.errors.ConnectionLostError`, never a result. The
  command may still run on the device (a link that went silent never hangs it up): its pid is remembered with a
  word of its command line and it is killed as soon as the device answers again (the transport calls
  :meth:`RemoteTransport._reap_orphans`), only while ``/proc/<pid>/cmdline`` still holds that word (after a
  reboot the pid may be another process's).
* ``duration_s`` runs from the pid announcement (the command's own start, not the link's setup) to its end.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar, Protocol

from actors.transports.base import Completed, OnStart
from actors.transports.errors import reason
from actors.transports.remote_shell import PidMarker, build_command, new_marker
from farm.errors import ConnectionLostError, InfraError

log = logging.getLogger(__name__)

_TICK_S = 0.05  # granularity of timeout/cancel checks while a command runs
EXIT_WAIT_S = 10.0  # how long to wait for the exit status once the command was killed
_PID_WAIT_S = 2.0  # how long a kill waits for a just-started command to announce its pid


class Started(Protocol):
    """One command started on the device, as the transport's channel sees it."""

    @property
    def pid(self) -> int | None:
        """The device-side pid the command announced (None until it has)."""
        ...

    @property
    def started_at(self) -> float | None:
        """``time.monotonic()`` when the pid announcement arrived."""
        ...

    @property
    def exit_code(self) -> int | None:
        """The exit status; None while running, and after a stream that ended without one (link lost)."""
        ...

    @property
    def error(self) -> str:
        """Why the stream ended, when it ended without an exit status ("" when nothing more is known)."""
        ...

    def ended(self) -> bool:
        """Whether the stream has ended (exit status received, or the link is gone)."""
        ...

    def wait(self, seconds: float) -> bool:
        """Block until something arrives (output, the pid, the end) or ``seconds`` pass; return :meth:`ended`."""
        ...

    def finish(self) -> tuple[str, str, float]:
        """After the end: stdout (marker line taken out), stderr and the monotonic time the stream ended."""
        ...

    def close(self) -> None:
        """Release the stream (idempotent)."""
        ...


class CommandStream:
    """What the transports' views of one started command share: stdout as it arrives with the pid marker line
    taken out, stderr, the event that wakes the run loop, and the fault that ended a reader early.

    A transport's reader calls :meth:`take_stdout` with each stdout chunk and :meth:`end_stdout` at the end of
    the stream; the transport's subclass says when the command has :meth:`ended` and with what ``exit_code``.
    """

    def __init__(self, marker: bytes | None) -> None:
        self.wake = threading.Event()
        self._pid = PidMarker(marker)
        self.stdout: list[bytes] = []
        self.stderr: list[bytes] = []
        self.fault: BaseException | None = None

    def take_stdout(self, data: bytes) -> None:
        pending = self._pid.pending
        kept = self._pid.feed(data)
        if kept:
            self.stdout.append(kept)
        if pending and not self._pid.pending:
            self.wake.set()  # the pid is known: the caller can start samplers

    def end_stdout(self) -> None:
        tail = self._pid.flush()
        if tail:
            self.stdout.append(tail)
        self.wake.set()

    @property
    def pid(self) -> int | None:
        return self._pid.pid

    @property
    def started_at(self) -> float | None:
        return self._pid.started_at

    @property
    def error(self) -> str:
        return reason(self.fault) if self.fault is not None else ""

    def ended(self) -> bool:
        raise NotImplementedError

    def wait(self, seconds: float) -> bool:
        self.wake.wait(seconds)
        self.wake.clear()
        return self.ended()

    def texts(self) -> tuple[str, str]:
        """stdout and stderr as text (undecodable bytes replaced)."""
        return _text(self.stdout), _text(self.stderr)


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", errors="replace")


def orphan_guard(pid: int, word: str) -> str:
    """A shell prefix that exits 0 unless ``/proc/<pid>/cmdline`` holds ``word`` (no guard for an empty word)."""
    return f"grep -qF {shlex.quote(word)} /proc/{pid}/cmdline 2>/dev/null || exit 0; " if word else ""


class RemoteTransport(ABC):
    """``run`` and the orphan bookkeeping of a transport that reaches its device through a shell stream."""

    own_group: ClassVar[bool] = False  # build_command's shape: setsid in the background (ssh) or exec in place

    def __init__(self) -> None:
        self._marker = new_marker()
        self._orphans_lock = threading.Lock()
        self._orphans: dict[int, str] = {}  # pid → a word of its command line: commands a lost link left running
        self.orphans_killed = 0

    @property
    @abstractmethod
    def _where(self) -> str:
        """The device as error messages and log lines name it."""

    @abstractmethod
    def _start(self, command: str, argv: Sequence[str]) -> Started:
        """Open a stream, start the shell line ``command`` (stdin at EOF) and return it, its readers running."""

    @abstractmethod
    def _kill(self, pid: int, guard: str = "", *, reconnect: bool = True) -> None:
        """Kill ``pid``'s process group through a second stream; ``guard`` (:func:`orphan_guard`) prefixes the
        kill. An unreachable device raises an :class:`~farm.errors.InfraError`."""

    @abstractmethod
    def _lost(self, cmd: Started) -> None:
        """Called when ``cmd``'s stream ended without an exit status (ssh drops that connection here)."""

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
        """Run ``argv`` on the device and wait for it (see the module docstring for kill and faults)."""
        command = build_command(argv, self._marker, env, workdir, own_group=self.own_group)
        if cancel is not None and cancel.is_set():
            return Completed(None, "", "", 0.0, cancelled=True)
        cmd = self._start(command, argv)
        t0 = time.monotonic()
        deadline = None if timeout is None else t0 + timeout
        stop: str | None = None
        try:
            announced = False
            while True:
                if not announced and cmd.pid is not None:
                    announced = True
                    if on_start is not None:
                        on_start(cmd.pid)
                if cmd.ended():
                    break
                if cancel is not None and cancel.is_set():
                    stop = "cancelled"
                elif deadline is not None and time.monotonic() >= deadline:
                    stop = "timed_out"
                if stop is not None:
                    self._stop_remote(cmd, argv, stop)
                    break
                cmd.wait(_TICK_S)
            stdout, stderr, end = cmd.finish()
        except BaseException:
            # e.g. on_start raised: do not leave the command running unattended on the device
            if cmd.pid is not None and stop is None and not cmd.ended():
                with contextlib.suppress(InfraError):
                    self._kill(cmd.pid)
            raise
        finally:
            cmd.close()
        started = cmd.started_at if cmd.started_at is not None else t0
        if cmd.exit_code is None:
            if cmd.pid is not None:
                self._orphan(cmd.pid, argv)
            self._lost(cmd)
            raise ConnectionLostError(
                f"{self._where}: connection lost while {argv[0]!r} ran (no exit status after "
                f"{end - started:.1f} s: {cmd.error or 'stream closed'})"
            )
        return Completed(
            exit_code=None if stop is not None else cmd.exit_code,
            stdout=stdout,
            stderr=stderr,
            duration_s=end - started,
            timed_out=stop == "timed_out",
            cancelled=stop == "cancelled",
            pid=cmd.pid,
        )

    def _stop_remote(self, cmd: Started, argv: Sequence[str], why: str) -> None:
        """Kill the command's process group, then wait for its stream to end with an exit status."""
        pid = cmd.pid
        if pid is None:
            # killed before its first instruction ran: give it a moment to announce itself
            end = time.monotonic() + _PID_WAIT_S
            while cmd.pid is None and not cmd.ended() and time.monotonic() < end:
                time.sleep(0.02)
            pid = cmd.pid
        log.info("%s: %s; killing pid %s", self._where, why.replace("_", " "), pid)
        if pid is not None:
            try:
                self._kill(pid)
            except InfraError:
                self._orphan(pid, argv)
                raise
        deadline = time.monotonic() + EXIT_WAIT_S
        while not cmd.wait(max(0.0, min(_TICK_S, deadline - time.monotonic()))) and time.monotonic() < deadline:
            pass
        if not cmd.ended() or cmd.exit_code is None:
            if pid is not None:
                self._orphan(pid, argv)
            raise ConnectionLostError(f"{self._where}: command did not end after kill ({why})")

    def _orphan(self, pid: int, argv: Sequence[str]) -> None:
        """Remember a command the link dropped under: it is killed as soon as the device answers again."""
        word = max((a for a in argv if "\n" not in a and "\0" not in a), key=len, default="")[:100]
        with self._orphans_lock:
            self._orphans[pid] = word
        log.warning("%s: pid %s may still be running; it is killed when the device is back", self._where, pid)

    def _reap_orphans(self) -> None:
        """Kill the commands lost links left running (each only while its command line still says it is ours)."""
        with self._orphans_lock:
            if not self._orphans:
                return
            orphans, self._orphans = self._orphans, {}
        for pid, word in orphans.items():
            try:
                self._kill(pid, orphan_guard(pid, word), reconnect=False)
            except InfraError as exc:
                log.info("%s: could not kill leftover pid %s yet: %s", self._where, pid, exc)
                with self._orphans_lock:
                    self._orphans.setdefault(pid, word)
                continue
            self.orphans_killed += 1
            log.info("%s: killed pid %s, left running by a lost link", self._where, pid)


__all__ = ["EXIT_WAIT_S", "CommandStream", "RemoteTransport", "Started", "orphan_guard"]
