"""Peak resident memory of local process trees, sampled by one thread per process for every tree it watches.

A run's peak is ``max(highest sampled sum of VmRSS over its tree, highest VmHWM of any single process)``: the sum
catches multi-process workloads, VmHWM (the kernel's own high-water mark) a single process's peak between two
samples. Values are MiB. The local transport adds what the kernel reports when it reaps the command
(``wait4``'s ``ru_maxrss``: the highest VmHWM of the command and every descendant it reaped), so a run that ends
before the first sample still gets its peak.

Why one thread: a device actor runs many short commands, and a thread started per run (plus a full ``/proc`` scan
to find its tree at once) cost more CPU than the spawn of the command it watched. Here one daemon thread, started
with the first tree, samples each tree every ``interval_s`` from its start (the first sample about one interval
after it). Between runs it keeps ticking for a while instead of being woken for each new tree (a wake-up per run
cost more than the sampling), then sleeps until the next tree comes. Trees are found through ``/proc/<pid>/task/*/children``; on kernels built without them
(``CONFIG_PROC_CHILDREN``) one full ``/proc`` scan every ``rescan_every`` intervals serves every tree due for a
rescan, and the known pids are read in between.

Cost, measured on the project's 2-core dev VM: with ``interval_s=0.05`` the thread uses about 1 % of one core on a
three-process tree (0.2 % of it just waking up 20 times a second); ``tests/actors/test_host_probe.py`` checks it
through :attr:`PeakRssSampler.cpu_fraction`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable

from actors.host_probe import descendants, has_children_files, parent_map, read_rss_hwm_kib, read_stat

_KIB_PER_MIB = 1024.0
_IDLE_TICKS_S = 2.0  # how long the thread keeps ticking once nothing is watched


class _Tree:
    """One watched process tree and its peak so far; the watcher thread and :meth:`PeakRssSampler.stop` share it
    under ``lock``."""

    def __init__(self, root: int, now: float, interval_s: float) -> None:
        self.root = root
        self.known = [root]
        self.children_files = has_children_files(root)
        self.started = now
        self.due = now + interval_s
        self.ticks = 0
        self.samples = 0
        self.peak_kib = 0
        self.cpu_seconds = 0.0  # the watcher's CPU time spent on this tree (its share of each wake-up)
        self.lock = threading.Lock()

    def sample(self, pids: Iterable[int]) -> bool:
        total = 0
        seen = False
        for pid in pids:
            mem = read_rss_hwm_kib(pid)
            if mem is None:
                continue
            seen = True
            rss, hwm = mem
            total += rss
            self.peak_kib = max(self.peak_kib, hwm)
        if seen:
            self.peak_kib = max(self.peak_kib, total)
            self.samples += 1
        return seen


class RssWatch:
    """The sampling thread of one process and interval. Use it through :class:`PeakRssSampler`."""

    def __init__(self, interval_s: float, rescan_every: int) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.interval_s = interval_s
        self.rescan_every = max(1, rescan_every)
        self._trees: dict[int, _Tree] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf  # when the thread wakes up next, unless notified

    def add(self, root: int) -> _Tree:
        tree = _Tree(root, time.monotonic(), self.interval_s)
        with self._cond:
            self._trees[id(tree)] = tree
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)
                self._thread.start()
            if tree.due < self._wake_at:  # the thread sleeps past this tree's first sample: wake it
                self._cond.notify()
        return tree

    def remove(self, tree: _Tree) -> None:
        with self._cond:
            self._trees.pop(id(tree), None)

    def _loop(self) -> None:
        idle_since: float | None = None
        while True:
            with self._cond:
                now = time.monotonic()
                if self._trees:
                    idle_since = None
                    self._wake_at = min(t.due for t in self._trees.values())
                elif idle_since is None:
                    idle_since = now
                if not self._trees and now - idle_since > _IDLE_TICKS_S:
                    self._wake_at = math.inf  # idle for a while: sleep until a tree comes (add() notifies)
                elif not self._trees:
                    # Between two runs of a busy device: keep ticking, so the next run's tree needs no wake-up call
                    # (a notify per run cost the actor more than sampling did).
                    self._wake_at = now + self.interval_s
                if self._wake_at > now + self.interval_s / 2:
                    self._cond.wait(None if math.isinf(self._wake_at) else self._wake_at - now)
                    continue
                self._wake_at = -math.inf  # busy sampling: a tree added meanwhile needs no notice
                due = [t for t in self._trees.values() if t.due <= now + self.interval_s / 2]
            self._sample(due, now)

    def _sample(self, due: list[_Tree], now: float) -> None:
        cpu0 = time.thread_time()
        scanned: dict[int, list[int]] | None = None  # one /proc scan serves every tree that needs one
        for tree in due:
            with tree.lock:
                if tree.children_files:
                    tree.known = descendants(tree.root)
                elif tree.ticks % self.rescan_every == 0:
                    scanned = parent_map() if scanned is None else scanned
                    tree.known = descendants(tree.root, scanned)
                tree.ticks += 1
                if not tree.sample(tree.known) and read_stat(tree.root) is None:
                    tree.due = math.inf  # the whole tree is gone: nothing more to read until it is removed
                else:
                    tree.due = max(tree.due + self.interval_s, now)
        share = (time.thread_time() - cpu0) / max(1, len(due))
        for tree in due:
            tree.cpu_seconds += share


_watches: dict[tuple[float, int], RssWatch] = {}
_watches_lock = threading.Lock()


def shared_watch(interval_s: float, rescan_every: int) -> RssWatch:
    """This process's watcher for ``interval_s`` (one thread each; in practice every caller uses the default)."""
    with _watches_lock:
        watch = _watches.get((interval_s, rescan_every))
        if watch is None:
            watch = _watches[(interval_s, rescan_every)] = RssWatch(interval_s, rescan_every)
        return watch


