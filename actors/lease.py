"""A device slot's lease across processes: one run at a time per slot on this node, whoever started it.

The scheduler of one controller already gives a slot to one run at a time; this lease makes that hold between
controllers too (two ``farm run`` in two terminals, a cluster controller and a ``farm run``): before a run
touches its slot the device actor takes an exclusive OS file lock named after the slot id
(``$FARM_LEASE_DIR``, default ``<tmp>/farm-leases-<uid>/``), and holds it until the run's outcome is known. A
run whose slot is leased elsewhere waits for it (its wait is in the row as ``lease_wait_s``; a cancel ends the
wait); a crashed holder's lease ends with its process (see :mod:`farm.locks`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path

from farm.locks import FileLock

log = logging.getLogger(__name__)

LEASE_DIR_ENV = "FARM_LEASE_DIR"


def lease_dir() -> Path:
    configured = os.environ.get(LEASE_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"farm-leases-{os.getuid()}"


def lease_path(slot_id: str) -> Path:
    """The lock file of ``slot_id``: readable, and distinct for slot ids that differ only in odd characters."""
    return _lease_path(slot_id, os.environ.get(LEASE_DIR_ENV))


@functools.lru_cache(maxsize=1024)
def _lease_path(slot_id: str, configured: str | None) -> Path:  # once per slot, not once per run
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", slot_id)[:80]
    digest = hashlib.sha256(slot_id.encode()).hexdigest()[:12]
    return lease_dir() / f"{safe}-{digest}.lock"


class SlotLease:
    """The lease of one slot for one run: :meth:`wait` blocks until it is ours (or ``cancel`` is set)."""

    def __init__(self, slot_id: str, holder: str) -> None:
        self.slot_id = slot_id
        self._lock = FileLock(lease_path(slot_id), holder)
        self.waited_s = 0.0

    def wait(self, cancel: threading.Event) -> bool:
        """True once the lease is held; False when cancelled while waiting."""
        t0 = time.monotonic()
        if not self._lock.try_acquire():
            log.warning(
                "slot %s is leased by %s; waiting", self.slot_id, self._lock.current_holder() or "another process"
            )
            if not self._lock.acquire(cancel):
                self.waited_s = time.monotonic() - t0
                return False
        self.waited_s = time.monotonic() - t0
        return True

    def release(self) -> None:
        self._lock.release()
