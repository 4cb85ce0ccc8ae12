"""The local transport: runs commands as subprocesses of this host and copies files on its filesystem.

Choices a caller may rely on:

* Each command runs in its own session (``start_new_session``), so its pid is also its process-group id;
  timeout and cancel kill the whole group (SIGTERM, ``kill_grace_s``, SIGKILL). When the command itself exits,
  stray processes it left in its group are killed too, so nothing from one run lingers into the next.
* ``env`` is merged over ``os.environ`` (the given keys win; an :class:`~farm.envvars.EnvPrepend` goes in front of
  the inherited value).
* ``workdir`` must exist: a missing one is a setup mistake the transport will not paper over by creating it.
  Like a missing executable it yields a :class:`Completed` with exit code 127 (126: not executable) and the
  reason on stderr, the shell's convention, so the run is recorded as failed, not retried as an infra fault.
* A command killed by a signal it did not get from us reports ``128 + signal`` (the shell's convention, what
  adb and ssh report for the same death), not Python's negative return code.
* Core binding is the caller's: it wraps ``argv`` with :func:`taskset_argv` (so does every other transport's).
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from actors.host_probe import file_sha256, group_members
from actors.transports.base import CHECK_TIMEOUT_S, Completed, OnStart, PushResult, checked, refuse_empty
from actors.transports.errors import LOCAL_FILE_ERRORS, map_exceptions
from actors.transports.push_marker import marker_line, marker_path, recorded_digest
from farm.envvars import apply_env
from farm.specs.types import parse_core_list as parse_cores  # one parser: jobs are validated with it

log = logging.getLogger(__name__)

_POLL_S = 0.02  # how often a running command checks its deadline and cancel event
_LINGER_S = 0.1  # how long pipes may stay open after the command exited before its group is killed


def taskset_argv(cores: str | Sequence[int], argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` with ``taskset <hex mask>`` so it starts bound to ``cores``.

    The hex-mask form (not ``-c list``) is the one both util-linux (hosts) and toybox (Android) accept. The
    local transport uses it too: ``taskset`` sets the affinity before ``exec``, so every thread the benchmark
    creates inherits it, whereas ``os.sched_setaffinity`` on the pid after spawn races with thread creation
    and a ``preexec_fn`` is unsafe in the multi-threaded Ray actor process. It costs one extra exec.
    """
    mask = 0
    for core in parse_cores(cores):
        mask |= 1 << core
    return ["taskset", format(mask, "x"), *argv]


def _wait_group_empty(pgid: int, proc: subprocess.Popen[bytes], grace_s: float) -> bool:
    end = time.monotonic() + grace_s
    while True:
        proc.poll()  # reap the leader so it does not count as a member
        if not group_members(pgid):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.01)


def _pidfd_open(pid: int) -> int | None:
    """A pidfd (Linux >= 5.3) becomes readable when the process exits; ``None`` where there is none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _group_alive(pgid: int) -> bool:
    """Whether any running process is left in the group; one syscall in the common case of an empty group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(group_members(pgid))  # killpg also succeeds on zombies: look closer


_env_lock = threading.Lock()
_env_cache: dict[tuple[tuple[str, str, str | None], ...], dict[bytes, bytes]] = {}
_env_seen: dict[bytes, bytes] = {}  # the process environment the cache was built from


def _environment(env: Mapping[str, str]) -> dict[bytes, bytes]:
    """This process's environment with ``env`` applied, encoded for ``Popen``. Kept per ``env`` while the process
    environment is unchanged: a device actor runs the same env many times, and copying and encoding
    ``os.environ`` per run cost more than the spawn (CPython's encoded environment is compared instead)."""
    key = tuple((k, str(v), getattr(v, "sep", None)) for k, v in env.items())
    current: dict[bytes, bytes] | None = getattr(os.environ, "_data", None)
    with _env_lock:
        if current is None or current != _env_seen:
            _env_cache.clear()
            _env_seen.clear()
            _env_seen.update(current or {})
        cached = _env_cache.get(key)
        if cached is None:
            merged = apply_env(os.environ, env)
            cached = {os.fsencode(k): os.fsencode(v) for k, v in merged.items()}
            if current is not None and len(_env_cache) < 64:
                _env_cache[key] = cached
        return cached


