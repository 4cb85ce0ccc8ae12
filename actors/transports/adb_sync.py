"""adb's sync protocol, as much of it as Farm uses: ``SEND`` a file in 64 KiB ``DATA`` records, ``RECV`` one.

Our own framing rather than adbutils' ``sync.push``, which writes 4 KiB records and reaches about half the speed
of ``adb push``; several records go out per socket write (fewer syscalls and Python iterations per byte). The
caller opens the ``sync:`` stream on the phone and maps socket faults (:data:`actors.transports.adb.ADB_ERRORS`).
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from farm.errors import ConnectionLostError, InfraError

_SYNC_CHUNK = 64 * 1024  # the largest DATA record adbd accepts (SYNC_DATA_MAX)
_RECORDS_PER_WRITE = 16
_SYNC = struct.Struct("<4sI")


def send_file(sock: socket.socket, src: Path, spec: bytes, mtime: int, what: str) -> None:
    """sync ``SEND`` of ``src`` (``spec`` is ``"<path>,<mode>"``), ``DONE`` with ``mtime``, then ``QUIT``.

    A ``FAIL`` answer is an :class:`~farm.errors.InfraError` (the phone refused the file), anything else
    unexpected a :class:`~farm.errors.ConnectionLostError`; ``what`` names the push in their messages.
    """
    record = _SYNC.size + _SYNC_CHUNK
    buf = bytearray(record * _RECORDS_PER_WRITE)
    view = memoryview(buf)
    try:
        sock.sendall(_SYNC.pack(b"SEND", len(spec)) + spec)
        with src.open("rb") as fh:
            eof = False
            while not eof:
                # Several DATA records per write: fewer syscalls and Python iterations per byte.
                used = 0
                while used < len(buf):
                    n = fh.readinto(view[used + _SYNC.size : used + record])
                    if n:
                        _SYNC.pack_into(buf, used, b"DATA", n)
                        used += _SYNC.size + n
                    if n < _SYNC_CHUNK:
                        eof = True
                        break
                if used:
                    sock.sendall(view[:used])
        sock.sendall(_SYNC.pack(b"DONE", mtime))
        reply, length = _SYNC.unpack(_recv_exact(sock, _SYNC.size))
        if reply == b"FAIL":
            message = _recv_exact(sock, length).decode(errors="replace")
            raise InfraError(f"{what} refused by the phone: {message}")
        if reply != b"OKAY":
            raise ConnectionLostError(f"{what}: unexpected sync reply {reply!r}")
        sock.sendall(_SYNC.pack(b"QUIT", 0))
    finally:
        view.release()


def receive_file(sock: socket.socket, path: bytes, tmp: Path, what: str) -> None:
    """sync ``RECV`` of the phone's ``path`` into the local file ``tmp``, then ``QUIT`` (errors: :func:`send_file`)."""
    sock.sendall(_SYNC.pack(b"RECV", len(path)) + path)
    with tmp.open("wb") as fh:
        while True:
            kind, length = _SYNC.unpack(_recv_exact(sock, _SYNC.size))
            if kind == b"DATA":
                fh.write(_recv_exact(sock, length))
            elif kind == b"DONE":
                break
            elif kind == b"FAIL":
                message = _recv_exact(sock, length).decode(errors="replace")
                raise InfraError(f"{what}: {message}")
            else:
                raise ConnectionLostError(f"{what}: unexpected sync record {kind!r}")
    sock.sendall(_SYNC.pack(b"QUIT", 0))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < n:
        data = sock.recv(n - got)
        if not data:
            raise EOFError(f"stream closed after {got} of {n} bytes")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


__all__ = ["receive_file", "send_file"]
