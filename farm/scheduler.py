"""The pure scheduling policy: queues per slot, exclusive leases, fair sharing, retries, health. No Ray, no I/O.

The controller feeds it facts (slots appear, change state, runs finish) with an explicit ``now`` and asks which
run goes to which idle slot. Rules:
- a slot runs one run at a time: :meth:`Scheduler.assign` leases it, :meth:`Scheduler.finish` frees it;
- batches: a job given a batch size (:meth:`Scheduler.set_batch`, short runs) leases a slot up to that many of
  its runs at once, which the device runs one after another; the slot is free once each has been finished or
  handed back unstarted (:meth:`Scheduler.release`: to the front of their queues, no attempt counted);
- jobs share slots fairly: an idle slot serves the job it served least recently (strict round robin);
- runs come lazily from each job's plan iterator, pulled only when a queue runs low (bounded memory for
  very large grids — the plan is never materialised);
- ``infra_error`` is retried up to the job's ``retries`` (placement ``any``: preferably on another slot);
  K consecutive infra errors quarantine a slot until a health check clears it;
- ``each`` runs whose slot stays offline/quarantined past ``offline_grace_s`` end ``infra_error``; on an
  ``untrusted`` slot (refused on purpose, e.g. a changed SSH host key) they end so at once, with its reason;
- ``cancel`` drops a job's pending runs and stops its plan; runs that never started are counted, not recorded;
- adaptive repeats: :meth:`Scheduler.finish` takes each measured run's headline value; once all of a point's
  planned repeats on a slot have finished, the stopping rule (``farm.stability``) closes the point or queues its
  next repeat (at the front of the slot's queue for order ``grid``, at the back otherwise).
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from farm.plan import AdaptiveRepeats, RunSpec
from farm.stability import interval, should_stop

INFRA_STATUS = "infra_error"


class SlotState(enum.StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    OFFLINE = "offline"
    UNAUTHORIZED = "unauthorized"
    UNTRUSTED = "untrusted"  # refused on purpose (e.g. a changed SSH host key): no grace, no retry
    QUARANTINED = "quarantined"


@dataclass
class Attempt:
    """A run as leased to a slot: ``attempt`` counts from 1 and grows with every retry."""

    job_id: str
    run: RunSpec
    attempt: int
    avoid: frozenset[str] = frozenset()


@dataclass
class Assignment:
    """One run leased to a slot. A slot leased several runs at once (a batch) gets one each, next to each other
    in :meth:`Scheduler.assign`'s list and in the order they run."""

    slot_id: str
    job_id: str
    run: RunSpec
    attempt: int


@dataclass
class Final:
    """A run that will not be tried again, with the status to record when the scheduler decided it."""

    job_id: str
    run: RunSpec
    attempt: int
    status: str
    error: str
    added: int = 0  # repeats this outcome added to the plan (adaptive repeats)
    closing: dict[str, float | int | str | None] | None = None  # the point's decision, on the run that closed it


@dataclass
class _Slot:
    slot_id: str
    state: SlotState = SlotState.IDLE
    leased: list[Attempt] = field(default_factory=list)  # the runs it holds, in the order they run
    infra_streak: int = 0
    unavailable_since: float | None = None
    reason: str = ""  # why it is unavailable, when the device said
    down: SlotState = SlotState.OFFLINE  # the state it returns to after a run while unavailable


@dataclass
class _Point:
    """One grid point on one slot of an adaptive job: its measured repeats so far."""

    planned: int = 0  # measured runs of the point pulled from the plan (skipped ones included)
    outstanding: int = 0  # queued or running measured runs
    measured: int = 0  # measured runs that ended (any status) or were done in an earlier submission
    next_repeat: int = 0
    values: list[float] = field(default_factory=list)


