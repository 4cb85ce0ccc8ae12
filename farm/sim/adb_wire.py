"""Device side of the ADB wire protocol: message framing, CNXN/AUTH handshake, flow-controlled streams.

One :class:`AdbConnection` serves one TCP connection from an adb server. The server opens streams (``OPEN``
with a service name such as ``shell,v2:ls`` or ``sync:``); each accepted stream is handed to a service
coroutine as an :class:`AdbStream`. References: AOSP ``packages/modules/adb/protocol.txt`` and
``services.txt``.

Flow control follows the protocol: a sender keeps one ``WRTE`` in flight per stream until the peer's ``OKAY``.
On the receiving side we acknowledge a ``WRTE`` at once while little data is buffered, and only once the
service has consumed it otherwise, so a slow service pushes back on the server instead of buffering a whole
file.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_STLS = 0x534C5453

COMMAND_NAMES = {
    A_SYNC: "SYNC",
    A_CNXN: "CNXN",
    A_AUTH: "AUTH",
    A_OPEN: "OPEN",
    A_OKAY: "OKAY",
    A_CLSE: "CLSE",
    A_WRTE: "WRTE",
    A_STLS: "STLS",
}

AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3

# Versions: from A_VERSION_SKIP_CHECKSUM on, checksums are sent as 0 and ignored.
A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001
MAX_PAYLOAD = 1024 * 1024
MAX_PAYLOAD_V1 = 4 * 1024

HEADER = struct.Struct("<6I")
# Acknowledge incoming data straight away while less than this is waiting for the service.
_RECV_HIGH_WATER = 4 * MAX_PAYLOAD


class ProtocolError(Exception):
    """The peer sent something that is not valid ADB; the connection is dropped."""


class StreamClosed(BrokenPipeError):
    """The stream was closed (by the peer, by us, or with its connection); writers see a broken pipe."""


@dataclass(frozen=True)
class Message:
    """One ADB message: a 24-byte header and its payload."""

    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command, f"0x{self.command:08x}")


def checksum(data: bytes) -> int:
    """The pre-``A_VERSION_SKIP_CHECKSUM`` checksum: the byte sum, not a CRC despite the field's name."""
    return sum(data) & 0xFFFFFFFF


def pack_header(command: int, arg0: int, arg1: int, data: bytes, *, with_checksum: bool = False) -> bytes:
    crc = checksum(data) if with_checksum else 0
    return HEADER.pack(command, arg0, arg1, len(data), crc, command ^ 0xFFFFFFFF)


def encode_message(message: Message, *, with_checksum: bool = False) -> bytes:
    """Header plus payload as bytes (for tests and small messages; streams send the two parts separately)."""
    head = pack_header(message.command, message.arg0, message.arg1, message.data, with_checksum=with_checksum)
    return head + message.data


async def read_message(reader: asyncio.StreamReader, max_payload: int = MAX_PAYLOAD) -> Message:
    """Read one message; ``asyncio.IncompleteReadError`` at EOF, :class:`ProtocolError` on garbage."""
    head = await reader.readexactly(HEADER.size)
    command, arg0, arg1, length, _crc, magic = HEADER.unpack(head)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic for command 0x{command:08x}")
    if length > max_payload:
        raise ProtocolError(f"{COMMAND_NAMES.get(command, hex(command))} payload {length} > {max_payload}")
    data = await reader.readexactly(length) if length else b""
    return Message(command, arg0, arg1, data)


class AuthMode(enum.Enum):
    """How the phone answers the server's CNXN."""

    NONE = "none"  # reply CNXN at once, like an adbd with auth disabled (ro.adb.secure=0)
    ACCEPT = "accept"  # send an AUTH token and accept whatever signature comes back
    REFUSE = "refuse"  # send AUTH tokens and never accept: the server lists the phone as ``unauthorized``


ServiceHandler = Callable[["AdbStream"], Awaitable[None]]
ServiceResolver = Callable[[str], ServiceHandler | None]


