"""The writer of one job's rows: validation, deduplication and buffering in front of the results store.

A :class:`ResultsWriter` holds its job's partition alone (the store's ``<root>/locks/<job>.writer.lock``),
validates every row against the contract (:class:`~farm.results.batches.RowValidator`), drops a
``(run_id, attempt)`` already stored, and writes what it buffered as one atomic part file per flush
(:meth:`farm.results.store.ResultsStore.write_table`). Get one with :meth:`ResultsStore.writer
<farm.results.store.ResultsStore.writer>`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from farm.errors import ResultsError
from farm.results.batches import RowBatch, RowValidator
from farm.results.schema import check_job_name

if TYPE_CHECKING:
    from farm.results.store import ResultsStore

log = logging.getLogger(__name__)


class ResultsWriter:
    """Buffers validated rows of one job and writes them as one atomic part file per flush.

    A flush happens when ``flush_rows`` rows are buffered, or on the first :meth:`add` (or
    :meth:`flush_if_due`) once the oldest buffered row has waited ``flush_seconds``, and on :meth:`close`.
    There is no background thread: a row added before a quiet period stays buffered until the next ``add``,
    ``flush_if_due``, ``flush`` or ``close`` — a long-lived caller should call ``flush_if_due`` from its own
    loop. All methods are thread-safe.
    """

    def __init__(self, store: ResultsStore, job: str, flush_rows: int = 500, flush_seconds: float = 5.0) -> None:
        if flush_rows < 1 or flush_seconds < 0:
            raise ResultsError(f"flush_rows must be >= 1 and flush_seconds >= 0, got {flush_rows}, {flush_seconds}")
        self.store = store
        self.job = check_job_name(job)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._lock = threading.RLock()
        self._buffer = RowBatch()
        self._oldest: float | None = None
        self._partition = store.job_lock(job)
        try:
            self._seen = store.run_keys(job)
            self._validator = RowValidator(job, store.schema(job))
        except BaseException:
            self._partition.release()
            raise
        self._closed = False
        self.files_written: list[str] = []
        self.rows_written = 0
        self.rows_dropped = 0

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Rows added before an exception are real outcomes: write them anyway.
        self.close()

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written."""
        with self._lock:
            return len(self._buffer)

    def add(self, row: Mapping[str, Any]) -> bool:
        """Validate and buffer one row; ``False`` (logged at debug) if its (run_id, attempt) is a duplicate.

        Raises :class:`ResultsError` on a row that breaks the contract, belongs to another job, or changes the
        type of a column this job already has; the row is then not buffered. Also raises it when the flush
        this row triggers fails: the row then stays buffered (with the others) and a later flush retries.
        """
        with self._lock:
            if self._closed:
                raise ResultsError(f"the results writer of job {self.job!r} is closed")
            shape, values, key, new_columns = self._validator.check(row)
            if key in self._seen:
                self.rows_dropped += 1
                log.debug("dropping duplicate result row job=%s run_id=%s attempt=%s", self.job, *key)
                return False
            if new_columns:
                self._validator.learn(new_columns)
            self._seen.add(key)
            self._buffer.append(shape, values)
            now = time.monotonic()
            if self._oldest is None:
                self._oldest = now
            if len(self._buffer) >= self.flush_rows or now - self._oldest >= self.flush_seconds:
                self._flush_locked()
        return True

    def _due(self) -> bool:
        return self._oldest is not None and time.monotonic() - self._oldest >= self.flush_seconds

    def flush_if_due(self) -> str | None:
        """Flush if the oldest buffered row has waited ``flush_seconds``; return the new file's path."""
        with self._lock:
            return self._flush_locked() if self._due() else None

    def flush(self) -> str | None:
        """Write the buffered rows as one part file now; return its path (``None`` if nothing was buffered).

        On failure the rows stay buffered (a later flush retries them) and :class:`ResultsError` is raised.
        """
        with self._lock:
            return self._flush_locked()

    def _flush_locked(self) -> str | None:
        if not self._buffer:
            return None
        table = self._buffer.to_table(self._validator.kinds)
        self.store.sync_logs()  # the logs these rows name are on disk before the rows are (farm.results.run_logs)
        path = self.store.write_table(self.job, table)
        log.debug("wrote %d rows of job %s to %s", len(self._buffer), self.job, path)
        self.files_written.append(path)
        self.rows_written += len(self._buffer)
        self._buffer = RowBatch()
        self._oldest = None
        return path

    def close(self) -> None:
        """Flush what is buffered and refuse further rows. Idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
            finally:
                self._closed = True
                self._partition.release()
