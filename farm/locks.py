"""Exclusive locks between processes on one machine: an OS file lock (``flock``) on a small file.

The lock belongs to an open file description, so it lasts exactly as long as its holder: a process that exits or
is killed (even ``kill -9``) releases it, and nothing is left to clean up. The descriptor is not inherited by the
commands a holder starts (Python opens files close-on-exec), so a benchmark that outlives its device actor does
not keep the lock. The file holds a line naming the holder, for the messages of those who wait or are refused.

Used for a device slot's lease (:mod:`actors.lease`) and a results writer's job partition
(:class:`farm.results.writer.ResultsWriter`). Local filesystems only: ``flock`` is not coordinated across the
machines of a network filesystem.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
from pathlib import Path

_NOTE_BYTES = 256


class FileLock:
    """One exclusive lock on ``path`` (created if needed). Not re-entrant: a second :class:`FileLock` on the same
    path conflicts with the first even inside one process."""

    def __init__(self, path: str | os.PathLike[str], holder: str = "") -> None:
        self.path = Path(path)
        self.holder = holder
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        note = f"pid {os.getpid()} on {socket.gethostname()}" + (f": {self.holder}" if self.holder else "")
        with contextlib.suppress(OSError):
            # Padded over the previous holder's line instead of truncating first: a lease is taken once per run,
            # and ftruncate costs more than the write. Readers strip the padding.
            line = (note + "\n").encode()
            os.pwrite(fd, line.ljust(max(len(line), _NOTE_BYTES)), 0)
        self._fd = fd
        return True

    def acquire(self, stop: threading.Event | None = None, poll_s: float = 0.1) -> bool:
        """Wait for the lock; ``False`` when ``stop`` was set first."""
        while not self.try_acquire():
            if stop is not None:
                if stop.wait(poll_s):
                    return False
            else:
                time.sleep(poll_s)
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the open file description drops the lock

    def current_holder(self) -> str:
        """Who holds the lock, as its holder wrote it (empty when unknown)."""
        try:
            return self.path.read_text(errors="replace").partition("\n")[0].strip()  # a longer old line may follow
        except OSError:
            return ""
