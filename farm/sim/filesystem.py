"""The filesystem of a virtual phone: device paths in a private temp dir, plus computed ``/proc``, ``/sys``.

Device paths are normalised (``..`` cannot climb above ``/``) and mapped under the phone's own root directory,
so no command or sync request can reach the host's real files. ``/proc`` and ``/sys`` are not on disk: a
lookup callable supplied by the phone computes them (process status, thermal zones, cpufreq) at read time.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VIRTUAL_ROOTS = ("/proc", "/sys")
VirtualNode = bytes | list[str] | None
"""A computed node: file contents, the names in a directory, or ``None`` when it does not exist."""
VirtualLookup = Callable[[str], VirtualNode]

INITIAL_DIRS = (
    "/data/local/tmp",
    "/sdcard",
    "/system/bin",
    "/vendor",
    "/dev",
    "/tmp",  # noqa: S108 - a path on the virtual phone, mapped under its private root
)


@dataclass(frozen=True)
class FileStat:
    mode: int  # st_mode including the type bits
    size: int
    mtime: int
    ino: int
    nlink: int = 1

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


class FsError(Exception):
    """A failed filesystem operation; ``reason`` is toybox-style text, e.g. ``No such file or directory``."""

    def __init__(self, path: str, reason: str, errno_: int) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.errno = errno_


ENOENT, EACCES, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EROFS = 2, 13, 17, 20, 21, 39, 30


def normalize(path: str, cwd: str = "/") -> str:
    """Absolute, normalised device path; ``..`` at the root stays at the root."""
    joined = posixpath.join(cwd, path) if not path.startswith("/") else path
    norm = posixpath.normpath("/" + joined.lstrip("/"))
    return "/" if norm in ("/", "//") else norm


def is_virtual(path: str) -> bool:
    return any(path == root or path.startswith(root + "/") for root in VIRTUAL_ROOTS)


class VirtualFS:
    """Device-side files of one phone."""

    def __init__(self, lookup: VirtualLookup, root: Path | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="farm-vphone-")) if root is None else root
        self.lookup = lookup
        for d in INITIAL_DIRS:
            self.host_path(d).mkdir(parents=True, exist_ok=True)
        self.host_path("/dev/null").touch()

    def cleanup(self) -> None:
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def host_path(self, device_path: str) -> Path:
        norm = normalize(device_path)
        return self.root.joinpath(*[p for p in norm.split("/") if p])

    # -- queries ------------------------------------------------------------------------------------------
    def stat(self, path: str) -> FileStat | None:
        path = normalize(path)
        if is_virtual(path):
            node = self.lookup(path)
            if node is None:
                return None
            ino = hash(path) & 0xFFFFFFF
            if isinstance(node, list):
                return FileStat(stat.S_IFDIR | 0o555, 0, int(time.time()), ino, 2)
            return FileStat(stat.S_IFREG | 0o444, len(node), int(time.time()), ino)
        try:
            st = os.stat(self.host_path(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return FileStat(st.st_mode, st.st_size, int(st.st_mtime), st.st_ino & 0xFFFFFFFF, st.st_nlink)

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def is_dir(self, path: str) -> bool:
        st = self.stat(path)
        return st is not None and st.is_dir

    def listdir(self, path: str) -> list[str]:
        path = normalize(path)
        names: list[str]
        if is_virtual(path):
            node = self.lookup(path)
            if node is None:
                raise FsError(path, "No such file or directory", ENOENT)
            if not isinstance(node, list):
                raise FsError(path, "Not a directory", ENOTDIR)
            names = list(node)
        else:
            host = self.host_path(path)
            if not host.exists():
                raise FsError(path, "No such file or directory", ENOENT)
            if not host.is_dir():
                raise FsError(path, "Not a directory", ENOTDIR)
            names = os.listdir(host)
            if path == "/":
                names += [r.lstrip("/") for r in VIRTUAL_ROOTS]
        return sorted(names)

    def read_bytes(self, path: str) -> bytes:
        path = normalize(path)
        if is_virtual(path):
            node = self.lookup(path)
            if node is None:
                raise FsError(path, "No such file or directory", ENOENT)
            if isinstance(node, list):
                raise FsError(path, "Is a directory", EISDIR)
            return node
        host = self.host_path(path)
        if host.is_dir():
            raise FsError(path, "Is a directory", EISDIR)
        try:
            return host.read_bytes()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise FsError(path, "No such file or directory", ENOENT) from exc

    # -- changes ------------------------------------------------------------------------------------------
    def _writable(self, path: str) -> Path:
        path = normalize(path)
        if is_virtual(path) or path == "/":
            raise FsError(path, "Read-only file system", EROFS)
        return self.host_path(path)

    def open_for_write(self, path: str, *, append: bool = False, make_parents: bool = False) -> Path:
        """Check ``path`` can be written as a regular file (making parents if asked); return its host path."""
        host = self._writable(path)
        if path.endswith("/") or host.is_dir():
            raise FsError(path, "Is a directory", EISDIR)
        if make_parents:
            self.mkdir(posixpath.dirname(normalize(path)), parents=True)
        elif not host.parent.is_dir():
            raise FsError(path, "No such file or directory", ENOENT)
        if not append:
            host.unlink(missing_ok=True)
        return host

    def write_bytes(self, path: str, data: bytes, *, append: bool = False) -> None:
        host = self.open_for_write(path, append=append)
        with host.open("ab" if append else "wb") as f:
            f.write(data)

    def mkdir(self, path: str, *, parents: bool = False) -> None:
        host = self._writable(path) if normalize(path) != "/" else self.root
        if host.is_dir():
            if parents:
                return
            raise FsError(path, "File exists", EEXIST)
        if host.exists():
            raise FsError(path, "File exists", EEXIST)
        try:
            host.mkdir(parents=parents)
        except FileNotFoundError as exc:
            raise FsError(path, "No such file or directory", ENOENT) from exc
        except NotADirectoryError as exc:
            raise FsError(path, "Not a directory", ENOTDIR) from exc

    def remove(self, path: str, *, recursive: bool = False) -> None:
        host = self._writable(path)
        if not host.exists():
            raise FsError(path, "No such file or directory", ENOENT)
        if host.is_dir():
            if not recursive:
                raise FsError(path, "Is a directory", EISDIR)
            shutil.rmtree(host)
        else:
            host.unlink()

    def rename(self, src: str, dst: str) -> None:
        hsrc, hdst = self._writable(src), self._writable(dst)
        if not hsrc.exists():
            raise FsError(src, "No such file or directory", ENOENT)
        if hdst.is_dir():
            hdst = hdst / hsrc.name
        os.replace(hsrc, hdst)

    def chmod(self, path: str, mode: int) -> None:
        host = self._writable(path)
        if not host.exists():
            raise FsError(path, "No such file or directory", ENOENT)
        os.chmod(host, mode & 0o7777)

    def set_mtime(self, path: str, mtime: int) -> None:
        os.utime(self._writable(path), (mtime, mtime))
