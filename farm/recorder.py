"""The controller's recorder: one thread that writes finished runs' logs and rows, off the event loop, in batches.

The controller frees a slot and dispatches its next run the moment a result arrives; writing that run's log and
row (file I/O, row validation, Parquet flushes) happens here. One long-lived thread takes every record queued since
its last turn and writes them in order, then tells the event loop once per turn which records are done — not a
thread-pool task and a loop wake-up per run, which at hundreds of runs per second cost the controller more than the
writing itself. A record that raises is logged and the next one is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Recorder:
    """Runs queued ``write`` callables in one thread; ``on_done(keys)`` then runs on ``loop`` with their keys."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_done: Callable[[list[Any]], None]) -> None:
        self._loop = loop
        self._on_done = on_done
        self._queue: queue.SimpleQueue[tuple[Any, Callable[[], None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop_body, name="farm-recorder", daemon=True)
        self._thread.start()

    def submit(self, key: Any, write: Callable[[], None]) -> None:
        """Queue ``write``; ``key`` is handed back to ``on_done`` once it ran (whether or not it raised)."""
        self._queue.put((key, write))

    def close(self) -> None:
        """Write what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def _loop_body(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            done: list[Any] = []
            for item in batch:
                if item is None:
                    self._report(done)
                    return
                key, write = item
                try:
                    write()
                except Exception:
                    log.exception("a finished run's log or result row could not be written")
                done.append(key)
            self._report(done)

    def _report(self, keys: list[Any]) -> None:
        if not keys:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for these records any more
            self._loop.call_soon_threadsafe(self._on_done, keys)