class AdbStream:
    """One open stream: bytes in (with back-pressure) and bytes out (one ``WRTE`` in flight)."""

    def __init__(self, conn: AdbConnection, local_id: int, remote_id: int, service: str) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.service = service
        self._chunks: deque[memoryview] = deque()
        self._buffered = 0
        self._okay_owed = False
        self._data_ready = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.closed = asyncio.Event()
        self.remote_closed = False

    # -- called by the connection -------------------------------------------------------------------------
    def _on_write(self, data: bytes) -> None:
        if self.closed.is_set():
            return
        if data:
            self._chunks.append(memoryview(data))
            self._buffered += len(data)
            self._data_ready.set()
        if self._buffered < _RECV_HIGH_WATER:
            self.conn.send(A_OKAY, self.local_id, self.remote_id)
        else:
            self._okay_owed = True

    def _on_okay(self) -> None:
        self._can_write.set()

    def _on_remote_close(self) -> None:
        self.remote_closed = True
        self._mark_closed()

    def _mark_closed(self) -> None:
        self.closed.set()
        self._data_ready.set()
        self._can_write.set()

    # -- used by services ---------------------------------------------------------------------------------
    def _consumed(self, n: int) -> None:
        self._buffered -= n
        if self._okay_owed and self._buffered < _RECV_HIGH_WATER and not self.closed.is_set():
            self._okay_owed = False
            self.conn.send(A_OKAY, self.local_id, self.remote_id)

    async def read_some(self) -> bytes:
        """The next chunk of incoming bytes; ``b""`` once the stream is closed and drained."""
        while not self._chunks:
            if self.closed.is_set():
                return b""
            self._data_ready.clear()
            await self._data_ready.wait()
        chunk = self._chunks.popleft()
        self._consumed(len(chunk))
        return bytes(chunk)

    async def read_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; :class:`StreamClosed` if the stream ends first."""
        out = bytearray()
        while len(out) < n:
            while not self._chunks:
                if self.closed.is_set():
                    raise StreamClosed(f"stream {self.service!r} closed after {len(out)} of {n} bytes")
                self._data_ready.clear()
                await self._data_ready.wait()
            chunk = self._chunks[0]
            take = min(n - len(out), len(chunk))
            out += chunk[:take]
            if take == len(chunk):
                self._chunks.popleft()
            else:
                self._chunks[0] = chunk[take:]
            self._consumed(take)
        return bytes(out)

    async def read_into(self, n: int, sink: Callable[[memoryview], object]) -> None:
        """Pass exactly ``n`` incoming bytes to ``sink`` piece by piece, never joining them (large pushes)."""
        left = n
        while left:
            while not self._chunks:
                if self.closed.is_set():
                    raise StreamClosed(f"stream {self.service!r} closed with {left} of {n} bytes missing")
                self._data_ready.clear()
                await self._data_ready.wait()
            chunk = self._chunks[0]
            take = min(left, len(chunk))
            sink(chunk[:take])
            if take == len(chunk):
                self._chunks.popleft()
            else:
                self._chunks[0] = chunk[take:]
            left -= take
            self._consumed(take)

    async def write(self, data: bytes) -> None:
        """Send ``data`` as ``WRTE`` messages, each after the peer acknowledged the previous one."""
        view = memoryview(data)
        step = self.conn.max_payload
        for start in range(0, len(view), step):
            await self._can_write.wait()
            if self.closed.is_set():
                raise StreamClosed(f"stream {self.service!r} closed")
            self._can_write.clear()
            self.conn.send(A_WRTE, self.local_id, self.remote_id, bytes(view[start : start + step]))
            await self.conn.drain()

    async def close(self) -> None:
        """Close our side: wait for the last ``WRTE`` to be acknowledged, then send ``CLSE``."""
        if self.closed.is_set():
            return
        try:
            await asyncio.wait_for(self._can_write.wait(), timeout=5)
        except TimeoutError:
            logger.debug("stream %s: last write never acknowledged", self.service)
        if not self.closed.is_set():
            self._mark_closed()
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
            self.conn.forget(self.local_id)


@dataclass
class DeviceIdentity:
    """What the phone tells the server in its CNXN banner."""

    props: dict[str, str]
    features: tuple[str, ...]

    def banner(self) -> bytes:
        keys = ("ro.product.name", "ro.product.model", "ro.product.device")
        parts = [f"{k}={self.props.get(k, '')}" for k in keys]
        parts.append("features=" + ",".join(self.features))
        return ("device::" + ";".join(parts)).encode()


class AdbConnection:
    """One TCP connection from an adb server, served until either side closes it."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        identity: DeviceIdentity,
        resolve: ServiceResolver,
        auth: AuthMode = AuthMode.NONE,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.identity = identity
        self.resolve = resolve
        self.auth = auth
        self.hang_up = True  # whether the phone hangs up its commands when this connection ends
        self.version = A_VERSION
        self.max_payload = MAX_PAYLOAD_V1
        self.online = False
        self._streams: dict[int, AdbStream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = 1
        self._closing = False

    @property
    def with_checksum(self) -> bool:
        return self.version < A_VERSION_SKIP_CHECKSUM

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        if self._closing or self.writer.is_closing():
            return
        # Two write() calls with no await between them cannot interleave with another stream's message.
        self.writer.write(pack_header(command, arg0, arg1, data, with_checksum=self.with_checksum))
        if data:
            self.writer.write(data)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise StreamClosed(str(exc)) from exc

    def forget(self, local_id: int) -> None:
        self._streams.pop(local_id, None)

    def abort(self, *, hang_up: bool = True) -> None:
        """Drop the TCP connection without a goodbye (fault injection, phone switched off). ``hang_up=False``:
        the phone does not notice (a Wi-Fi link that went silent), so its commands run on."""
        self.hang_up = hang_up
        self._closing = True
        transport = self.writer.transport
        transport.abort()

    async def serve(self) -> None:
        peer = self.writer.get_extra_info("peername")
        logger.debug("adb connection from %s", peer)
        try:
            while True:
                msg = await read_message(self.reader)
                await self._dispatch(msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            logger.debug("adb connection from %s ended", peer)
        except ProtocolError as exc:
            logger.warning("adb connection from %s: %s", peer, exc)
        finally:
            self._closing = True
            for stream in list(self._streams.values()):
                stream._mark_closed()
            self._streams.clear()
            if self.hang_up:  # else the services' commands run on, as after a drop the phone did not notice
                for task in list(self._tasks):
                    task.cancel()
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
            self.writer.transport.abort()

    async def _dispatch(self, msg: Message) -> None:
        if msg.command == A_CNXN:
            self.version = max(A_VERSION_MIN, min(msg.arg0, A_VERSION))
            self.max_payload = max(MAX_PAYLOAD_V1, min(msg.arg1, MAX_PAYLOAD))
            if self.auth is AuthMode.NONE:
                self._send_cnxn()
            else:
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
        elif msg.command == A_AUTH:
            self._on_auth(msg)
        elif not self.online:
            logger.debug("ignoring %s before the handshake", msg.name)
        elif msg.command == A_OPEN:
            self._on_open(msg)
        elif msg.command in (A_OKAY, A_WRTE, A_CLSE):
            stream = self._streams.get(msg.arg1)
            if stream is None:
                if msg.command == A_WRTE:
                    self.send(A_CLSE, 0, msg.arg0)
                return
            if msg.command == A_OKAY:
                stream._on_okay()
            elif msg.command == A_WRTE:
                stream._on_write(msg.data)
            else:
                self._streams.pop(msg.arg1, None)
                stream._on_remote_close()
        else:
            logger.debug("ignoring %s", msg.name)
        await self.drain_quietly()

    async def drain_quietly(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            self._closing = True

    def _send_cnxn(self) -> None:
        self.online = True
        self.send(A_CNXN, self.version, self.max_payload, self.identity.banner())

    def _on_auth(self, msg: Message) -> None:
        if self.online or self.auth is AuthMode.NONE:
            return
        if msg.arg0 == AUTH_SIGNATURE:
            if self.auth is AuthMode.ACCEPT:
                self._send_cnxn()
            else:
                # A new token makes the server try its next key, then offer its public key.
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
        elif msg.arg0 == AUTH_RSAPUBLICKEY and self.auth is AuthMode.ACCEPT:
            self._send_cnxn()
        # REFUSE + public key: a real phone would now show the "Allow USB debugging?" prompt; nobody taps it.

    def _on_open(self, msg: Message) -> None:
        service = msg.data.rstrip(b"\0").decode("utf-8", errors="replace")
        handler = self.resolve(service)
        if handler is None:
            logger.debug("refusing service %r", service)
            self.send(A_CLSE, 0, msg.arg0)
            return
        local_id = self._next_id
        self._next_id += 1
        stream = AdbStream(self, local_id, msg.arg0, service)
        self._streams[local_id] = stream
        self.send(A_OKAY, local_id, msg.arg0)
        task = asyncio.get_running_loop().create_task(self._run_service(handler, stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_service(self, handler: ServiceHandler, stream: AdbStream) -> None:
        try:
            await handler(stream)
        except StreamClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("service %r failed", stream.service)
        finally:
            if not self._closing:
                await stream.close()
