"""Samplers on the in-memory fake transport: what each asks the device, what it makes of the answers, and that a
dropped link ends its watch without failing the run. No server: the fake answers the sampler's commands."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from actors.phone import PhoneLayout, PhoneSampler
from actors.ssh_host import RemoteRssSampler
from actors.transports.fake import FakeProcess, FakeTransport, Reply
from farm.errors import ConnectionLostError, DeviceOfflineError


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


# -- the phone's sampler ------------------------------------------------------------------------------------------


class PhoneLink(FakeTransport):
    """The fake with the adb transport's ``reconnect=`` (a sampler asks not to wait for a lost phone's return)."""

    def __init__(self, handler: Callable[[FakeProcess], Reply]) -> None:
        super().__init__(programs={"sh": handler}, label="fake-phone")
        self.reconnects_asked: list[bool] = []

    def check_output(self, argv: Sequence[str], *, timeout: float = 30.0, reconnect: bool = True) -> str:
        self.reconnects_asked.append(reconnect)
        return super().check_output(argv, timeout=timeout)


LAYOUT = PhoneLayout(
    props={},
    kernel="5.10",
    cpu_max_khz={0: 1_800_000, 4: 2_400_000},
    cpu_min_khz={0: 300_000, 4: 400_000},
    zones={0: "cpu-0-0", 3: "gpuss-0"},
    big_cores=(4,),
)


def _phone_answer(status: str, temps: str, freq: str) -> str:
    return f"{status}@@farm-thermal\n{temps}\n@@farm-freq\n{freq}\n"


def test_phone_sampler_reads_memory_heat_and_clocks_of_the_running_benchmark() -> None:
    def phone(proc: FakeProcess) -> Reply:
        script = proc.argv[2]
        if "/proc/" not in script:  # the closing poll, after the benchmark ended: temperature only
            return Reply(0, "@@farm-thermal\n41000 39000\n")
        return Reply(0, _phone_answer(_status(300 * 1024, 250 * 1024), "52000 48000", "1800000"))

    link = PhoneLink(phone)
    sampler = PhoneSampler(link, LAYOUT, interval_s=0.05)  # type: ignore[arg-type]  # duck-typed: the fake
    sampler.start(31337)
    _wait_for(lambda: len(link.processes) >= 2)
    samples = sampler.stop()
    assert samples["peak_rss_mib"] == 300.0
    assert samples["temp_max_c"] == 52.0 and samples["temp_end_c"] == 41.0
    assert samples["big_freq_ratio_min"] == 0.75 and samples["throttled"] == 1.0  # 1.8 of 2.4 GHz: below 90 %
    assert samples["sampler_polls"] == len(link.processes) and samples["sampler_poll_ms"] >= 0
    polls = [p.argv[2] for p in link.processes]
    assert all("cat /proc/31337/status" in s for s in polls[:-1]) and "/proc/" not in polls[-1]
    assert "thermal_zone0/temp" in polls[0] and "thermal_zone3/temp" in polls[0] and "cpu4/cpufreq" in polls[0]
    assert set(link.reconnects_asked) == {False}  # never stalls on a phone that went away


def test_phone_sampler_at_full_clock_is_not_throttled_and_drops_a_short_thermal_reading() -> None:
    def phone(proc: FakeProcess) -> Reply:
        # one zone unreadable: the values would shift, so the reading is dropped rather than misread
        return Reply(0, _phone_answer(_status(10 * 1024, 10 * 1024), "52000", "2400000"))

    link = PhoneLink(phone)
    sampler = PhoneSampler(link, LAYOUT, interval_s=0.05)  # type: ignore[arg-type]
    sampler.start(5)
    _wait_for(lambda: len(link.processes) >= 1)
    samples = sampler.stop()
    assert samples["throttled"] == 0.0 and samples["big_freq_ratio_min"] == 1.0
    assert "temp_max_c" not in samples and "temp_end_c" not in samples


def test_phone_sampler_stops_looking_when_the_phone_drops() -> None:
    def gone(proc: FakeProcess) -> Reply:
        raise DeviceOfflineError("fake-phone: offline")

    link = PhoneLink(gone)
    sampler = PhoneSampler(link, LAYOUT, interval_s=0.05)  # type: ignore[arg-type]
    sampler.start(5)
    _wait_for(lambda: len(link.processes) >= 1)
    samples = sampler.stop()
    assert samples == {"sampler_polls": 0.0}  # the run reports the fault; no figure is made up
    assert len(link.processes) == 2  # the one failed poll while running, the closing one
