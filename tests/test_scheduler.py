"""The pure scheduler with plain objects: leases, fairness, lazy planning, retries, quarantine, cancel."""

from __future__ import annotations

from collections.abc import Iterator

from farm.plan import RunSpec
from farm.scheduler import Scheduler, SlotState


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
