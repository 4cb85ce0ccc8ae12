"""The ``sync:`` service of a virtual phone: STAT/STA2/LST2, LIST/LIS2, SEND, RECV, QUIT (AOSP ``SYNC.TXT``).

Requests are ``[id:4][length:u32le][payload]``. SEND data is written chunk by chunk straight to the phone's
backing file, so a large push never holds the whole file in memory.
"""

from __future__ import annotations

import logging
import posixpath
import stat
import struct

from farm.sim.adb_wire import AdbStream, StreamClosed
from farm.sim.filesystem import EISDIR, ENOENT, FileStat, FsError, is_virtual, normalize
from farm.sim.state import PhoneState

logger = logging.getLogger(__name__)

SYNC_DATA_MAX = 64 * 1024
_REQ = struct.Struct("<4sI")
_STAT_V1 = struct.Struct("<4sIII")
# id, error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime
_STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
_DENT_V1 = struct.Struct("<4sIIII")
_DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")
SHELL_UID = 2000


def _v2_fields(st: FileStat | None, errno_: int = 0) -> tuple[int, ...]:
    if st is None:
        return (errno_ or ENOENT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return (0, 0xFD00, st.ino, st.mode, st.nlink, SHELL_UID, SHELL_UID, st.size, st.mtime, st.mtime, st.mtime)


class SyncSession:
    """One ``sync:`` stream: a loop of requests until QUIT or the stream closes."""

    def __init__(self, state: PhoneState, stream: AdbStream) -> None:
        self.state = state
        self.stream = stream
        self.fs = state.fs

    async def serve(self) -> None:
        try:
            while True:
                req_id, length = _REQ.unpack(await self.stream.read_exactly(_REQ.size))
                if req_id == b"QUIT":
                    return
                if length > 4096 and req_id != b"DATA":
                    await self._fail(f"path too long: {length}")
                    return
                payload = (await self.stream.read_exactly(length)).decode("utf-8", errors="replace")
                if req_id == b"STAT":
                    await self._stat_v1(payload)
                elif req_id in (b"STA2", b"LST2"):
                    await self._stat_v2(payload, req_id)
                elif req_id in (b"LIST", b"LIS2"):
                    await self._list(payload, v2=req_id == b"LIS2")
                elif req_id == b"SEND":
                    if not await self._send(payload):
                        return
                elif req_id == b"RECV":
                    await self._recv(payload)
                else:
                    await self._fail(f"unknown sync request {req_id!r}")
                    return
        except StreamClosed:
            logger.debug("sync stream closed")

    async def _fail(self, message: str) -> None:
        data = message.encode()
        await self.stream.write(b"FAIL" + struct.pack("<I", len(data)) + data)

    async def _stat_v1(self, path: str) -> None:
        st = self.fs.stat(path)
        if st is None:
            # Real adbd answers a missing path with zeros, not FAIL.
            await self.stream.write(_STAT_V1.pack(b"STAT", 0, 0, 0))
        else:
            await self.stream.write(_STAT_V1.pack(b"STAT", st.mode, st.size & 0xFFFFFFFF, st.mtime))

    async def _stat_v2(self, path: str, req_id: bytes) -> None:
        # No symlinks exist on a virtual phone, so lstat (LST2) and stat (STA2) agree.
        st = self.fs.stat(path)
        await self.stream.write(_STAT_V2.pack(req_id, *_v2_fields(st)))

    async def _list(self, path: str, *, v2: bool) -> None:
        out = bytearray()
        dir_path = normalize(path)
        try:
            names = [".", "..", *self.fs.listdir(dir_path)] if self.fs.is_dir(dir_path) else []
        except FsError:
            names = []
        for name in names:
            full = (
                dir_path
                if name == "."
                else posixpath.dirname(dir_path)
                if name == ".."
                else posixpath.join(dir_path, name)
            )
            st = self.fs.stat(full)
            if st is None:
                continue
            raw = name.encode()
            if v2:
                out += _DENT_V2.pack(b"DNT2", *_v2_fields(st), len(raw)) + raw
            else:
                out += _DENT_V1.pack(b"DENT", st.mode, st.size & 0xFFFFFFFF, st.mtime, len(raw)) + raw
        # The end marker is a whole zeroed dent record.
        out += b"DONE" + bytes((_DENT_V2 if v2 else _DENT_V1).size - 4)
        await self.stream.write(bytes(out))

    async def _send(self, spec: str) -> bool:
        """Receive one file; False if the stream cannot continue (protocol error)."""
        path, _, mode_text = spec.rpartition(",")
        if not path:
            path, mode_text = spec, "33188"
        try:
            mode = int(mode_text)
        except ValueError:
            mode = stat.S_IFREG | 0o644
        error: str | None = None
        handle = None
        try:
            if path.endswith("/"):
                raise FsError(path, "Is a directory", EISDIR)
            host = self.fs.open_for_write(path, make_parents=True)
            handle = host.open("wb")
        except FsError as exc:
            error = f"couldn't create file: {exc.reason}"
        except OSError as exc:
            error = f"couldn't create file: {exc.strerror}"
        mtime = 0
        try:
            while True:
                req_id, length = _REQ.unpack(await self.stream.read_exactly(_REQ.size))
                if req_id == b"DATA":
                    if length > SYNC_DATA_MAX:
                        await self._fail(f"data chunk {length} > {SYNC_DATA_MAX}")
                        return False
                    # Write the chunk where it lies in the stream buffer: no copy of the file builds up.
                    await self.stream.read_into(length, handle.write if handle else (lambda _b: None))
                elif req_id == b"DONE":
                    mtime = length
                    break
                else:
                    await self._fail(f"unexpected {req_id!r} during SEND")
                    return False
        finally:
            if handle is not None:
                handle.close()
        if error is not None:
            await self._fail(error)
            return True
        assert handle is not None
        self.fs.chmod(path, mode & 0o7777)
        if mtime:
            self.fs.set_mtime(path, mtime)
        await self.stream.write(b"OKAY" + bytes(4))
        return True

    async def _recv(self, path: str) -> None:
        norm = normalize(path)
        try:
            if is_virtual(norm):
                data = self.fs.read_bytes(norm)
                for start in range(0, len(data), SYNC_DATA_MAX):
                    chunk = data[start : start + SYNC_DATA_MAX]
                    await self.stream.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
            else:
                host = self.fs.host_path(norm)
                if host.is_dir():
                    raise FsError(norm, "Is a directory", EISDIR)
                try:
                    f = host.open("rb")
                except (FileNotFoundError, NotADirectoryError) as exc:
                    raise FsError(norm, "No such file or directory", ENOENT) from exc
                with f:
                    # Batch several DATA records per WRTE: the stream frames at the connection's max payload.
                    while block := f.read(SYNC_DATA_MAX * 8):
                        out = bytearray()
                        for start in range(0, len(block), SYNC_DATA_MAX):
                            chunk = block[start : start + SYNC_DATA_MAX]
                            out += b"DATA" + struct.pack("<I", len(chunk)) + chunk
                        await self.stream.write(bytes(out))
        except FsError as exc:
            await self._fail(f"open failed: {exc.reason}")
            return
        await self.stream.write(b"DONE" + bytes(4))


async def sync_service(state: PhoneState, stream: AdbStream) -> None:
    await SyncSession(state, stream).serve()