def _reap(proc: subprocess.Popen[bytes]) -> int | None:
    """Wait for ``proc`` (which has exited) with ``wait4``, so the kernel's peak RSS of it and of the descendants it
    reaped comes with its status (KiB); None when something else reaped it first."""
    if proc.returncode is not None:
        return None
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        proc.wait()
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class LocalTransport:
    """Runs commands on, and copies files within, the host this code runs on."""

    def __init__(self, kill_grace_s: float = 2.0) -> None:
        self.kill_grace_s = kill_grace_s

    # --- run ---

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
        """Run ``argv`` and wait for it (timeout, cancel, spawn-failure rules: see the module docstring)."""
        refuse_empty(argv)
        args = list(argv)
        full_env = _environment(env) if env else None
        if workdir is not None and not Path(workdir).is_dir():
            return Completed(127, "", f"farm: workdir does not exist: {workdir}\n", 0.0)
        if cancel is not None and cancel.is_set():
            return Completed(None, "", "", 0.0, cancelled=True)

        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                cwd=workdir,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            elapsed = time.monotonic() - started
            return Completed(127, "", f"farm: {args[0]}: command not found ({exc})\n", elapsed)
        except PermissionError as exc:
            elapsed = time.monotonic() - started
            return Completed(126, "", f"farm: {args[0]}: cannot execute ({exc})\n", elapsed)
        pgid = proc.pid  # start_new_session makes the child a group leader

        poll = None
        if on_start is not None:
            try:
                poll = on_start(proc.pid)
            except Exception:
                # A failing sampler must not take the benchmark down with it; its missing sample shows as nan.
                log.exception("on_start callback failed for pid %d", proc.pid)

        deadline = None if timeout is None else started + timeout
        out, err, outcome, ended, peak_kib = self._wait(proc, deadline, cancel, poll)
        duration = ended - started
        if outcome == "exited" and _group_alive(pgid):
            # Members that closed their stdout/stderr (daemons) outlive the leader unnoticed until here.
            log.info("pid %d exited leaving processes in its group; killing them", proc.pid)
            self._kill_group(pgid, proc)
        killed = outcome in ("timeout", "cancelled")
        return Completed(
            exit_code=None if killed else _exit_code(proc.wait()),
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            duration_s=duration,
            timed_out=outcome == "timeout",
            cancelled=outcome == "cancelled",
            pid=proc.pid,
            reaped_peak_kib=peak_kib,
        )

    def check_output(self, argv: Sequence[str], *, timeout: float = CHECK_TIMEOUT_S) -> str:
        """stdout of a short command that must succeed (see :meth:`actors.transports.base.Transport.check_output`)."""
        return checked(self.run(argv, timeout=timeout), "local host", argv, timeout)

    def _wait(
        self,
        proc: subprocess.Popen[bytes],
        deadline: float | None,
        cancel: threading.Event | None,
        poll: Callable[[], None] | None = None,
    ) -> tuple[bytes, bytes, str, float, int | None]:
        """Drain stdout/stderr until the command ends.

        Returns both outputs, the outcome (``exited``, ``timeout`` or ``cancelled``), the monotonic time
        the command ended (its exit, or the moment we started killing it) and its peak RSS as reaped (KiB).

        One selector watches both pipes and a pidfd of the process, so the loop wakes the moment output
        arrives or the process exits (no sleeps, hence little overhead over a bare subprocess), and at least
        every ``_POLL_S`` to look at the deadline and the cancel event, and to call ``poll`` (the ``on_start``
        callback's sampler) while the command runs.
        """
        assert proc.stdout is not None and proc.stderr is not None
        chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
        sel = selectors.DefaultSelector()
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        pidfd = _pidfd_open(proc.pid)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ)
        open_pipes = len(chunks)
        exited_at: float | None = None
        outcome = "exited"
        drain_until: float | None = None  # after a kill, stop waiting for pipes held outside the group
        ended = time.monotonic()
        peak_kib: int | None = None
        try:
            while open_pipes or exited_at is None:
                now = time.monotonic()
                if drain_until is None:
                    if cancel is not None and cancel.is_set():
                        outcome = "cancelled"
                    elif deadline is not None and now >= deadline:
                        outcome = "timeout"
                    lingering = exited_at is not None and now - exited_at > _LINGER_S
                    if outcome != "exited" or lingering:
                        if lingering:
                            # The command exited but something it started still holds stdout/stderr open.
                            log.info("pid %d exited but its pipes stay open; killing its group", proc.pid)
                        if outcome != "exited":
                            ended = now
                        self._kill_group(proc.pid, proc)
                        drain_until = time.monotonic() + _LINGER_S
                        continue
                elif now >= drain_until:
                    break  # only processes that left the group still hold the pipes
                wait_s = _POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - now))
                if drain_until is not None:
                    wait_s = max(0.0, drain_until - now)
                for key, _ in sel.select(wait_s):
                    if key.fd == pidfd:
                        sel.unregister(pidfd)
                        peak_kib = _reap(proc)
                        exited_at = time.monotonic()
                        ended = exited_at if drain_until is None else ended
                        continue
                    data = os.read(key.fd, 65536)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        sel.unregister(key.fd)
                        open_pipes -= 1
                if poll is not None and exited_at is None:
                    try:
                        poll()
                    except Exception:
                        log.exception("sampler poll failed for pid %d; not polled again", proc.pid)
                        poll = None
                if pidfd is None and exited_at is None and proc.poll() is not None:
                    exited_at = time.monotonic()
                    ended = exited_at if drain_until is None else ended
        finally:
            sel.close()
            if pidfd is not None:
                os.close(pidfd)
            proc.stdout.close()
            proc.stderr.close()
        out, err = (b"".join(c) for c in chunks.values())
        return out, err, outcome, ended, peak_kib

    def _kill_group(self, pgid: int, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the group, give it ``kill_grace_s``, then SIGKILL whatever is left; reap the leader."""
        for sig, grace in ((signal.SIGTERM, self.kill_grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                proc.poll()
                return
            if _wait_group_empty(pgid, proc, grace):
                return
        log.warning("process group %d still has members after SIGKILL: %s", pgid, group_members(pgid))

    # --- files ---

    def push(self, src: Path, dst: str, mode: int | None = None) -> PushResult:
        """Copy ``src`` to ``dst`` (a directory when it ends in ``/``) atomically, skipping identical content.

        The ``<dst>.farm-sha256`` marker (:mod:`actors.transports.push_marker`) records the hash, size and mtime of
        what was written, so the check does not rehash ``dst``; a later change to ``dst`` changes its size or mtime
        and invalidates the marker.
        """
        started = time.monotonic()
        src = Path(src)
        target = Path(dst) / src.name if dst.endswith("/") else Path(dst)
        with map_exceptions(LOCAL_FILE_ERRORS, f"local push: cannot read {src}"):
            digest = file_sha256(src)
            size = src.stat().st_size
        marker = Path(marker_path(str(target)))
        if target.is_file() and _marker_matches(marker, target, digest):
            if mode is not None:
                os.chmod(target, mode)
            return PushResult(str(target), digest, size, 0, time.monotonic() - started)
        with map_exceptions(LOCAL_FILE_ERRORS, f"local push {src} -> {target} failed"):
            target.parent.mkdir(parents=True, exist_ok=True)
            _atomic_copy(src, target, mode)
            st = target.stat()
            marker.write_text(marker_line(digest, st.st_size, st.st_mtime))
        return PushResult(str(target), digest, size, size, time.monotonic() - started)

    def pull(self, src: str, dst: Path) -> None:
        """Copy ``src`` to the local path ``dst`` atomically."""
        dst = Path(dst)
        with map_exceptions(LOCAL_FILE_ERRORS, f"local pull {src} -> {dst} failed"):
            dst.parent.mkdir(parents=True, exist_ok=True)
            _atomic_copy(Path(src), dst, None)

    def close(self) -> None:
        """Nothing to release: the local transport holds no connection."""


def _marker_matches(marker: Path, target: Path, digest: str) -> bool:
    try:
        recorded = marker.read_text()
    except FileNotFoundError:
        return False
    st = target.stat()
    return recorded_digest(recorded, st.st_size, st.st_mtime) == digest


def _atomic_copy(src: Path, dst: Path, mode: int | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".farm-tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        if mode is None:
            shutil.copymode(src, tmp)
        else:
            os.chmod(tmp, mode)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
