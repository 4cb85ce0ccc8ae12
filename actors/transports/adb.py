"""ADB transport (adbutils + our own shell-v2 and sync framing): commands and files on one Android phone.

The streams through the server and the shell-v2 reader are :mod:`actors.transports.adb_streams`, the file transfer
framing :mod:`actors.transports.adb_sync`; this module holds the transport and the phone's reconnects.

One :class:`AdbTransport` per phone. It talks to the adb server named in the inventory (``server_host``,
``server_port``); every command or transfer opens its own stream through the server, so a benchmark, its
sampler and a health probe run side by side without locking.

Choices a caller may rely on:

* Commands run through **shell v2** (``shell,v2,raw:``): real exit codes and stderr apart from stdout. A stream
  that ends without the exit frame, an ``EOFError`` or an adbutils ``AdbError`` mid-command is a
  :class:`~farm.errors.ConnectionLostError`, never a result: with the legacy shell a dropped phone looks like a
  benchmark that printed less. adbutils' and the socket's exceptions become Farm's through one table,
  :data:`ADB_ERRORS` (see :mod:`actors.transports.errors`).
* The command line (:func:`~actors.transports.remote_shell.build_command`) is POSIX ``sh`` with every argument and
  env value quoted; it ``cd``s to ``workdir`` (exit 127 when that fails), prints its pid on a private marker line
  (stripped from stdout) and ``exec``s the benchmark, so the pid ``on_start`` gets is the benchmark's own.
* The run loop, timeout, cancel and the benchmarks a lost link left running are
  :class:`~actors.transports.remote_run.RemoteTransport`'s; this transport kills through a second shell with
  ``kill -9 -PID`` (its process group when adbd made it a group leader) or else ``kill -9 PID``, and reaps what a
  lost link left running as soon as the phone answers again (the next stream opened or health check).
* Phones attached over TCP (``adb connect host:port``) are reconnected when the server reports them offline or
  gone: ``disconnect`` then ``connect`` (after a refused reconnect adb 29 keeps a stale entry for ~10 s and a
  bare ``connect`` only answers "already connected"). At most one attempt per ``reconnect_interval_s``.
* ``push`` is content-addressed (:mod:`actors.transports.push_marker`): an unchanged artifact costs one shell
  round trip and no bytes. Files are sent with our own sync ``SEND`` in 64 KiB ``DATA`` records (adbutils'
  ``sync.push`` writes 4 KiB ones and reaches about half of ``adb push``), to a temp name renamed over ``dst``.
* The adb server is never started implicitly (adbutils would start one on the default port, i.e. touch a
  developer's phones): a missing server is a :class:`~farm.errors.DeviceOfflineError` saying how to start it.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import secrets
import shlex
import socket
import stat
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from adbutils import AdbError

from actors.host_probe import file_sha256
from actors.transports.adb_streams import CLOSE_STDIN, Client, ServerConnection, ShellReader
from actors.transports.adb_sync import receive_file, send_file
from actors.transports.base import CHECK_TIMEOUT_S, Completed, PushResult, checked, refuse_empty
from actors.transports.errors import LOCAL_FILE_ERRORS, ErrorTable, map_exceptions, reason
from actors.transports.push_marker import marker_line, marker_path, recorded_digest
from actors.transports.remote_run import EXIT_WAIT_S, RemoteTransport
from farm.errors import ConnectionLostError, DeviceOfflineError, InfraError
from farm.specs.inventory import AdbConnection

log = logging.getLogger(__name__)

_SELF_HEAL_S = 1.0  # how long an offline TCP phone is given to come back by itself before we reconnect it
# adb server answers that mean "the phone is not (yet) there": worth a reconnect for TCP phones
_GONE = ("offline", "not found", "no devices", "connecting")
_UNAUTHORIZED = ("unauthorized", "authorizing")

# adbutils, and the socket and stream under it, → Farm: a fault while talking to the server or the phone is the link's
# (a block that runs before the phone was reached passes offline=True: DeviceOfflineError). See transports/errors.py.
ADB_ERRORS: ErrorTable = {AdbError: ConnectionLostError, OSError: ConnectionLostError, EOFError: ConnectionLostError}


def kill_command(pid: int) -> str:
    # mksh and the virtual phone both read "-N" after the signal as a process group; "--" is not portable.
    return f"kill -9 -{pid} 2>/dev/null || kill -9 {pid} 2>/dev/null; exit 0"


class AdbTransport(RemoteTransport):
    """Run commands on and move files to one phone through an adb server (thread-safe)."""

    def __init__(
        self,
        adb: AdbConnection,
        device_label: str = "",
        *,
        reconnect_interval_s: float = 2.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.adb = adb
        self.label = device_label or adb.serial
        self.reconnect_interval_s = reconnect_interval_s
        self.connect_timeout_s = connect_timeout_s
        self._client = Client(adb.server_host, adb.server_port)
        self._reconnect_lock = threading.Lock()
        self._last_reconnect = -float("inf")
        self.reconnects = 0  # successful reconnects (what tests and logs look at)
        super().__init__()

    @property
    def _where(self) -> str:
        a = self.adb
        return f"{self.label} ({a.serial} via adb server {a.server_host}:{a.server_port})"

    # -- server and device state -----------------------------------------------------------------------------

    def _server(self, timeout: float | None) -> ServerConnection:
        a = self.adb
        with map_exceptions(ADB_ERRORS, f"{self._where}: {_no_server(a.server_host, a.server_port)}", offline=True):
            return self._client.make_connection(timeout=timeout)

    def state(self, *, reconnect: bool = True) -> str:
        """The server's state for this phone: ``device``, ``offline``, ``unauthorized``, … or ``absent``.

        With ``reconnect`` a TCP phone that is offline or absent gets one reconnect attempt first (rate-limited).
        """
        current = self._server_state()
        if reconnect and current not in ("device", "unauthorized") and self.adb.is_tcp:
            current = self.reconnect()
        if current == "device":
            self._reap_orphans()
        return current

    def _server_state(self) -> str:
        with (
            map_exceptions(ADB_ERRORS, f"{self._where}: cannot list devices", offline=True),
            self._server(self.connect_timeout_s) as conn,
        ):
            conn.send_command("host:devices")
            conn.check_okay()
            listing: str = conn.read_string_block()
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == self.adb.serial:
                return parts[1]
        return "absent"

    def reconnect(self) -> str:
        """``adb disconnect`` + ``adb connect`` this TCP phone and wait briefly for it; returns the new state."""
        if not self.adb.is_tcp:
            return self._server_state()
        with self._reconnect_lock:
            if time.monotonic() - self._last_reconnect < self.reconnect_interval_s:
                return self._server_state()
            self._last_reconnect = time.monotonic()
            # A phone that dropped but still listens is brought back by the server itself within ~1 s;
            # disconnecting it in the middle of that races with the server's own reconnect.
            current = self._wait_state(_SELF_HEAL_S, until=("device", "unauthorized", "absent"))
            if current in ("device", "unauthorized"):
                return current
            for _ in range(3):
                try:
                    answer = self._disconnect_connect()
                except InfraError as exc:
                    log.info("%s: reconnect failed: %s", self._where, exc)
                    return "absent"
                # A dead port is an answer ("failed to connect to ..."), not an exception. "already connected"
                # right after our disconnect means the server's own reconnect was in flight: go round again.
                log.info("%s: adb connect: %s", self._where, answer.strip())
                if not answer.startswith("already"):
                    break
                time.sleep(0.1)
            current = self._wait_state(5.0, until=("device", "unauthorized", "absent"))
            if current == "device":
                self.reconnects += 1
            return current

    def _disconnect_connect(self) -> str:
        serial = self.adb.serial
        with map_exceptions(ADB_ERRORS, f"{self._where}: adb connect", offline=True):
            with self._server(self.connect_timeout_s) as conn:
                conn.send_command(f"host:disconnect:{serial}")
                with contextlib.suppress(AdbError):  # "no such device": nothing to forget
                    conn.check_okay()
            with self._server(self.connect_timeout_s) as conn:
                conn.send_command(f"host:connect:{serial}")
                conn.check_okay()
                answer: str = conn.read_string_block()
        return answer

    def _wait_state(self, seconds: float, until: tuple[str, ...]) -> str:
        deadline = time.monotonic() + seconds
        current = self._server_state()
        while current not in until and time.monotonic() < deadline:
            time.sleep(0.05)
            current = self._server_state()
        return current

    # -- streams ---------------------------------------------------------------------------------------------

    def _open(self, service: str, timeout: float | None, *, reconnect: bool = True) -> ServerConnection:
        """A stream to ``service`` on the phone; reconnects a TCP phone once when the server lost it."""
        for attempt in (1, 2):
            conn = self._server(timeout)
            try:
                with map_exceptions(ADB_ERRORS, self._where, offline=True):
                    conn.send_command(f"host:transport:{self.adb.serial}")
                    conn.check_okay()
            except DeviceOfflineError as exc:
                conn.close()
                why = reason(exc.__cause__) if exc.__cause__ is not None else str(exc)
                if any(word in why for word in _UNAUTHORIZED):
                    raise DeviceOfflineError(
                        f"{self._where}: unauthorized — accept this computer's RSA key on the phone"
                    ) from exc.__cause__
                gone = any(word in why for word in _GONE)
                if attempt == 1 and gone and reconnect and self.adb.is_tcp and self.reconnect() == "device":
                    continue
                raise
            try:
                with map_exceptions(ADB_ERRORS, f"{self._where}: cannot open {service[:40]!r}"):
                    conn.send_command(service)
                    conn.check_okay()
            except BaseException:
                conn.close()
                raise
            self._reap_orphans()  # the phone answers again: first stop what a lost link left running
            return conn
        raise AssertionError("unreachable")

    # -- commands --------------------------------------------------------------------------------------------

    def _shell(self, line: str, timeout: float = CHECK_TIMEOUT_S, *, reconnect: bool = True) -> Completed:
        """Run one raw shell line (no quoting added) and wait for its exit status: the transport's own housekeeping.

        ``reconnect=False`` fails at once when the phone is gone (samplers must not stall a finished run).
        """
        t0 = time.monotonic()
        conn = self._open(f"shell,v2,raw:{line}", timeout, reconnect=reconnect)
        reader = ShellReader(conn, None)
        try:
            with map_exceptions(ADB_ERRORS, f"{self._where}: shell failed"):
                conn.conn.sendall(CLOSE_STDIN)
                reader.run()  # in this thread: the socket timeout bounds it
        finally:
            conn.close()
        if reader.exit_code is None:
            raise ConnectionLostError(
                f"{self._where}: no exit status from {line[:60]!r} ({reader.error or 'stream closed'})"
            )
        return Completed(reader.exit_code, *reader.texts(), time.monotonic() - t0)

    def check_output(self, argv: Sequence[str], *, timeout: float = CHECK_TIMEOUT_S, reconnect: bool = True) -> str:
        """stdout of a short command that must succeed (see :meth:`actors.transports.base.Transport.check_output`).

        ``reconnect=False`` fails at once when the phone is gone (samplers must not stall a finished run).
        """
        refuse_empty(argv)
        return checked(self._shell(shlex.join(argv), timeout, reconnect=reconnect), self._where, argv, timeout)

    def _start(self, command: str, argv: Sequence[str]) -> ShellReader:
        conn = self._open(f"shell,v2,raw:{command}", self.connect_timeout_s)
        try:
            with map_exceptions(ADB_ERRORS, f"{self._where}: could not start {argv[0]!r}"):
                conn.conn.settimeout(None)  # the reader blocks; timeout and cancel are watched by the run loop
                conn.conn.sendall(CLOSE_STDIN)  # the benchmark sees EOF on stdin
        except BaseException:
            conn.close()
            raise
        reader = ShellReader(conn, self._marker.encode())
        reader.start()
        return reader

    def _kill(self, pid: int, guard: str = "", *, reconnect: bool = True) -> None:
        self._shell(guard + kill_command(pid), timeout=EXIT_WAIT_S, reconnect=reconnect)

    def _lost(self, cmd: object) -> None:
        """Nothing to drop: every command has its own stream through the server."""

    # -- files -----------------------------------------------------------------------------------------------

    def push(self, src: Path, dst: str, mode: int | None = None) -> PushResult:
        """Copy ``src`` to ``dst`` (a directory when it ends in ``/``) unless the phone already holds it."""
        t0 = time.monotonic()
        src = Path(src)
        if dst.endswith("/"):
            dst = dst + src.name
        with map_exceptions(LOCAL_FILE_ERRORS, f"adb push: cannot read {src}"):
            local = src.stat()
        file_mode = mode if mode is not None else stat.S_IMODE(local.st_mode)
        q_dst, q_marker = shlex.quote(dst), shlex.quote(marker_path(dst))
        # One round trip: make the parent, apply the mode (harmless if we upload next), read marker and stat.
        check = (
            f"mkdir -p {shlex.quote(posixpath.dirname(dst) or '/')} 2>/dev/null; "
            f"chmod {file_mode:o} {q_dst} 2>/dev/null; cat {q_marker} 2>/dev/null; echo; echo @@; "
            f"stat -c '%s %Y' {q_dst} 2>/dev/null"
        )
        out = self._shell(check).stdout
        recorded, _, current = out.partition("@@")
        now, held = current.split(), None
        if len(now) == 2 and now[0] == str(local.st_size) and now[1].isdigit():
            held = recorded_digest(recorded, local.st_size, int(now[1]))
        # file_sha256 is cached per file version: free for an artifact the actor already hashed
        if held is not None and held == file_sha256(src):
            return PushResult(dst, held, local.st_size, 0, time.monotonic() - t0)
        # Hash while sending: both release the GIL, so a cold artifact costs max(hash, transfer), not the sum.
        with ThreadPoolExecutor(1, thread_name_prefix="adb-hash") as pool:
            hashing: Future[str] = pool.submit(file_sha256, src)
            tmp = f"{dst}.farm-tmp-{secrets.token_hex(4)}"
            mtime = int(time.time())
            try:
                self._send_file(src, tmp, file_mode, mtime)
            except BaseException:
                with contextlib.suppress(InfraError):
                    self._shell(f"rm -f {shlex.quote(tmp)}")
                raise
            digest = hashing.result()
        size = local.st_size
        # adbd sets the mtime DONE carries, and a rename keeps it: the marker can be written in the same trip.
        done = self._shell(
            f"mv -f {shlex.quote(tmp)} {q_dst} && echo {_line(digest, size, mtime)} > {q_marker} && "
            f"stat -c '%s %Y' {q_dst}"
        )
        if done.exit_code != 0:
            raise InfraError(f"{self._where}: push {src} → {dst}: {done.stderr.strip()[-300:]}")
        got = done.stdout.split()
        if got != [str(size), str(mtime)] and len(got) == 2 and "".join(got).isdigit():  # mtime not kept
            self._shell(f"echo {_line(digest, int(got[0]), int(got[1]))} > {q_marker}")
        return PushResult(dst, digest, size, size, time.monotonic() - t0)

    def _send_file(self, src: Path, dst: str, mode: int, mtime: int) -> None:
        """sync SEND of ``src`` to ``dst`` with 64 KiB DATA records; FAIL from the phone is an InfraError."""
        conn = self._open("sync:", self.connect_timeout_s)
        sock: socket.socket = conn.conn
        spec = f"{dst},{stat.S_IFREG | mode}".encode()
        try:
            with map_exceptions(ADB_ERRORS, f"{self._where}: push to {dst} failed"):
                send_file(sock, src, spec, mtime, f"{self._where}: push to {dst}")
        finally:
            conn.close()

    def pull(self, src: str, dst: Path) -> None:
        """Copy ``src`` from the phone to ``dst`` (written to a temp name, then renamed)."""
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.farm-tmp-{secrets.token_hex(4)}")
        conn = self._open("sync:", self.connect_timeout_s)
        sock: socket.socket = conn.conn
        path = src.encode()
        try:
            with map_exceptions(ADB_ERRORS, f"{self._where}: pull {src} failed"):
                receive_file(sock, path, tmp, f"{self._where}: pull {src}")
                tmp.replace(dst)
        finally:
            tmp.unlink(missing_ok=True)
            conn.close()

    def close(self) -> None:
        """Nothing to release: every operation opens (and closes) its own stream through the adb server."""


def _line(digest: str, size: int, mtime: int) -> str:
    """The marker's line, quoted for ``echo``."""
    return shlex.quote(marker_line(digest, size, mtime).rstrip("\n"))


def adb_devices(server_host: str = "127.0.0.1", server_port: int = 5037) -> list[dict[str, Any]]:
    """``adb devices -l`` of one adb server: ``[{serial, state, product, model, device, transport_id}]``."""
    client = Client(server_host, server_port)
    with map_exceptions(ADB_ERRORS, _no_server(server_host, server_port), offline=True):
        infos = client.list(extended=True)
    return [{"serial": i.serial, "state": i.state, **i.tags} for i in infos]


def _no_server(host: str, port: int) -> str:
    return (
        f"no adb server answers on {host}:{port} (start one on the node the phone is attached to: "
        f"adb -P {port} start-server)"
    )


__all__ = ["AdbTransport", "adb_devices", "kill_command"]
