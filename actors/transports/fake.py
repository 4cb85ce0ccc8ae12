"""An in-memory device behind the :class:`~actors.transports.base.Transport` interface, for tests of the code above it.

As httpx ships ``MockTransport`` and labgrid its fake drivers, Farm ships :class:`FakeTransport`: device kinds,
samplers and the run procedure (:mod:`actors.device`) are tested on it without an adb server, an sshd or Ray, and a
user writing a device kind of their own tests it the same way. It keeps the contract the real transports keep
(``tests/actors/test_transport_contract.py`` runs the same assertions against all of them):

* **Commands** are answered by Python functions, not a shell: ``programs[argv[0]]`` when one is registered for the
  program's name, else ``handler``, else exit 127 ``command not found``. A handler gets a :class:`FakeProcess`
  (argv, env, workdir, pid, the device's files) and returns a :class:`Reply`, or ``None`` for exit 0 with what it
  wrote through :meth:`FakeProcess.write`. It runs in a thread of its own, so it may block: a handler that waits
  for :attr:`FakeProcess.killed` (:func:`block_until_killed`) is a benchmark that only ends when timeout or cancel
  kills it, deterministically, without sleeps. A handler that raises a :class:`~farm.errors.FarmError` makes the
  call raise it (a link that drops mid-run: raise :class:`~farm.errors.ConnectionLostError`).
* ``run`` checks what the remote transports check before anything starts: an empty ``argv`` or an env name that is
  no identifier is :class:`~farm.errors.RunRefused`; a ``cancel`` already set starts nothing; a ``workdir`` that is
  not a directory of the fake device, or a program nobody answers, is exit 127 (the shell's convention).
  ``on_start`` is called with the pid in the caller's thread before the command's end is awaited; an exception
  from it is logged and the run goes on (a broken sampler must not cost the benchmark). On timeout or cancel the
  process is killed (:attr:`FakeProcess.killed` set) and the result has ``exit_code`` None; a handler that ignores
  the kill for ``kill_grace_s`` is a :class:`~farm.errors.ConnectionLostError`, as a real command that outlives
  its kill.
* ``check_output`` is the short-command verb: stdout when the exit is 0, :class:`~farm.errors.DeviceOfflineError`
  naming the device, ``shlex.join(argv)``, the exit code and the tail of stderr otherwise, and
  :class:`~farm.errors.ConnectionLostError` on timeout.
* **Files** live in :attr:`FakeTransport.files` (path → :class:`FakeFile`; parents are implied). ``push`` behaves as
  the real ones: ``dst`` ending in ``/`` is a directory, the content lands under its final name whole, and a
  ``<dst>.farm-sha256`` marker (:mod:`actors.transports.push_marker`) makes a second push of the same content move
  0 bytes, for as long as ``dst`` keeps that size and mtime (a file changed on the device is pushed again). Every
  write ticks a device clock, which is the fake's mtime. ``pull`` of a missing file is an
  :class:`~farm.errors.InfraError`.
* **Faults** on demand: :meth:`FakeTransport.set_offline` (every call raises
  :class:`~farm.errors.DeviceOfflineError`, as a device whose link is down), :meth:`FakeTransport.drop_link`
  (commands running now end with :class:`~farm.errors.ConnectionLostError`; what they started is left running, as
  on a real device) and :meth:`FakeTransport.fail_next` (the next call of one verb raises the given error).
* **Record**: :attr:`FakeTransport.calls` holds every call in order (:class:`Call`) and
  :attr:`FakeTransport.processes` every process started, for assertions.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import posixpath
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from actors.transports.base import CHECK_TIMEOUT_S, Completed, OnStart, PushResult, checked, refuse_empty
from actors.transports.push_marker import marker_line, marker_path, recorded_digest
from actors.transports.remote_shell import prelude
from farm.errors import ConnectionLostError, DeviceOfflineError, FarmError, InfraError

log = logging.getLogger(__name__)

Verb = Literal["run", "check_output", "push", "pull", "close"]
_TICK_S = 0.01  # how often a waiting run looks at its cancel event and deadline


@dataclass(frozen=True)
class Reply:
    """What a fake command answers: its exit code and output (added after anything it wrote while running)."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class FakeFile:
    """One file on the fake device."""

    data: bytes
    mode: int = 0o644
    mtime: int = 0


