"""How many of a job's runs one call to a device carries.

A call from the controller to a device actor costs about a millisecond of CPU on each side whatever the run does
(Ray's submission, reply and scheduling; docs/architecture.md, "One controller, and past it"). Against a run of a
second that is nothing; against a run of a few milliseconds (a no-op, a CoDL op run on a fast core) it is most of
the work, and it caps how many devices one controller serves. So a job whose runs are short leases a slot several
runs at once, which the device runs back to back and reports together (:meth:`farm.scheduler.Scheduler.set_batch`,
``DeviceActor.execute``).

The size follows how long each run held its device (``RunResult.held_s``: lease, pushes, thermal gate, the
command, the samplers' idle window; an exponential moving average per job), so that one call lasts about
``window_s`` (1 s by default; ``farm controller start --batch-window``): a sweep of one-second runs keeps one run
per call, a sweep of 2-ms runs sends up to ``max_size``.
The device's time is used, not the call's round trip, so a busy controller does not shrink its own batches.
Adaptive repeats keep one run per call (each value decides whether another repeat is queued).

What a batch changes, and what it does not:
- each run is still its own process, row, log, lease, thermal gate and timeout;
- a run queued behind another in one call counts its dispatch latency from the moment that one ended;
- a cancel stops the running run and keeps the batch's later runs from starting (counted as never started);
- an infra fault stops the batch: the runs it did not start go back to the front of their queues, no attempt
  counted. A device actor that dies takes the results of its whole call with it: the call's first run counts as
  the infra fault (retried), the others go back unstarted and are run again;
- a result reaches the controller (rows, progress, metrics) when its call ends, at most about ``window_s`` late;
- jobs sharing a slot take turns a batch at a time, and at the end of a sweep with placement ``any`` one slot's
  last batch may keep the others idle for up to ``window_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

WINDOW_S = 1.0  # the default window: what a call's runs last together, about
MAX_SIZE = 64  # the default cap on runs per call


class BatchSizer:
    """Per job: the moving average of how long its runs held their device, and the batch size it gives."""

    def __init__(self, window_s: float = WINDOW_S, max_size: int = MAX_SIZE, weight: float = 0.2) -> None:
        self.window_s = window_s
        self.max_size = max(1, max_size)
        self.weight = weight
        self.mean_s: float | None = None

    def observe(self, durations_s: Iterable[float]) -> int:
        """Fold in how long runs that started held their device (0: not measured, e.g. a call that failed); return
        the batch size for the job's next calls."""
        for d in durations_s:
            if math.isfinite(d) and d > 0:
                self.mean_s = d if self.mean_s is None else self.mean_s + self.weight * (d - self.mean_s)
        return self.size()

    def size(self) -> int:
        if self.mean_s is None or self.window_s <= 0:
            return 1
        if self.mean_s * self.max_size <= self.window_s:
            return self.max_size
        return max(1, min(self.max_size, int(self.window_s / self.mean_s)))
