"""The ``shell:``, ``shell,v2,…:`` and ``exec:`` services of a virtual phone (AOSP ``services.txt``).

Legacy shell and exec are raw byte streams (stdout and stderr merged, no exit status). Shell v2 frames every
packet as ``[id:u8][length:u32le][payload]``: 0 stdin, 1 stdout, 2 stderr, 3 exit (one byte), 4 close stdin,
5 window size change. The command line runs in a fresh ``sh`` process group; closing the stream hangs it up.
"""

from __future__ import annotations

import asyncio
import logging
import struct

from farm.sim.adb_wire import AdbStream, StreamClosed
from farm.sim.processes import Process
from farm.sim.shell_io import CommandTable, InputPipe
from farm.sim.shell_session import run_command_line
from farm.sim.state import PhoneState

logger = logging.getLogger(__name__)

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW_SIZE = range(6)
_FRAME = struct.Struct("<BI")


def frame(packet_id: int, payload: bytes) -> bytes:
    return _FRAME.pack(packet_id, len(payload)) + payload


class RawSink:
    """Legacy shell output: bytes as they are."""

    def __init__(self, stream: AdbStream) -> None:
        self.stream = stream

    async def write(self, data: bytes) -> None:
        if data:
            await self.stream.write(data)


class FramedSink:
    """Shell v2 output on one channel (stdout or stderr)."""

    def __init__(self, stream: AdbStream, packet_id: int) -> None:
        self.stream = stream
        self.packet_id = packet_id

    async def write(self, data: bytes) -> None:
        if data:
            await self.stream.write(frame(self.packet_id, data))


def parse_shell_service(service: str) -> tuple[str, bool, bool] | None:
    """``(command, v2, raw)`` for ``shell:``, ``shell,v2,raw:…`` or ``exec:``; ``None`` for anything else."""
    if service.startswith("exec:"):
        return service[5:], False, True
    if not service.startswith("shell"):
        return None
    head, sep, command = service.partition(":")
    if not sep:
        return None
    options = head.split(",")
    if options[0] != "shell":
        return None
    return command, "v2" in options[1:], "raw" in options[1:]


async def _pump_stdin_v2(stream: AdbStream, stdin: InputPipe) -> None:
    buf = bytearray()
    while True:
        data = await stream.read_some()
        if not data:
            stdin.close()
            return
        buf += data
        while len(buf) >= _FRAME.size:
            packet_id, length = _FRAME.unpack_from(buf)
            if len(buf) < _FRAME.size + length:
                break
            payload = bytes(buf[_FRAME.size : _FRAME.size + length])
            del buf[: _FRAME.size + length]
            if packet_id == ID_STDIN:
                stdin.feed(payload)
            elif packet_id == ID_CLOSE_STDIN:
                stdin.close()


async def _pump_stdin_raw(stream: AdbStream, stdin: InputPipe) -> None:
    while data := await stream.read_some():
        stdin.feed(data)
    stdin.close()


async def shell_service(state: PhoneState, table: CommandTable, stream: AdbStream, service: str) -> None:
    parsed = parse_shell_service(service)
    if parsed is None:
        return
    command, v2, _raw = parsed
    if not command.strip():
        # An interactive shell needs a pty and a prompt; the farm never asks for one.
        if v2:
            await stream.write(frame(ID_STDERR, b"farm virtual phone: interactive shell not supported\n"))
            await stream.write(frame(ID_EXIT, bytes([1])))
        return
    stdin = InputPipe()
    if v2:
        stdout, stderr = FramedSink(stream, ID_STDOUT), FramedSink(stream, ID_STDERR)
        pump = asyncio.get_running_loop().create_task(_pump_stdin_v2(stream, stdin))
    else:
        stdout = stderr = RawSink(stream)  # type: ignore[assignment]
        pump = asyncio.get_running_loop().create_task(_pump_stdin_raw(stream, stdin))
    sh: list[Process] = []

    if state.on_command is not None:
        state.on_command(command)
    run = asyncio.get_running_loop().create_task(
        run_command_line(state, table, command, stdin=stdin, stdout=stdout, stderr=stderr, on_start=sh.append)
    )
    closed = asyncio.get_running_loop().create_task(stream.closed.wait())
    try:
        await asyncio.wait({run, closed}, return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            # The host went away: hang up the whole process group, as adbd does when its socket closes — unless
            # the phone never noticed (a silent link drop): then the command runs on, as it would on a real one.
            logger.debug("shell stream closed; %s %r", "hanging up" if stream.conn.hang_up else "leaving", command)
            if sh and stream.conn.hang_up:
                state.procs.signal(-sh[0].pgid, 1)
            await asyncio.wait({run})
            return
        try:
            status = run.result()
        except StreamClosed:
            return
        if v2:
            await stream.write(frame(ID_EXIT, bytes([status & 0xFF])))
    finally:
        pump.cancel()
        closed.cancel()
        if not run.done():
            run.cancel()
