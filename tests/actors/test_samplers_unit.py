"""Samplers on the in-memory fake transport: what each asks the device, what it makes of the answers, and that a
dropped link ends its watch without failing the run. No server: the fake answers the sampler's commands."""

from __future__ import annotations

import time
from collections.abc import Callable

from actors.ssh_host import RemoteRssSampler
from actors.transports.fake import FakeProcess, FakeTransport, Reply
from farm.errors import ConnectionLostError


def _status(hwm_kib: int, rss_kib: int) -> str:
    return f"VmHWM:\t{hwm_kib} kB\nVmRSS:\t{rss_kib} kB\n__farm_proc__\n"


def _answers(*replies: str) -> tuple[Callable[[FakeProcess], Reply], list[FakeProcess]]:
    """A handler giving ``replies`` in turn (the last one again once they run out) and the processes it saw."""
    seen: list[FakeProcess] = []

    def handler(proc: FakeProcess) -> Reply:
        seen.append(proc)
        return Reply(0, replies[min(len(seen), len(replies)) - 1])

    return handler, seen


def _wait_for(predicate: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_remote_rss_sampler_takes_the_larger_of_one_peak_and_the_summed_resident_set() -> None:
    handler, seen = _answers(
        _status(100 * 1024, 80 * 1024) + _status(50 * 1024, 40 * 1024),  # two processes: 80 + 40 > 100
        _status(150 * 1024, 30 * 1024),  # one process whose own peak is the largest figure yet
    )
    fake = FakeTransport(programs={"sh": handler})
    sampler = RemoteRssSampler(fake, interval_s=0.05)
    sampler.start(4242)
    _wait_for(lambda: len(seen) >= 2)
    samples = sampler.stop()
    assert samples["peak_rss_mib"] == 150.0
    assert samples["sampler_polls"] >= 2 and samples["sampler_poll_ms"] >= 0
    # every poll reads the run's process group, in one round trip each
    assert all(p.argv[:2] == ("sh", "-c") and "pgrep -g 4242" in p.argv[2] for p in seen)
    assert len(seen) == samples["sampler_polls"]


def test_remote_rss_sampler_sums_the_group_when_no_single_process_dominates() -> None:
    handler, seen = _answers(_status(100 * 1024, 80 * 1024) + _status(50 * 1024, 40 * 1024))
    sampler = RemoteRssSampler(FakeTransport(programs={"sh": handler}), interval_s=0.05)
    sampler.start(7)
    _wait_for(lambda: len(seen) >= 1)
    assert sampler.stop()["peak_rss_mib"] == 120.0


def test_remote_rss_sampler_stops_quietly_when_the_link_drops() -> None:
    calls: list[int] = []

    def dropped(proc: FakeProcess) -> Reply:
        calls.append(proc.pid)
        raise ConnectionLostError("fake: link dropped")

    sampler = RemoteRssSampler(FakeTransport(programs={"sh": dropped}), interval_s=0.05)
    sampler.start(7)
    _wait_for(lambda: len(calls) >= 1)
    samples = sampler.stop()
    assert samples == {"sampler_polls": 0.0} and len(calls) == 1  # no figure rather than a made-up one


def test_remote_rss_sampler_of_a_run_that_never_started_reports_nothing() -> None:
    fake = FakeTransport()
    assert RemoteRssSampler(fake).stop() == {} and fake.calls == []


def test_remote_rss_sampler_of_a_group_already_gone_has_no_peak() -> None:
    handler, seen = _answers("__farm_proc__\n")
    sampler = RemoteRssSampler(FakeTransport(programs={"sh": handler}), interval_s=0.05)
    sampler.start(7)
    _wait_for(lambda: len(seen) >= 1)
    samples = sampler.stop()
    assert "peak_rss_mib" not in samples and samples["sampler_polls"] >= 1