@dataclass(frozen=True)
class Call:
    """One call made on a :class:`FakeTransport`: the verb and its arguments (``path``: push ``dst`` / pull ``src``)."""

    verb: Verb
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    workdir: str | None = None
    timeout: float | None = None
    path: str | None = None
    mode: int | None = None


class FakeProcess:
    """One command running on the fake device: what its handler sees and how it ends."""

    def __init__(
        self, device: FakeTransport, argv: Sequence[str], env: Mapping[str, str], workdir: str | None, pid: int
    ) -> None:
        self.device = device
        self.argv = tuple(argv)
        self.env = dict(env)
        self.workdir = workdir
        self.pid = pid
        self.killed = threading.Event()  # set by timeout, cancel or kill(): a blocking handler should return
        self.ended = threading.Event()  # set when the handler returned (or raised)
        self.state: Literal["running", "exited", "killed", "orphaned"] = "running"
        self._out: list[str] = []
        self._err: list[str] = []
        self._lock = threading.Lock()

    def write(self, stdout: str = "", stderr: str = "") -> None:
        """Output while running: kept even when the command is killed later, as a real command's."""
        with self._lock:
            self._out.append(stdout)
            self._err.append(stderr)

    def output(self) -> tuple[str, str]:
        with self._lock:
            return "".join(self._out), "".join(self._err)

    def kill(self) -> None:
        """End the command as a signal from the device would (its handler sees :attr:`killed`)."""
        self.killed.set()

    @property
    def running(self) -> bool:
        return self.state == "running"


Handler = Callable[[FakeProcess], Reply | None]


def block_until_killed(proc: FakeProcess, limit_s: float = 600.0) -> Reply:
    """A handler for a command that never ends by itself: it returns once timeout or cancel kills it."""
    proc.killed.wait(limit_s)
    return Reply(0)


def not_found(proc: FakeProcess) -> Reply:
    """The default handler: no program by that name (exit 127, the shell's convention)."""
    return Reply(127, "", f"fake: {proc.argv[0]}: not found\n")


