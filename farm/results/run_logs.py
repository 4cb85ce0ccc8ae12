"""Run logs and collected files under the results root, and when a log becomes durable.

Layout: ``<root>/logs/<job>/<run_id>-<attempt>.log`` (a second log of the same run and attempt, e.g. after a crash,
gets a random suffix: a log is never overwritten) and ``<root>/files/<job>/<run_id>-<attempt>/<path>``.

Durability. A row names its log, so a row must never be on disk without its log. The controller writes each run's
log with ``durable=False``: on a local disk the file is written but not synced, and the store remembers that a
sync is owed. Every writer flush calls :meth:`~farm.results.store.ResultsStore.sync_logs` first, which settles it
with one ``syncfs`` of the results filesystem for all the logs written since the last flush (where ``syncfs`` is
missing, each owed log and its folder are fsynced), and only then writes the part file holding their rows. So a
crash loses the rows not yet flushed (at most the writer's ``flush_rows`` rows or ``flush_seconds`` of runs) and may
leave their logs behind, complete or torn, with no row pointing at them; it never leaves a row whose log is missing.
Before, each log was its own atomic file with two fsyncs (file and folder), per run. Object stores are unchanged:
an upload is visible only once complete, so each log is written whole, as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from farm.errors import ResultsError
from farm.results.schema import check_job_name

if TYPE_CHECKING:
    from farm.results.store import ResultsStore

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def _check_run(run_id: str, attempt: int, what: str) -> None:
    if not RUN_ID.match(run_id) or isinstance(attempt, bool) or attempt < 1:
        raise ResultsError(f"cannot name a {what} after run_id={run_id!r} attempt={attempt!r}")


def write_log(store: ResultsStore, job: str, run_id: str, attempt: int, text: str, *, unsynced: Unsynced | None) -> str:
    """See :meth:`ResultsStore.write_log <farm.results.store.ResultsStore.write_log>`; ``unsynced``: write without
    syncing and record it there (local stores)."""
    check_job_name(job)
    _check_run(run_id, attempt, "log file")
    data = text.encode("utf-8", errors="replace")
    directory = f"{store.base_path}/logs/{job}"
    name = f"{run_id}-{attempt}.log"
    if unsynced is not None and store.is_local:
        return store.uri(unsynced.write(directory, name, data))
    try:
        path = store.write_atomic(directory, name, lambda sink: sink.write(data), replace=False)
    except FileExistsError:
        path = store.write_atomic(directory, _second_name(name), lambda sink: sink.write(data), replace=False)
    return store.uri(path)


def _second_name(name: str) -> str:
    """A log of this (run_id, attempt) is already there (e.g. written before a crash): keep both."""
    return f"{name.removesuffix('.log')}.{uuid.uuid4().hex[:8]}.log"


def write_files(
    store: ResultsStore, job: str, run_id: str, attempt: int, files: Sequence[tuple[str, bytes]]
) -> str | None:
    """See :meth:`ResultsStore.write_files <farm.results.store.ResultsStore.write_files>`."""
    if not files:
        return None
    check_job_name(job)
    _check_run(run_id, attempt, "folder")
    base = f"{store.base_path}/files/{job}/{run_id}-{attempt}"
    for rel, data in files:
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ResultsError(f"collected file {rel!r} is not a plain relative path")
        folder = "/".join([base, *parts[:-1]])
        store.write_atomic(folder, parts[-1], lambda sink, data=data: sink.write(data))
    return store.uri(base)


def _load_syncfs() -> Callable[[int], int] | None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[[int], int] = libc.syncfs
        return fn
    return None


_syncfs = _load_syncfs()


class Unsynced:
    """Local log files written but not yet synced (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: list[str] = []
        self._folders: set[str] = set()  # created already: not looked up again per log

    def write(self, directory: str, name: str, data: bytes) -> str:
        """Create ``directory/name`` (or a second name if it exists) with ``data``; its path."""
        try:
            if directory not in self._folders:
                os.makedirs(directory, exist_ok=True)
                self._folders.add(directory)
            for second in (False, True):
                path = f"{directory}/{_second_name(name) if second else name}"
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                except FileExistsError:
                    continue
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
                with self._lock:
                    self._paths.append(path)
                return path
        except OSError as exc:
            self._folders.discard(directory)  # perhaps removed meanwhile: look again next time
            raise ResultsError(f"cannot write {directory}/{name}: {exc}") from exc
        raise ResultsError(f"cannot write {directory}/{name}: both names are taken")

    def sync(self, root: str) -> None:
        """Make every log written so far durable: one ``syncfs`` of ``root``'s filesystem, or fsync each."""
        with self._lock:
            paths, self._paths = self._paths, []
        if not paths:
            return
        try:
            if _syncfs is not None:
                fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    if _syncfs(fd) == 0:
                        return
                finally:
                    os.close(fd)
            for path in paths + sorted({os.path.dirname(p) for p in paths}):  # the files, then their folders
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            with self._lock:
                self._paths[:0] = paths  # still owed: the next flush tries again
            raise ResultsError(f"cannot sync the run logs under {root}: {exc}") from exc


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