@dataclass
class _Job:
    job_id: str
    plan: Iterator[RunSpec]
    retries: int
    skip: frozenset[str]
    slot_ids: frozenset[str]  # slots this job may use
    each: dict[str, deque[Attempt]] = field(default_factory=dict)
    any: deque[Attempt] = field(default_factory=deque)
    exhausted: bool = False
    running: int = 0
    last_served: int = 0  # position in the scheduler's service sequence
    cancelled: bool = False
    pulled: int = 0
    skipped: int = 0
    finished: int = 0
    adaptive: AdaptiveRepeats | None = None
    known: Mapping[str, float] = field(default_factory=dict)  # values of skipped runs (an earlier submission)
    points: dict[str, _Point] = field(default_factory=dict)
    added: int = 0  # adaptive repeats queued and not yet reported in a Final
    grid_order: bool = False  # added repeats go first in the slot's queue (a point's repeats back to back)
    batch: int = 1  # runs leased to a slot at once (set_batch; always 1 with adaptive repeats)

    def pending(self) -> int:
        return len(self.any) + sum(len(q) for q in self.each.values())


class Scheduler:
    """See the module docstring. All methods are O(slots + jobs) or better; nothing blocks."""

    def __init__(self, quarantine_after: int = 3, offline_grace_s: float = 60.0, low_water: int = 4) -> None:
        self.quarantine_after = quarantine_after
        self.offline_grace_s = offline_grace_s
        self.low_water = low_water
        self._slots: dict[str, _Slot] = {}
        self._jobs: dict[str, _Job] = {}
        self._order = itertools.count()

    # ----- slots -------------------------------------------------------------------------------------------
    def add_slot(self, slot_id: str, state: SlotState = SlotState.IDLE) -> None:
        self._slots.setdefault(slot_id, _Slot(slot_id, state))

    def slot_state(self, slot_id: str) -> SlotState:
        return self._slots[slot_id].state

    def slot_states(self) -> dict[str, SlotState]:
        return {s.slot_id: s.state for s in self._slots.values()}

    def set_available(
        self, slot_id: str, available: bool, now: float, state: SlotState = SlotState.OFFLINE, reason: str = ""
    ) -> None:
        """A health check result: an unavailable slot gets no runs; a healthy one leaves quarantine."""
        slot = self._slots[slot_id]
        slot.reason = "" if available else reason
        if available:
            slot.unavailable_since = None
            slot.infra_streak = 0
            if slot.state is not SlotState.BUSY:
                slot.state = SlotState.IDLE
        else:
            if slot.unavailable_since is None:
                slot.unavailable_since = now
            slot.down = state
            if slot.state is not SlotState.BUSY:
                slot.state = state

    def slot_reason(self, slot_id: str) -> str:
        return self._slots[slot_id].reason

    # ----- jobs --------------------------------------------------------------------------------------------
    def submit(
        self,
        job_id: str,
        plan: Iterable[RunSpec],
        slot_ids: Iterable[str],
        retries: int,
        skip: Iterable[str] = (),
        adaptive: AdaptiveRepeats | None = None,
        grid_order: bool = False,
        known: Mapping[str, float] | None = None,
    ) -> None:
        """Queue a job. ``skip``: run ids already done (resubmission); they are counted, not run. ``adaptive``:
        the job's points get more repeats until the rule stops them (``grid_order``: right after each other);
        ``known``: the headline values of skipped runs, which the rule counts as if measured now."""
        if job_id in self._jobs:
            raise ValueError(f"job {job_id!r} is already queued")
        slots = frozenset(slot_ids)
        # A new job queues behind the jobs already waiting, ahead of those served after it arrived.
        self._jobs[job_id] = _Job(
            job_id,
            iter(plan),
            retries,
            frozenset(skip),
            slots,
            last_served=next(self._order),
            adaptive=adaptive,
            known=known or {},
            grid_order=grid_order,
        )
        for sid in slots:
            self.add_slot(sid)
            self._jobs[job_id].each[sid] = deque()

    def jobs(self) -> list[str]:
        return list(self._jobs)

    def job_done(self, job_id: str) -> bool:
        job = self._jobs[job_id]
        self._refill(job)
        return job.exhausted and job.pending() == 0 and job.running == 0

    def progress(self, job_id: str) -> dict[str, int]:
        job = self._jobs[job_id]
        return {
            "queued": job.pending(),
            "running": job.running,
            "finished": job.finished,
            "skipped": job.skipped,
            "planned_so_far": job.pulled,
            "plan_complete": int(job.exhausted),
        }

    def forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def cancel(self, job_id: str) -> int:
        """Drop every pending run of the job and stop pulling from its plan; return how many queued attempts were
        dropped. Nothing is enumerated: a cancelled 1,000,000-run sweep costs as much as a 10-run one, and the
        runs it never started are only counted (by the caller, from the job's total), never recorded one by one.
        Running runs are the controller's to stop; they are reported through :meth:`finish` as usual."""
        job = self._jobs[job_id]
        job.cancelled = True
        dropped = sum(1 for _ in self._drain(job))
        job.exhausted = True
        return dropped

    def set_batch(self, job_id: str, size: int) -> None:
        """Lease the job's runs up to ``size`` at a time (its runs are short: one call to the device per run would
        cost more than the run). Adaptive jobs keep 1: each repeat's value decides whether another is queued."""
        job = self._jobs.get(job_id)
        if job is not None and job.adaptive is None:
            job.batch = max(1, size)

    def _drain(self, job: _Job) -> Iterator[Attempt]:
        while job.any:
            yield job.any.popleft()
        for q in job.each.values():
            while q:
                yield q.popleft()

    # ----- dispatch ----------------------------------------------------------------------------------------
    def assign(self) -> list[Assignment]:
        """Lease every idle slot that has work to a run; also fail runs stranded on long-dead slots."""
        out: list[Assignment] = []
        for slot in self._slots.values():
            if slot.state is not SlotState.IDLE:
                continue
            job = self._pick_job(slot.slot_id)
            if job is None:
                continue
            leased: list[Attempt] = []
            while len(leased) < job.batch and (attempt := self._pop_for(job, slot.slot_id)) is not None:
                leased.append(attempt)
                if len(leased) < job.batch:
                    self._refill(job, slot.slot_id)
            if not leased:
                continue
            slot.state = SlotState.BUSY
            slot.leased = leased
            job.running += len(leased)
            job.last_served = next(self._order)  # strict round robin: the least recently served job goes next
            out.extend(Assignment(slot.slot_id, job.job_id, a.run, a.attempt) for a in leased)
        return out

    def stranded(self, now: float) -> list[Final]:
        """``each`` runs whose slot has been unavailable longer than the grace period end as infra errors."""
        out: list[Final] = []
        for slot in self._slots.values():
            since = slot.unavailable_since
            # an untrusted slot will not heal by waiting: its runs end at once, with the device's reason
            grace = 0.0 if slot.state is SlotState.UNTRUSTED else self.offline_grace_s
            if since is None or now - since < grace or slot.state is SlotState.BUSY:
                continue
            if slot.state is SlotState.UNTRUSTED:
                error = f"device {slot.slot_id} is untrusted: {slot.reason or 'refused by the device actor'}"
            else:
                error = f"device {slot.slot_id} is {slot.state.value} for {now - since:.0f}s"
            for job in self._jobs.values():
                q = job.each.get(slot.slot_id)
                if q is None:
                    continue
                if not job.exhausted:
                    self._refill(job, force_all_for=slot.slot_id)
                while q:
                    a = q.popleft()
                    job.finished += 1
                    out.append(Final(job.job_id, a.run, a.attempt, INFRA_STATUS, error))
        return out

    def _pick_job(self, slot_id: str) -> _Job | None:
        best: _Job | None = None
        for job in self._jobs.values():
            if job.cancelled or slot_id not in job.slot_ids:
                continue
            self._refill(job, slot_id)
            if not job.each.get(slot_id) and not self._any_for(job, slot_id):
                continue
            if best is None or job.last_served < best.last_served:
                best = job
        return best

    def _any_for(self, job: _Job, slot_id: str) -> bool:
        return any(slot_id in a.run.candidates and (slot_id not in a.avoid or self._only_choice(a)) for a in job.any)

    def _only_choice(self, a: Attempt) -> bool:
        # An ``any`` retry avoids the slot it failed on unless no other candidate is usable.
        return all(
            c in a.avoid or self._slots.get(c) is None or self._slots[c].state in _UNUSABLE for c in a.run.candidates
        )

    def _pop_for(self, job: _Job, slot_id: str) -> Attempt | None:
        q = job.each.get(slot_id)
        if q:
            return q.popleft()
        for i, a in enumerate(job.any):
            if slot_id in a.run.candidates and (slot_id not in a.avoid or self._only_choice(a)):
                del job.any[i]
                return a
        return None

    def _refill(self, job: _Job, slot_id: str | None = None, force_all_for: str | None = None) -> None:
        """Pull runs from the plan until the slot's queue (or the shared one) has ``low_water`` runs."""
        if job.exhausted or job.cancelled:  # a cancelled job's plan belongs to the iterator ``cancel`` returned
            return

        def satisfied() -> bool:
            if force_all_for is not None:
                return False
            if slot_id is None:
                return job.pending() > 0
            want = max(self.low_water, job.batch)
            return len(job.each.get(slot_id, ())) >= want or len(job.any) >= want

        while not satisfied():
            run = next(job.plan, None)
            if run is None:
                job.exhausted = True
                return
            job.pulled += 1
            point = self._point(job, run)
            if point is not None:
                point.planned += 1
                point.next_repeat = max(point.next_repeat, run.repeat + 1)
            if run.run_id in job.skip:
                job.skipped += 1
                if point is not None and job.adaptive is not None:
                    self._done_before(job, point, run)
                    self._decide(job, job.adaptive, point, run, None)  # an interrupted point goes on
                continue
            if point is not None:
                point.outstanding += 1
            attempt = Attempt(job.job_id, run, 1)
            if run.slot_id is None:
                job.any.append(attempt)
            elif run.slot_id in job.each:
                job.each[run.slot_id].append(attempt)

    # ----- completion --------------------------------------------------------------------------------------
    def _take(self, slot: _Slot, run_id: str | None) -> Attempt:
        """Remove one of the slot's leased runs (``run_id``; None: the first)."""
        for i, attempt in enumerate(slot.leased):
            if run_id is None or attempt.run.run_id == run_id:
                del slot.leased[i]
                self._jobs[attempt.job_id].running -= 1
                return attempt
        which = f"run {run_id!r}" if run_id is not None else "run"
        raise ValueError(f"slot {slot.slot_id!r} has no {which} to finish")

    def _free(self, slot: _Slot) -> None:
        """The slot's last leased run is over: it takes new runs, unless it went unavailable meanwhile."""
        if slot.state is SlotState.BUSY and not slot.leased:
            slot.state = SlotState.IDLE if slot.unavailable_since is None else slot.down

    def release(self, slot_id: str, run_ids: list[str]) -> None:
        """Leased runs the device did not start (its batch stopped early): back to the front of their queues in
        their order, no attempt counted; a cancelled job's runs are dropped (the caller counts them as never
        started)."""
        slot = self._slots[slot_id]
        for attempt in reversed([self._take(slot, run_id) for run_id in run_ids]):
            job = self._jobs[attempt.job_id]
            if not job.cancelled:
                (job.any if attempt.run.slot_id is None else job.each[slot_id]).appendleft(attempt)
        self._free(slot)

    def finish(
        self,
        slot_id: str,
        status: str,
        error: str = "",
        now: float = 0.0,
        value: float | None = None,
        run_id: str | None = None,
    ) -> Final | None:
        """End one leased run (``run_id``; None: the slot's first); the slot is free once none is left. Returns the
        final outcome, or None when the run was re-queued for a retry. ``value``: the run's headline metric
        (adaptive repeats; None when the run produced none)."""
        slot = self._slots[slot_id]
        attempt = self._take(slot, run_id)
        job = self._jobs[attempt.job_id]
        if status == INFRA_STATUS:
            slot.infra_streak += 1
            if slot.infra_streak >= self.quarantine_after:
                slot.state = SlotState.QUARANTINED
                if slot.unavailable_since is None:
                    slot.unavailable_since = now
        else:
            slot.infra_streak = 0
        self._free(slot)
        if status == INFRA_STATUS and attempt.attempt <= job.retries and not job.cancelled:
            retry = Attempt(job.job_id, attempt.run, attempt.attempt + 1, attempt.avoid | {slot_id})
            if attempt.run.slot_id is None:
                job.any.appendleft(retry)
            else:
                job.each[slot_id].appendleft(retry)
            return None
        job.finished += 1
        final = Final(job.job_id, attempt.run, attempt.attempt, status, error)
        point = self._point(job, attempt.run)
        if point is not None and job.adaptive is not None:
            point.outstanding -= 1
            point.measured += 1
            if status == "ok" and value is not None and math.isfinite(value):
                point.values.append(float(value))
            self._decide(job, job.adaptive, point, attempt.run, final)
        final.added, job.added = job.added, 0  # repeats added since the last outcome was reported
        return final

    # ----- adaptive repeats --------------------------------------------------------------------------------
    def _point(self, job: _Job, run: RunSpec) -> _Point | None:
        if job.adaptive is None or run.warmup:
            return None
        return job.points.setdefault(job.adaptive.point_key(run), _Point())

    @staticmethod
    def _done_before(job: _Job, point: _Point, run: RunSpec) -> None:
        point.measured += 1
        value = job.known.get(run.run_id)
        if value is not None and math.isfinite(value):
            point.values.append(value)

    def _decide(self, job: _Job, adaptive: AdaptiveRepeats, point: _Point, last: RunSpec, final: Final | None) -> None:
        """Once the point's planned repeats have all ended: close it, or queue its next repeat. ``final``: the
        outcome of the run that ended last (None: the last was done by an earlier submission, no row to carry
        the decision)."""
        rule = adaptive.rule
        if point.outstanding > 0 or point.planned < rule.min:
            return
        key = adaptive.point_key(last)
        while not job.cancelled and not should_stop(rule, point.values, point.measured, key):
            run = adaptive.repeat_run(last, point.next_repeat)
            point.next_repeat += 1
            if run.run_id in job.skip:  # done by an earlier submission
                self._done_before(job, point, run)
                continue
            point.outstanding += 1
            job.added += 1
            extra = Attempt(job.job_id, run, 1)
            queue = job.any if run.slot_id is None else job.each[run.slot_id]
            if job.grid_order:
                queue.appendleft(extra)
            else:
                queue.append(extra)
            return
        del job.points[key]  # closed: none of its runs is left to come (bounded memory on large grids)
        if final is None:
            return
        iv = interval(rule, point.values, key)
        final.closing = {
            "repeat_count": point.measured,
            "ci_low": iv.low if iv else None,
            "ci_high": iv.high if iv else None,
            "ci_rel_pct": iv.rel_pct if iv and math.isfinite(iv.rel_pct) else None,
            "ci_method": rule.method,
        }

    def mark_slot(self, slot_id: str, state: SlotState, now: float) -> None:
        """Record an externally observed state (e.g. unauthorized) without a run finishing."""
        self.set_available(slot_id, state is SlotState.IDLE, now, state)


_UNUSABLE = frozenset({SlotState.OFFLINE, SlotState.UNAUTHORIZED, SlotState.UNTRUSTED, SlotState.QUARANTINED})
