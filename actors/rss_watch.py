"""Peak resident memory of a local process tree, sampled by the thread that waits for the command.

A run's peak is ``max(highest sampled sum of VmRSS over its tree, highest VmHWM of any single process)``: the sum
catches multi-process workloads, VmHWM (the kernel's own high-water mark) a single process's peak between two
samples. Values are MiB. The local transport adds what the kernel reports when it reaps the command
(``wait4``'s ``ru_maxrss``: the highest VmHWM of the command and every descendant it reaped), so a run that ends
before the first sample still gets its peak.

No thread of its own: :meth:`PeakRssSampler.start` returns :meth:`~PeakRssSampler.poll`, which the local transport
calls from its wait loop (every 20 ms at most, see :mod:`actors.transports.local`), and a poll samples once
``interval_s`` has passed since the last sample. A device actor runs many short commands, and a thread started per
run (plus a full ``/proc`` scan to find its tree at once) cost more CPU than the spawn of the command it watched; a
shared thread woken per run, or ticking between runs, still cost a device actor of 50 more than the spawn. So a run
shorter than one interval costs no sample at all. Trees are found through ``/proc/<pid>/task/*/children``; on kernels
built without them (``CONFIG_PROC_CHILDREN``) by a full ``/proc`` scan every ``rescan_every`` samples, with the known
pids read in between.

Cost, measured on the project's 2-core dev VM: with ``interval_s=0.05`` sampling a three-process tree takes about
1 % of one core; ``tests/actors/test_host_probe.py`` checks it through :attr:`PeakRssSampler.cpu_fraction`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable

from actors.host_probe import descendants, has_children_files, read_rss_hwm_kib, read_stat

_KIB_PER_MIB = 1024.0

Poll = Callable[[], None]


class PeakRssSampler:
    """The peak RSS of one process tree, from :meth:`start` (given its root pid) to :meth:`stop`; sampled whenever
    :meth:`poll` is called and ``interval_s`` has passed. Thread-safe.

    Pass an unstarted sampler as the local transport's ``on_start`` callback: calling it with a pid starts it, and the
    transport polls it while it waits for the command::

        sampler = PeakRssSampler()
        completed = LocalTransport().run(argv, on_start=sampler)
        peak_rss_mib = sampler.stop()
    """

    def __init__(self, pid: int | None = None, interval_s: float = 0.05, rescan_every: int = 10) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.pid = pid
        self.interval_s = interval_s
        self.rescan_every = max(1, rescan_every)
        self.samples = 0
        self.cpu_seconds = 0.0  # CPU time spent sampling (in whichever thread polled)
        self._peak_kib = 0
        self._known: list[int] = []
        self._children_files = False
        self._ticks = 0
        self._started = 0.0
        self._due = math.inf
        self._wall = 0.0
        self._lock = threading.Lock()

    def __call__(self, pid: int) -> Poll:
        return self.start(pid)

    def start(self, pid: int | None = None) -> Poll:
        """Start watching ``pid`` (or the pid given at construction); returns :meth:`poll`."""
        if pid is not None:
            self.pid = pid
        if self.pid is None:
            raise ValueError("PeakRssSampler.start needs a pid")
        if self._started:
            raise RuntimeError("PeakRssSampler already started")
        self._known = [self.pid]
        self._children_files = has_children_files(self.pid)
        self._started = time.monotonic()
        self._due = self._started + self.interval_s
        return self.poll

    def poll(self) -> None:
        """Take a sample if one is due (one interval after the start or the last sample)."""
        if time.monotonic() < self._due:
            return
        with self._lock:
            if time.monotonic() < self._due or self.pid is None:
                return
            cpu0 = time.thread_time()
            if self._children_files or self._ticks % self.rescan_every == 0:
                self._known = descendants(self.pid)
            self._ticks += 1
            if not self._sample(self._known) and read_stat(self.pid) is None:
                self._due = math.inf  # the whole tree is gone
            else:
                self._due = time.monotonic() + self.interval_s
            self.cpu_seconds += time.thread_time() - cpu0

    def stop(self) -> float:
        """Stop; return the peak in MiB (``nan`` if the tree was never sampled)."""
        with self._lock:
            if self._started and not self._wall:
                self._wall = time.monotonic() - self._started
                self._due = math.inf
                # One last look (the tree may have grown since the last sample), only while the root still exists:
                # once it is gone the look is a /proc scan for nothing, on the path between two runs.
                if self.samples and self.pid is not None and read_stat(self.pid) is not None:
                    self._sample(descendants(self.pid))
        return self.peak_rss_mib

    @property
    def peak_rss_mib(self) -> float:
        return self._peak_kib / _KIB_PER_MIB if self.samples else float("nan")

    @property
    def cpu_fraction(self) -> float:
        """CPU time spent sampling, as a fraction of one core over the time the tree was watched."""
        wall = self._wall or (time.monotonic() - self._started if self._started else 0.0)
        return self.cpu_seconds / wall if wall > 0 else 0.0

    def _sample(self, pids: Iterable[int]) -> bool:
        total = 0
        seen = False
        for pid in pids:
            mem = read_rss_hwm_kib(pid)
            if mem is None:
                continue
            seen = True
            rss, hwm = mem
            total += rss
            self._peak_kib = max(self._peak_kib, hwm)
        if seen:
            self._peak_kib = max(self._peak_kib, total)
            self.samples += 1
        return seen


def peak_mib(sampled_mib: float | None, reaped_kib: int | None) -> float | None:
    """A run's peak RSS in MiB from the sampler's figure and ``wait4``'s ``ru_maxrss`` (either may be missing)."""
    values = [v for v in (sampled_mib, None if reaped_kib is None else reaped_kib / _KIB_PER_MIB) if v is not None]
    values = [v for v in values if not math.isnan(v)]
    return round(max(values), 3) if values else None
