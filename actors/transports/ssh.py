"""SSH transport (paramiko): commands and files on a TPU box, an Ascend server or a remote host.

One :class:`SshTransport` holds one SSH connection per device, shared by every thread that runs a command on
it (a Sophgo box runs one benchmark per TPU chip at once): SSH multiplexes channels, one per command, so
concurrent ``run`` calls need no lock beyond the one that (re)connects.

Security (:mod:`actors.transports.ssh_connect`): host keys are checked against ``known_hosts`` and never added; an
unknown or changed key, or failed authentication, is a :class:`~farm.errors.SecurityError` (not retried). Network
faults are :class:`~farm.errors.DeviceOfflineError` (cannot connect) or :class:`~farm.errors.ConnectionLostError`
(dropped while a command ran); the scheduler retries both. paramiko's exceptions become these through one table,
:data:`~actors.transports.ssh_connect.SSH_ERRORS` (see :mod:`actors.transports.errors`); an unset ``password_env``
refuses the run (:class:`~farm.errors.RunRefused`).

Remote process model (:func:`~actors.transports.remote_shell.build_command` with ``own_group``): the login shell
runs ``sh -c`` which starts the command in the background under ``setsid`` (own session and process group, pgid
== pid) and ``wait``s for it; the command's first act is to print its pid on a private marker line. The run loop
is :class:`~actors.transports.remote_run.RemoteTransport`'s; this transport supplies one channel per command and
kills on timeout/cancel through a second one (``kill -TERM -PGID``, then KILL after ``_KILL_GRACE_S``). A channel
that closes without an ``exit-status`` means the connection died, not the benchmark: the connection is dropped,
and what still runs on the box is killed after the next connect. ``push`` is content-addressed
(:mod:`actors.transports.push_marker`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import posixpath
import secrets
import shlex
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

import paramiko

from actors.host_probe import file_sha256
from actors.transports.base import CHECK_TIMEOUT_S, PushResult, checked
from actors.transports.errors import LOCAL_FILE_ERRORS, map_exceptions, mapped_type, reason
from actors.transports.push_marker import marker_line, marker_path, recorded_digest
from actors.transports.remote_run import EXIT_WAIT_S, CommandStream, RemoteTransport
from actors.transports.ssh_connect import SSH_ERRORS, connect
from farm.errors import ConnectionLostError, FarmError, InfraError
from farm.specs.inventory import SshConnection

log = logging.getLogger(__name__)

_KILL_GRACE_S = 2.0  # SIGTERM → SIGKILL delay: lets a benchmark flush its log, short enough not to stall a slot
_CHUNK = 1 << 20
# Our receive window/packet for SFTP: paramiko's 2 MiB/32 KiB defaults throttle pulls on fast links.
_SFTP_WINDOW = 16 << 20
_SFTP_PACKET = 1 << 18
# OpenSSH's sftp-server takes writes up to 256 KiB (its limits@openssh.com extension says 255 KiB); 8x fewer
# requests than paramiko's 32 KiB cut the Python work per byte. Other servers keep the portable 32 KiB.
_OPENSSH_SFTP_WRITE = 255 * 1024


def _kill_group_command(pgid: int, grace_s: float, guard: str = "") -> str:
    # `kill -SIG -PGID`, not `kill -s SIG -- -PGID`: dash's builtin kill understands neither -s nor --
    steps = max(1, round(grace_s / 0.1))
    script = guard + (
        f"kill -TERM -{pgid} 2>/dev/null || kill -TERM {pgid} 2>/dev/null || exit 0; "
        f"i=0; while kill -0 -{pgid} 2>/dev/null && [ $i -lt {steps} ]; do sleep 0.1; i=$((i+1)); done; "
        f"kill -KILL -{pgid} 2>/dev/null; exit 0"
    )
    return f"sh -c {shlex.quote(script)}"


class _StreamReader(threading.Thread):
    """Drains one channel stream until EOF so neither stream can fill its window and stall the other."""

    def __init__(self, recv: _Recv, take: Callable[[bytes], object], end: Callable[[], None]) -> None:
        super().__init__(daemon=True, name="ssh-stream")
        self._recv = recv
        self._take = take
        self._end = end
        self.fault: BaseException | None = None

    def run(self) -> None:
        try:
            while data := self._recv(_CHUNK):
                self._take(data)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.fault = exc
        finally:
            self._end()


class _Recv(Protocol):
    def __call__(self, nbytes: int, /) -> bytes: ...


class _SshCommand(CommandStream):
    """One command on its own channel, as the run loop sees it (a :class:`~actors.transports.remote_run.Started`)."""

    def __init__(self, chan: paramiko.Channel, marker: bytes) -> None:
        super().__init__(marker)
        self.chan = chan
        self.transport = chan.get_transport()
        self._out = _StreamReader(chan.recv, self.take_stdout, self.end_stdout)
        self._err = _StreamReader(chan.recv_stderr, self.stderr.append, self.wake.set)

    def start(self) -> None:
        self._out.start()
        self._err.start()

    @property
    def error(self) -> str:
        return reason(self._out.fault) if self._out.fault is not None else ""

    @property
    def exit_code(self) -> int | None:
        # paramiko sets status_event on a closed channel too, leaving exit_status -1: the link died, not the command
        if not self.chan.status_event.is_set() or self.chan.exit_status == -1:
            return None
        return int(self.chan.exit_status)

    def ended(self) -> bool:
        return bool(self.chan.status_event.is_set())

    def finish(self) -> tuple[str, str, float]:
        self._out.join(EXIT_WAIT_S)
        self._err.join(EXIT_WAIT_S)
        return (*self.texts(), time.monotonic())

    def close(self) -> None:
        self.chan.close()


class SshTransport(RemoteTransport):
    """Run commands on and move files to one SSH device over one shared, self-healing connection."""

    own_group = True

    def __init__(self, target: SshConnection, device_label: str = "") -> None:
        super().__init__()
        self.target = target
        self._label = device_label or f"{target.user}@{target.host}:{target.port}"
        self._lock = threading.Lock()  # guards _client
        self._client: paramiko.SSHClient | None = None
        self._large_sftp_writes = False  # set per connection from the server's version string

    # -- connection ------------------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self._label} ({self.target.user}@{self.target.host}:{self.target.port})"

    def _transport(self) -> paramiko.Transport:
        """The live SSH transport, connecting (or reconnecting after a drop) when needed."""
        with self._lock:
            client = self._client
            if client is not None:
                t = client.get_transport()
                if t is not None and t.is_active():
                    return t
                log.info("%s: SSH connection is gone; reconnecting", self._where)
                client.close()
                self._client = None
            client = self._connect()
            self._client = client
            t = client.get_transport()
            assert t is not None
        with contextlib.suppress(FarmError):  # best effort: a lost connection leaves its benchmark running
            self._reap_orphans()
        return t

    def _connect(self) -> paramiko.SSHClient:
        client = connect(self.target, self._where, self._label)
        transport = client.get_transport()
        assert transport is not None
        self._large_sftp_writes = transport.remote_version.startswith("SSH-2.0-OpenSSH_")
        return client

    @contextlib.contextmanager
    def _dropping(self, transport: paramiko.Transport | None) -> Iterator[None]:
        """A library fault inside the block also drops the connection, so the next call reconnects. Put it
        inside :func:`map_exceptions` (it must see the library's exception, before it is mapped)."""
        try:
            yield
        except FarmError:
            raise
        except Exception as exc:
            if transport is not None and mapped_type(SSH_ERRORS, exc) is not None:
                self._drop(transport)
            raise

    def _open_channel(self, window_size: int | None = None, max_packet_size: int | None = None) -> paramiko.Channel:
        """A new session channel; retried once on a fresh connection since nothing has been started yet."""
        for attempt in (1, 2):
            t = self._transport()
            try:
                with map_exceptions(SSH_ERRORS, f"{self._where}: cannot open an SSH channel"), self._dropping(t):
                    return t.open_session(
                        window_size=window_size,
                        max_packet_size=max_packet_size,
                        timeout=self.target.connect_timeout_s,
                    )
            except ConnectionLostError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _drop(self, transport: paramiko.Transport) -> None:
        with self._lock:
            if self._client is not None and self._client.get_transport() is transport:
                self._client.close()
                self._client = None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- commands --------------------------------------------------------------------------------------------

    def _start(self, command: str, argv: Sequence[str]) -> _SshCommand:
        chan = self._open_channel()
        cmd = _SshCommand(chan, self._marker.encode())
        try:
            with (
                map_exceptions(SSH_ERRORS, f"{self._where}: could not start {argv[0]!r}"),
                self._dropping(cmd.transport),
            ):
                chan.exec_command(command)
                chan.shutdown_write()  # the command gets EOF on stdin, as under a batch scheduler
        except BaseException:
            chan.close()
            raise
        cmd.start()
        return cmd

    def _kill(self, pid: int, guard: str = "", *, reconnect: bool = True) -> None:
        """TERM the process group, KILL it after ``_KILL_GRACE_S`` (``reconnect`` is moot: the channel is opened
        on the live connection, reconnecting if needed)."""
        command = _kill_group_command(pid, _KILL_GRACE_S, guard)
        timeout = _KILL_GRACE_S + EXIT_WAIT_S
        chan = self._open_channel()
        transport = chan.get_transport()
        try:
            with map_exceptions(SSH_ERRORS, f"{self._where}: connection lost"), self._dropping(transport):
                chan.exec_command(command)  # it prints nothing (all to /dev/null): no output to drain
                chan.shutdown_write()
                if not chan.status_event.wait(timeout) or chan.exit_status == -1:
                    raise ConnectionLostError(f"{self._where}: no exit status from the kill of pid {pid}")
        finally:
            chan.close()

    def _lost(self, cmd: object) -> None:
        """Drop the connection the command ran on: the next call reconnects (and then reaps the orphan)."""
        if isinstance(cmd, _SshCommand) and cmd.transport is not None:
            self._drop(cmd.transport)

    def check_output(self, argv: Sequence[str], *, timeout: float = CHECK_TIMEOUT_S) -> str:
        """stdout of a short command that must succeed (see :meth:`actors.transports.base.Transport.check_output`)."""
        return checked(self.run(argv, timeout=timeout), self._where, argv, timeout)

    # -- files -----------------------------------------------------------------------------------------------

    def _sftp(self) -> paramiko.SFTPClient:
        chan = self._open_channel(_SFTP_WINDOW, _SFTP_PACKET)
        try:
            with map_exceptions(SSH_ERRORS, f"{self._where}: cannot start SFTP"):
                chan.invoke_subsystem("sftp")
                return paramiko.SFTPClient(chan)
        except BaseException:
            chan.close()
            raise

    def push(self, src: Path, dst: str, mode: int | None = None) -> PushResult:
        """Upload ``src`` to ``dst`` (a directory when it ends in ``/``) atomically, skipping it when ``dst`` already
        holds the same content.

        The cache is a ``<dst>.farm-sha256`` file beside ``dst`` recording the sha256, size and mtime (SFTP
        gives whole seconds) ``dst`` had right after our upload; it is trusted only while the size and mtime
        still match, so a file changed on the box behind our back is uploaded again. The local hash is computed
        during the upload when no cached copy can match (one read of ``src``), and memoised per file version.
        """
        t0 = time.monotonic()
        if dst.endswith("/"):
            dst += src.name
        with map_exceptions(LOCAL_FILE_ERRORS, f"ssh push: cannot read {src}"):
            local = src.stat()
        sftp = self._sftp()
        with self._file_errors(f"push {src} → {dst}"):
            try:
                held = _read_marker(sftp, dst, local.st_size)
                if held is not None and held == file_sha256(src):
                    if mode is not None:
                        sftp.chmod(dst, mode)
                    return PushResult(dst, held, local.st_size, 0, time.monotonic() - t0)
                digest, sent = self._upload(sftp, src, dst, mode)
            finally:
                sftp.close()
        return PushResult(dst, digest, sent, sent, time.monotonic() - t0)

    def _upload(self, sftp: paramiko.SFTPClient, src: Path, dst: str, mode: int | None) -> tuple[str, int]:
        """Write ``src`` to a temp name beside ``dst``, chmod, rename over ``dst``, record the marker."""
        _sftp_makedirs(sftp, posixpath.dirname(dst))
        tmp = f"{dst}.farm-tmp-{secrets.token_hex(4)}"
        h = hashlib.sha256()
        sent = 0
        try:
            with src.open("rb") as fh, sftp.open(tmp, "wb") as rf:
                rf.set_pipelined(True)
                if self._large_sftp_writes:
                    rf.MAX_REQUEST_SIZE = _OPENSSH_SFTP_WRITE
                while block := fh.read(_CHUNK):
                    h.update(block)
                    rf.write(block)
                    sent += len(block)
            if mode is not None:
                sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, dst)
        except BaseException:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                sftp.remove(tmp)
            raise
        digest = h.hexdigest()
        st = sftp.stat(dst)
        with sftp.open(marker_path(dst), "w") as marker:
            marker.write(marker_line(digest, sent, st.st_mtime or 0).encode())
        return digest, sent

    def pull(self, src: str, dst: Path) -> None:
        """Download ``src`` from the device to ``dst`` (written to a temp name, then renamed)."""
        tmp = dst.with_name(f".{dst.name}.farm-tmp-{secrets.token_hex(4)}")
        with map_exceptions(LOCAL_FILE_ERRORS, f"ssh pull: cannot create {dst.parent}"):
            dst.parent.mkdir(parents=True, exist_ok=True)
        sftp = self._sftp()
        try:
            with self._file_errors(f"pull {src} → {dst}"):
                try:
                    size = sftp.stat(src).st_size or 0
                    with sftp.open(src, "rb") as rf, tmp.open("wb") as fh:
                        rf.prefetch(size, max_concurrent_requests=64)
                        _copy(rf, fh)
                finally:
                    sftp.close()
                tmp.replace(dst)
        except InfraError:
            tmp.unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def _file_errors(self, what: str) -> Iterator[None]:
        """:func:`map_exceptions` for SFTP: ConnectionLostError for a dropped link, but InfraError for a file error
        the server reports on a live link (EACCES, ENOSPC)."""
        try:
            with map_exceptions(SSH_ERRORS, f"{self._where}: {what} failed"):
                yield
        except ConnectionLostError as exc:
            cause = exc.__cause__
            with self._lock:
                t = self._client.get_transport() if self._client is not None else None
                alive = t is not None and t.is_active()
            if alive and isinstance(cause, OSError) and not isinstance(cause, TimeoutError | ConnectionError):
                raise InfraError(str(exc)) from cause
            raise


def _copy(src: IO[bytes] | paramiko.SFTPFile, dst: IO[bytes] | paramiko.SFTPFile) -> None:
    while block := src.read(_CHUNK):
        dst.write(block)


def _read_marker(sftp: paramiko.SFTPClient, dst: str, size: int) -> str | None:
    """The sha256 our last upload recorded for ``dst``, if ``dst`` is still exactly that file and ``size`` long."""
    try:
        st = sftp.stat(dst)
        with sftp.open(marker_path(dst), "r") as fh:
            text = fh.read(4096).decode("ascii", errors="replace")
    except OSError:
        return None
    if st.st_mode is None or not stat.S_ISREG(st.st_mode) or st.st_size != size:
        return None
    return recorded_digest(text, size, st.st_mtime or 0)  # None when changed on the box since we uploaded it


def _sftp_makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    if path in ("", "/", "."):
        return
    try:
        sftp.stat(path)
        return
    except FileNotFoundError:
        pass
    _sftp_makedirs(sftp, posixpath.dirname(path))
    with contextlib.suppress(OSError):  # raced with another pusher: the stat below decides
        sftp.mkdir(path)
    sftp.stat(path)


__all__ = ["SSH_ERRORS", "SshTransport"]
