"""Streams through the adb server: a server connection that never starts a server, and the shell-v2 reader.

adbutils' connection runs ``adb start-server`` when it cannot connect (on the default port: it would touch a
developer's phones); :class:`ServerConnection` does not. :class:`ShellReader` reads one ``shell,v2,raw:`` stream
to its end: stdout with the pid marker line taken out, stderr apart, and the exit status, whose absence at the end
of the stream is how a dropped link shows.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

import adbutils
from adbutils import AdbClient, AdbError

from actors.transports.remote_run import EXIT_WAIT_S, CommandStream

_V2 = struct.Struct("<BI")  # shell v2 packet header: id, length
_V2_STDOUT, _V2_STDERR, _V2_EXIT, _V2_CLOSE_STDIN = 1, 2, 3, 4
CLOSE_STDIN = _V2.pack(_V2_CLOSE_STDIN, 0)
"""The packet that gives the command EOF on its stdin."""


class ServerConnection(adbutils.AdbConnection):  # type: ignore[misc]  # adbutils ships no type hints
    """adbutils' server connection without its fallback of running ``adb start-server`` on failure."""

    def _safe_connect(self) -> socket.socket:
        sock: socket.socket = self._create_socket()
        return sock

    def close(self) -> None:
        # adbutils sleeps 10 ms after a half-close on every close; a plain close ends the stream just as well.
        with contextlib.suppress(AdbError, OSError):
            self.conn.close()


class Client(AdbClient):  # type: ignore[misc]
    def make_connection(self, timeout: float | None = None) -> ServerConnection:
        conn = ServerConnection(self.host, self.port)
        if timeout:
            conn.conn.settimeout(timeout)
        return conn


class ShellReader(threading.Thread, CommandStream):
    """Reads one shell-v2 stream to its end: stdout (marker line taken out), stderr, the exit status.

    Started as a thread it is the run loop's view of one command (:class:`~actors.transports.remote_run.Started`);
    :meth:`actors.transports.adb.AdbTransport._shell` calls :meth:`run` in its own thread instead.
    """

    def __init__(self, conn: ServerConnection, marker: bytes | None) -> None:
        threading.Thread.__init__(self, daemon=True, name="adb-shell")
        CommandStream.__init__(self, marker)
        self._conn = conn
        self._sock: socket.socket = conn.conn
        self.exit_code: int | None = None
        self.ended_at: float | None = None

    def run(self) -> None:
        buf = bytearray()
        try:
            while self.exit_code is None:
                data = self._sock.recv(1 << 16)
                if not data:
                    break
                buf += data
                while len(buf) >= _V2.size:
                    packet_id, length = _V2.unpack_from(buf)
                    if len(buf) < _V2.size + length:
                        break
                    payload = bytes(buf[_V2.size : _V2.size + length])
                    del buf[: _V2.size + length]
                    self._packet(packet_id, payload)
        except (OSError, EOFError) as exc:
            self.fault = exc
        finally:
            self.ended_at = time.monotonic()
            self.end_stdout()

    def _packet(self, packet_id: int, payload: bytes) -> None:
        if packet_id == _V2_STDOUT:
            self.take_stdout(payload)
        elif packet_id == _V2_STDERR:
            self.stderr.append(payload)
        elif packet_id == _V2_EXIT and payload:
            self.exit_code = payload[0]

    def ended(self) -> bool:
        return not self.is_alive()

    def finish(self) -> tuple[str, str, float]:
        self.join(EXIT_WAIT_S)
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return (*self.texts(), end)

    def close(self) -> None:
        self._conn.close()


__all__ = ["CLOSE_STDIN", "Client", "ServerConnection", "ShellReader"]