class FakeTransport:
    """A fake device's transport (see the module docstring). Thread-safe."""

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        programs: Mapping[str, Handler] | None = None,
        label: str = "fake",
        kill_grace_s: float = 10.0,
        first_pid: int = 4000,
    ) -> None:
        self.handler: Handler = handler or not_found
        self.programs: dict[str, Handler] = dict(programs or {})
        self.label = label
        self.kill_grace_s = kill_grace_s
        self.files: dict[str, FakeFile] = {}
        self.dirs: set[str] = {"/"}
        self.calls: list[Call] = []
        self.processes: list[FakeProcess] = []
        self.closes = 0
        self._pids = itertools.count(first_pid)
        self._clock = itertools.count(1)
        self._lock = threading.RLock()
        self._offline: str | None = None
        self._faults: dict[Verb, list[FarmError]] = {}
        self._dropped: set[int] = set()  # pids whose call lost its link (drop_link)

    # -- faults ----------------------------------------------------------------------------------------------

    def set_offline(self, offline: bool = True, reason: str = "the device is offline") -> None:
        """While offline every call raises :class:`DeviceOfflineError` before anything reaches the device."""
        with self._lock:
            self._offline = reason if offline else None

    def drop_link(self) -> None:
        """The link drops now: every running command's call raises :class:`ConnectionLostError`; the commands
        themselves stay running on the device (``state == "orphaned"`` once their call gave up on them)."""
        with self._lock:
            self._dropped.update(p.pid for p in self.processes if p.running)

    def fail_next(self, verb: Verb, error: FarmError) -> None:
        """The next call of ``verb`` raises ``error`` (queued: call twice for two failures)."""
        with self._lock:
            self._faults.setdefault(verb, []).append(error)

    def _enter(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
            if self._offline is not None:
                raise DeviceOfflineError(f"{self.label}: {self._offline}")
            queued = self._faults.get(call.verb)
            if queued:
                raise queued.pop(0)

    # -- files -----------------------------------------------------------------------------------------------

    def write(self, path: str, data: bytes | str, mode: int = 0o644) -> FakeFile:
        """Put a file on the device (as the device itself would: no marker, a new mtime)."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        path = _norm(path)
        with self._lock:
            if path in self.dirs:
                raise InfraError(f"{self.label}: {path} is a directory")
            self.mkdir(posixpath.dirname(path))
            entry = self.files[path] = FakeFile(raw, mode, next(self._clock))
            return entry

    def read(self, path: str) -> bytes:
        """A file's content; :class:`InfraError` when there is none."""
        with self._lock:
            entry = self.files.get(_norm(path))
        if entry is None:
            raise InfraError(f"{self.label}: {path}: no such file")
        return entry.data

    def chmod(self, path: str, mode: int) -> None:
        path = _norm(path)
        with self._lock:
            entry = self.files.get(path)
            if entry is None:
                raise InfraError(f"{self.label}: chmod {path}: no such file")
            self.files[path] = FakeFile(entry.data, mode, entry.mtime)

    def mkdir(self, path: str) -> None:
        """Make a directory and its parents."""
        path = _norm(path)
        with self._lock:
            while path not in self.dirs:
                if path in self.files:
                    raise InfraError(f"{self.label}: mkdir {path}: a file is in the way")
                self.dirs.add(path)
                path = posixpath.dirname(path)

    def is_dir(self, path: str) -> bool:
        with self._lock:
            return _norm(path) in self.dirs

    def listdir(self, path: str) -> list[str]:
        """Names of the files and directories directly in ``path``, sorted."""
        path = _norm(path)
        with self._lock:
            names = {p for p in (*self.files, *self.dirs) if p != "/" and posixpath.dirname(p) == path}
        return sorted(posixpath.basename(p) for p in names)

    # -- commands --------------------------------------------------------------------------------------------

    def running(self) -> list[FakeProcess]:
        """Processes still running on the device (killed or finished ones are not)."""
        with self._lock:
            return [p for p in self.processes if p.running or p.state == "orphaned"]

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
        """Run ``argv`` through its handler and wait for it (rules: see the module docstring)."""
        self._enter(Call("run", tuple(argv), dict(env) if env is not None else None, workdir, timeout))
        return self._run(argv, env, workdir, timeout, cancel, on_start)

    def _run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        workdir: str | None,
        timeout: float | None,
        cancel: threading.Event | None,
        on_start: OnStart | None,
    ) -> Completed:
        refuse_empty(argv)
        prelude(env, None)  # refuses an env name that is no identifier, with the remote transports' own rule
        if cancel is not None and cancel.is_set():
            return Completed(None, "", "", 0.0, cancelled=True)
        if workdir is not None and not self.is_dir(workdir):
            return Completed(127, "", f"fake: cd: {workdir}: no such directory\n", 0.0)
        proc = FakeProcess(self, argv, env or {}, workdir, next(self._pids))
        with self._lock:
            self.processes.append(proc)
        handler = self.programs.get(posixpath.basename(argv[0]), self.handler)
        reply: list[Reply | None] = []
        failure: list[BaseException] = []

        def body() -> None:
            try:
                reply.append(handler(proc))
            except BaseException as exc:  # handed to the caller's thread below
                failure.append(exc)
            finally:
                if proc.state == "orphaned":
                    proc.state = "exited"
                proc.ended.set()

        started = time.monotonic()
        threading.Thread(target=body, name=f"fake-{proc.pid}", daemon=True).start()
        if on_start is not None:
            try:
                on_start(proc.pid)
            except Exception:
                log.exception("%s: on_start callback failed for pid %d", self.label, proc.pid)
        deadline = None if timeout is None else started + timeout
        stop: Literal["timed_out", "cancelled"] | None = None
        while not proc.ended.wait(_TICK_S):
            if self._lost(proc):
                proc.state = "orphaned"
                raise ConnectionLostError(f"{self.label}: connection lost while {argv[0]!r} ran")
            if cancel is not None and cancel.is_set():
                stop = "cancelled"
            elif deadline is not None and time.monotonic() >= deadline:
                stop = "timed_out"
            if stop is not None:
                ended = time.monotonic()
                proc.kill()
                if not proc.ended.wait(self.kill_grace_s):
                    proc.state = "orphaned"
                    raise ConnectionLostError(f"{self.label}: command did not end after kill ({stop})")
                proc.state = "killed"
                out, err = proc.output()
                return Completed(None, out, err, ended - started, stop == "timed_out", stop == "cancelled", proc.pid)
        ended = time.monotonic()
        if failure:
            proc.state = "exited"
            raise failure[0]
        if self._lost(proc):
            proc.state = "orphaned"
            raise ConnectionLostError(f"{self.label}: connection lost while {argv[0]!r} ran")
        proc.state = "killed" if proc.killed.is_set() else "exited"
        out, err = proc.output()
        answer = reply[0] if reply else None
        if answer is None:
            answer = Reply(0)
        return Completed(answer.exit_code, out + answer.stdout, err + answer.stderr, ended - started, pid=proc.pid)

    def _lost(self, proc: FakeProcess) -> bool:
        with self._lock:
            return proc.pid in self._dropped

    def check_output(self, argv: Sequence[str], *, timeout: float = CHECK_TIMEOUT_S) -> str:
        """stdout of a short command that must succeed (see :meth:`actors.transports.base.Transport.check_output`)."""
        self._enter(Call("check_output", tuple(argv), None, None, timeout))
        return checked(self._run(argv, None, None, timeout, None, None), self.label, argv, timeout)

    # -- transfers -------------------------------------------------------------------------------------------

    def push(self, src: Path, dst: str, mode: int | None = None) -> PushResult:
        """Copy a local file onto the fake device, skipping it when the marker says it is there already."""
        t0 = time.monotonic()
        src = Path(src)
        target = _norm(dst + src.name if dst.endswith("/") else dst)
        self._enter(Call("push", (str(src),), path=target, mode=mode))
        try:
            data = src.read_bytes()
            local_mode = src.stat().st_mode & 0o7777
        except OSError as exc:
            raise InfraError(f"fake push: cannot read {src}: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            current = self.files.get(target)
            marker = self.files.get(marker_path(target))
            if current is not None and marker is not None and _marker_matches(marker, current, digest):
                if mode is not None:
                    self.chmod(target, mode)
                return PushResult(target, digest, len(data), 0, time.monotonic() - t0)
            written = self.write(target, data, mode if mode is not None else local_mode)
            self.write(marker_path(target), marker_line(digest, len(data), written.mtime))
        return PushResult(target, digest, len(data), len(data), time.monotonic() - t0)

    def pull(self, src: str, dst: Path) -> None:
        """Copy a device file to the local path ``dst`` (written to a temp name, then renamed)."""
        self._enter(Call("pull", path=_norm(src)))
        data = self.read(src)
        dst = Path(dst)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".farm-tmp", dir=dst.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dst)
        except OSError as exc:
            raise InfraError(f"fake pull {src} -> {dst} failed: {exc}") from exc

    def close(self) -> None:
        """Counted in :attr:`closes`; the fake may be used again afterwards, as a real transport reconnects."""
        with self._lock:
            self.calls.append(Call("close"))
            self.closes += 1

    def calls_of(self, verb: Verb) -> Iterator[Call]:
        """The recorded calls of one verb, in order."""
        return (c for c in list(self.calls) if c.verb == verb)


def _norm(path: str) -> str:
    """The fake device has no current directory: every path is taken from ``/``."""
    return posixpath.normpath("/" + path.lstrip("/"))


def _marker_matches(marker: FakeFile, current: FakeFile, digest: str) -> bool:
    return recorded_digest(marker.data.decode(errors="replace"), len(current.data), current.mtime) == digest


__all__ = [
    "Call",
    "FakeFile",
    "FakeProcess",
    "FakeTransport",
    "Handler",
    "Reply",
    "block_until_killed",
    "not_found",
]