class PeakRssSampler:
    """The peak RSS of one process tree, from :meth:`start` (given its root pid) to :meth:`stop`.

    Pass an unstarted sampler as a transport's ``on_start`` callback: calling it with a pid starts it::

        sampler = PeakRssSampler()
        completed = transport.run(argv, on_start=sampler)
        peak_rss_mib = sampler.stop()
    """

    def __init__(self, pid: int | None = None, interval_s: float = 0.05, rescan_every: int = 10) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.pid = pid
        self._watch = shared_watch(interval_s, rescan_every)
        self._tree: _Tree | None = None
        self._wall = 0.0

    def __call__(self, pid: int) -> None:
        self.start(pid)

    def start(self, pid: int | None = None) -> None:
        """Start sampling ``pid`` (or the pid given at construction)."""
        if pid is not None:
            self.pid = pid
        if self.pid is None:
            raise ValueError("PeakRssSampler.start needs a pid")
        if self._tree is not None:
            raise RuntimeError("PeakRssSampler already started")
        self._tree = self._watch.add(self.pid)

    def stop(self) -> float:
        """Stop sampling; return the peak in MiB (``nan`` if the tree was never seen)."""
        tree = self._tree
        if tree is None:
            return self.peak_rss_mib
        self._watch.remove(tree)
        with tree.lock:
            if not self._wall:
                self._wall = time.monotonic() - tree.started
                # One last look (the tree may have grown since the last sample), only while the root still exists:
                # once it is gone the look is a /proc scan for nothing, on the path between two runs.
                if read_stat(tree.root) is not None:
                    tree.sample(descendants(tree.root))
        return self.peak_rss_mib

    @property
    def samples(self) -> int:
        return self._tree.samples if self._tree is not None else 0

    @property
    def peak_rss_mib(self) -> float:
        tree = self._tree
        return tree.peak_kib / _KIB_PER_MIB if tree is not None and tree.samples else float("nan")

    @property
    def cpu_fraction(self) -> float:
        """The watcher's CPU time spent on this tree, as a fraction of one core over the time it was watched."""
        tree = self._tree
        return tree.cpu_seconds / self._wall if tree is not None and self._wall > 0 else 0.0


def peak_mib(sampled_mib: float | None, reaped_kib: int | None) -> float | None:
    """A run's peak RSS in MiB from the sampler's figure and ``wait4``'s ``ru_maxrss`` (either may be missing)."""
    values = [v for v in (sampled_mib, None if reaped_kib is None else reaped_kib / _KIB_PER_MIB) if v is not None]
    values = [v for v in values if not math.isnan(v)]
    return round(max(values), 3) if values else None
