"""The pure scheduler with plain objects: leases, fairness, lazy planning, retries, quarantine, cancel."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from farm.plan import AdaptiveRepeats, RunSpec, run_id
from farm.scheduler import Final, Scheduler, SlotState


def runs(job: str, n: int, slot: str | None = "s1", candidates: tuple[str, ...] = ()) -> list[RunSpec]:
    return [RunSpec(f"{job}-{i}", slot, {"i": i}, 0, False, i, candidates) for i in range(n)]


class Counting:
    """A plan iterator that records how far it was consumed."""

    def __init__(self, items: list[RunSpec]) -> None:
        self.items, self.pulled = items, 0

    def __iter__(self) -> Iterator[RunSpec]:
        for item in self.items:
            self.pulled += 1
            yield item


def test_a_slot_runs_one_run_at_a_time() -> None:
    s = Scheduler()
    s.submit("j", runs("j", 3), ["s1"], retries=0)
    (a,) = s.assign()
    assert a.run.run_id == "j-0" and s.slot_state("s1") is SlotState.BUSY
    assert s.assign() == []  # leased: nothing more for s1 until it finishes
    final = s.finish("s1", "ok")
    assert final is not None and final.status == "ok" and final.attempt == 1
    assert [x.run.run_id for x in s.assign()] == ["j-1"]


def test_jobs_sharing_a_slot_are_served_round_robin() -> None:
    s = Scheduler()
    s.submit("a", runs("a", 3), ["s1"], retries=0)
    s.submit("b", runs("b", 3), ["s1"], retries=0)
    order = []
    for _ in range(6):
        (x,) = s.assign()
        order.append(x.job_id)
        s.finish("s1", "ok")
    assert order in (["a", "b"] * 3, ["b", "a"] * 3)


def test_plan_is_pulled_lazily() -> None:
    plan = Counting(runs("j", 10_000))
    s = Scheduler(low_water=4)
    s.submit("j", plan, ["s1"], retries=0)
    s.assign()
    assert plan.pulled <= 5  # one leased + a small queue, never the whole plan


def test_infra_errors_are_retried_then_final() -> None:
    s = Scheduler(quarantine_after=10)
    s.submit("j", runs("j", 1), ["s1"], retries=2)
    for attempt in (1, 2, 3):
        (x,) = s.assign()
        assert (x.run.run_id, x.attempt) == ("j-0", attempt)
        final = s.finish("s1", "infra_error", "gone")
        assert (final is None) == (attempt < 3)
    assert final is not None and final.status == "infra_error" and final.attempt == 3
    assert s.job_done("j")


def test_failed_runs_are_not_retried() -> None:
    s = Scheduler()
    s.submit("j", runs("j", 1), ["s1"], retries=5)
    s.assign()
    final = s.finish("s1", "failed", "exit code 1")
    assert final is not None and final.status == "failed" and s.job_done("j")


def test_any_placement_retries_on_another_slot() -> None:
    s = Scheduler(quarantine_after=10)
    s.submit("j", runs("j", 1, slot=None, candidates=("s1", "s2")), ["s1", "s2"], retries=1)
    s.set_available("s2", False, 0)  # only s1 usable at first
    (x,) = s.assign()
    assert x.slot_id == "s1"
    s.set_available("s2", True, 1)
    assert s.finish("s1", "infra_error", "dropped") is None
    (y,) = s.assign()
    assert (y.slot_id, y.attempt) == ("s2", 2)


def test_consecutive_infra_errors_quarantine_until_healthy() -> None:
    s = Scheduler(quarantine_after=2)
    s.submit("j", runs("j", 5), ["s1"], retries=10)
    for _ in range(2):
        s.assign()
        s.finish("s1", "infra_error", "x", now=0)
    assert s.slot_state("s1") is SlotState.QUARANTINED and s.assign() == []
    s.set_available("s1", True, 2)
    assert s.slot_state("s1") is SlotState.IDLE and len(s.assign()) == 1


def test_runs_stranded_on_a_dead_slot_end_infra_error_after_grace() -> None:
    s = Scheduler(offline_grace_s=30)
    s.submit("j", runs("j", 3), ["s1"], retries=1)
    s.set_available("s1", False, 100, SlotState.OFFLINE)
    assert s.assign() == [] and s.stranded(120) == []
    finals = s.stranded(131)
    assert sorted(f.run.run_id for f in finals) == ["j-0", "j-1", "j-2"]
    assert {f.status for f in finals} == {"infra_error"} and "offline" in finals[0].error
    assert s.job_done("j")


def test_runs_on_an_untrusted_slot_end_at_once_with_its_reason() -> None:
    s = Scheduler(offline_grace_s=60)
    s.submit("j", runs("j", 2), ["s1"], retries=3)
    s.set_available("s1", False, 100, SlotState.UNTRUSTED, reason="HOST KEY CHANGED for [h]:22")
    assert s.assign() == [] and s.slot_reason("s1") == "HOST KEY CHANGED for [h]:22"
    finals = s.stranded(100)  # no grace period: waiting does not fix a refused key
    assert sorted(f.run.run_id for f in finals) == ["j-0", "j-1"] and {f.attempt for f in finals} == {1}
    assert all(f.status == "infra_error" and "untrusted: HOST KEY CHANGED" in f.error for f in finals)
    assert s.job_done("j") and s.slot_state("s1") is SlotState.UNTRUSTED
    s.set_available("s1", True, 200)
    assert s.slot_state("s1") is SlotState.IDLE and s.slot_reason("s1") == ""


def test_unauthorized_slot_gets_no_runs() -> None:
    s = Scheduler()
    s.submit("j", runs("j", 2), ["s1"], retries=0)
    s.mark_slot("s1", SlotState.UNAUTHORIZED, 0)
    assert s.assign() == [] and s.slot_state("s1") is SlotState.UNAUTHORIZED


def test_cancel_drops_pending_runs_without_enumerating_the_plan() -> None:
    plan = Counting(runs("j", 1000))
    s = Scheduler(low_water=4)
    s.submit("j", plan, ["s1"], retries=0)
    s.assign()  # one running
    dropped = s.cancel("j")
    assert 1 <= dropped <= 4 and plan.pulled <= 5
    assert s.progress("j")["queued"] == 0 and s.assign() == []
    assert not s.job_done("j")  # the running one still has to report
    assert plan.pulled <= 5  # asking whether it is done pulls nothing either
    s.finish("s1", "cancelled")
    assert s.job_done("j") and plan.pulled <= 5


def test_resubmission_skips_done_runs() -> None:
    s = Scheduler()
    s.submit("j", runs("j", 4), ["s1"], retries=0, skip={"j-0", "j-2"})
    got = []
    while xs := s.assign():
        got.append(xs[0].run.run_id)
        s.finish("s1", "ok")
    assert got == ["j-1", "j-3"] and s.progress("j")["skipped"] == 2 and s.job_done("j")


# ----- adaptive repeats: the scheduler is fed each run's headline value and adds repeats lazily ---------------
def _adaptive(min_: int = 3, max_: int = 6, ci: float = 2.0) -> tuple[AdaptiveRepeats, list[RunSpec]]:
    from farm.stability import StoppingRule

    adaptive = AdaptiveRepeats("j", "x", StoppingRule(min_, max_, ci))
    # two points on s1, interleaved: repeat 0 of both, then repeat 1 of both, … (order interleave)
    base = [RunSpec("", "s1", {"p": p}, 0, False, p) for p in (0, 1)]
    return adaptive, [adaptive.repeat_run(b, r) for r in range(min_) for b in base]


def _drive(s: Scheduler, values: dict[int, Iterator[float]]) -> list[tuple[int, int, Final]]:
    """Run everything on s1, feeding point p the values of ``values[p]``; (point, repeat, final) in order."""
    out = []
    while True:
        leased = s.assign()
        if not leased:
            return out
        (a,) = leased
        p = int(a.run.params["p"])
        final = s.finish("s1", "ok", value=next(values[p]))
        assert final is not None
        out.append((p, a.run.repeat, final))


def test_a_stable_point_stops_at_min_and_a_noisy_one_goes_to_max() -> None:
    adaptive, plan = _adaptive()
    s = Scheduler()
    s.submit("j", plan, ["s1"], retries=0, adaptive=adaptive)
    done = _drive(s, {0: iter([100.0, 100.1, 99.9]), 1: iter([100.0, 140.0, 60.0, 120.0, 80.0, 110.0])})
    assert [r for p, r, _ in done if p == 0] == [0, 1, 2]
    assert [r for p, r, _ in done if p == 1] == [0, 1, 2, 3, 4, 5]
    assert s.job_done("j")
    closing = {p: f.closing for p, _, f in done if f.closing is not None}
    assert closing[0] is not None and closing[0]["repeat_count"] == 3 and closing[0]["ci_method"] == "t"
    assert closing[1] is not None and closing[1]["repeat_count"] == 6
    assert float(closing[1]["ci_rel_pct"] or 0) > 2.0  # closed by max, not by stability
    assert sum(f.added for _, _, f in done) == 3
    # only the run that closed a point carries the decision
    assert [f.closing is not None for p, _, f in done if p == 1] == [False] * 5 + [True]


def test_added_repeats_have_the_run_ids_of_a_fixed_repeat_count() -> None:
    adaptive, plan = _adaptive(min_=2, max_=4, ci=0.001)
    s = Scheduler()
    s.submit("j", plan, ["s1"], retries=0, adaptive=adaptive)
    done = _drive(s, {p: itertools.cycle([1.0, 2.0]) for p in (0, 1)})
    expected = {run_id("j", "s1", {"p": p}, r) for p in (0, 1) for r in range(4)}
    assert {f.run.run_id for _, _, f in done} == expected


def test_failed_runs_count_toward_max_without_a_value() -> None:
    adaptive, plan = _adaptive(min_=2, max_=4)
    s = Scheduler()
    s.submit("j", plan[::2], ["s1"], retries=0, adaptive=adaptive)  # point 0 only
    finals = []
    while leased := s.assign():
        final = s.finish(leased[0].slot_id, "failed", "exit code 1")
        assert final is not None
        finals.append(final)
    assert len(finals) == 4  # no value ever: no interval, so it runs to max and stops
    closing = finals[-1].closing
    assert closing is not None and closing["repeat_count"] == 4 and closing["ci_low"] is None


def test_repeats_done_by_an_earlier_submission_are_skipped_not_rerun() -> None:
    adaptive, plan = _adaptive(min_=2, max_=5, ci=0.001)
    done_before = {run_id("j", "s1", {"p": 0}, 2)}
    s = Scheduler()
    s.submit("j", plan[::2], ["s1"], retries=0, skip=done_before, adaptive=adaptive)
    ran = [r for _, r, _ in _drive(s, {0: itertools.cycle([1.0, 2.0])})]
    assert ran == [0, 1, 3, 4]


def test_grid_order_runs_the_added_repeat_next() -> None:
    adaptive, plan = _adaptive(min_=2, max_=3, ci=0.001)
    grid = sorted(plan, key=lambda r: (r.params["p"], r.repeat))  # order grid: a point's repeats back to back
    s = Scheduler()
    s.submit("j", grid, ["s1"], retries=0, adaptive=adaptive, grid_order=True)
    order = [(p, r) for p, r, _ in _drive(s, {p: itertools.cycle([1.0, 2.0]) for p in (0, 1)})]
    assert order == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_cancel_adds_no_repeat_and_closes_the_point() -> None:
    adaptive, plan = _adaptive(min_=2, max_=6, ci=0.001)
    s = Scheduler()
    s.submit("j", plan[::2], ["s1"], retries=0, adaptive=adaptive)
    assert len(s.assign()) == 1
    assert s.finish("s1", "ok", value=1.0) is not None
    assert len(s.assign()) == 1
    s.cancel("j")
    final = s.finish("s1", "ok", value=5.0)
    assert final is not None and final.added == 0 and final.closing is not None
    assert final.closing["repeat_count"] == 2 and s.assign() == [] and s.job_done("j")


def test_a_resubmission_decides_with_the_values_done_before() -> None:
    adaptive, plan = _adaptive(min_=3, max_=6)
    first = [r for r in plan if r.params["p"] == 0]
    second = [r for r in plan if r.params["p"] == 1]
    done = {r.run_id for r in first + second}  # an earlier submission ran every planned repeat, then stopped
    known = {r.run_id: v for r, v in zip(first, [100.0, 100.1, 99.9], strict=True)}  # stable: closed
    known |= {r.run_id: v for r, v in zip(second, [100.0, 140.0, 60.0], strict=True)}  # noisy: was interrupted
    s = Scheduler()
    s.submit("j", plan, ["s1"], retries=0, skip=done, adaptive=adaptive, known=known)
    done_now = _drive(s, {1: iter([120.0, 80.0, 110.0])})
    assert [(p, r) for p, r, _ in done_now] == [(1, 3), (1, 4), (1, 5)]  # only the noisy point goes on
    assert sum(f.added for _, _, f in done_now) == 3  # each added repeat is reported once, even before a run ends
    closing = done_now[-1][2].closing
    assert closing is not None and closing["repeat_count"] == 6


# ----- batches: a job of short runs leases a slot several runs at once ------------------------------------------
def test_a_batch_leases_several_runs_and_frees_the_slot_when_each_is_over() -> None:
    s = Scheduler(low_water=2)
    s.submit("j", runs("j", 10), ["s1"], retries=0)
    s.set_batch("j", 4)
    leased = s.assign()
    assert [(a.slot_id, a.run.run_id) for a in leased] == [("s1", f"j-{i}") for i in range(4)]
    assert s.progress("j")["running"] == 4
    for i in (0, 2, 1):  # in any order, by run id
        final = s.finish("s1", "ok", run_id=f"j-{i}")
        assert final is not None and final.run.run_id == f"j-{i}"
        assert s.slot_state("s1") is SlotState.BUSY and s.assign() == []
    s.finish("s1", "ok", run_id="j-3")
    assert s.slot_state("s1") is SlotState.IDLE
    assert [a.run.run_id for a in s.assign()] == ["j-4", "j-5", "j-6", "j-7"]


def test_runs_a_batch_did_not_start_go_back_first_in_order_with_no_attempt_counted() -> None:
    s = Scheduler()
    s.submit("j", runs("j", 6), ["s1"], retries=1)
    s.set_batch("j", 4)
    s.assign()
    assert s.finish("s1", "infra_error", run_id="j-0") is None  # retried
    s.release("s1", ["j-1", "j-2", "j-3"])
    assert s.slot_state("s1") is SlotState.IDLE and s.progress("j")["running"] == 0
    again = s.assign()
    assert [(a.run.run_id, a.attempt) for a in again] == [("j-1", 1), ("j-2", 1), ("j-3", 1), ("j-0", 2)]


def test_a_cancelled_jobs_unstarted_batch_runs_are_dropped() -> None:
    s = Scheduler()
    s.submit("j", runs("j", 6), ["s1"], retries=0)
    s.set_batch("j", 3)
    s.assign()
    s.cancel("j")
    s.finish("s1", "cancelled", run_id="j-0")
    s.release("s1", ["j-1", "j-2"])
    assert s.progress("j")["queued"] == 0 and s.job_done("j") and s.slot_state("s1") is SlotState.IDLE


def test_a_shared_queue_batch_and_an_adaptive_job_keeps_one_run_per_lease() -> None:
    s = Scheduler()
    s.submit("any", runs("a", 8, slot=None, candidates=("s1", "s2")), ["s1", "s2"], retries=0)
    s.set_batch("any", 3)
    leased = s.assign()
    by_slot = [slot for slot, _ in itertools.groupby(a.slot_id for a in leased)]  # each slot's runs side by side
    assert sorted(by_slot) == ["s1", "s2"] and len(leased) == 6
    adaptive, plan = _adaptive()
    s2 = Scheduler()
    s2.submit("ad", plan, ["s1"], retries=0, adaptive=adaptive)
    s2.set_batch("ad", 8)
    assert len(s2.assign()) == 1


def test_finishing_a_run_the_slot_does_not_hold_is_refused() -> None:
    s = Scheduler()
    s.submit("j", runs("j", 2), ["s1"], retries=0)
    s.assign()
    with pytest.raises(ValueError, match="no run 'j-1'"):
        s.finish("s1", "ok", run_id="j-1")
