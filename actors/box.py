"""Accelerator boxes reached over SSH (Sophgo TPU, Ascend NPU): one slot per chip, and a status poller shared by
a box's concurrent slots. What every SSH device shares (connection, health, ``~``, the synthetic label, the host
fingerprint) is :class:`actors.ssh_device.SshDevice`.

* :class:`BoxMonitor` — polls one status command (``bm-smi``, ``npu-smi info``) while at least one run is in
  flight, for all of them at once: every poll reports every chip, and each run's :class:`MonitorWatch` keeps
  the maxima of its own chip. Polls come 0.2 s and 0.5 s after a run joins (a short run still gets a reading),
  then every ``interval_s``. A poll counts for the runs in flight when it began, even when its answer comes
  back after a run ended (a run's sampler waits up to 5 s for it: on a slow link a reading taken mid-run
  often arrives late); a poll that fails (link down) is skipped, the run itself reports the fault.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from actors.bench.host import BoxBench, saved_file
from actors.bench.session import BenchControl, SavedFile
from actors.device import RunSampler
from actors.ssh_device import SshDevice
from farm.errors import FarmError, OutputParseError
from farm.probes.power import ColumnValue, PowerSample, sampled_energy
from farm.specs.inventory import AscendDevice, Slot, SophgoDevice

log = logging.getLogger(__name__)

Reading = dict[str, float]
"""One poll's figures for one chip / NPU, e.g. ``{"mem_used_mb": 1024.0, "util_pct": 87.0}``."""

_FIRST_GAPS_S = (0.2, 0.5)  # after a run joins the monitor: early readings for short runs, then the interval
_DELIVERY_WAIT_S = 5.0


# -- the shared status poller -----------------------------------------------------------------------------------


class MonitorWatch:
    """The maxima of one chip's readings over the polls made while one run was in flight (a RunSampler)."""

    def __init__(self, monitor: BoxMonitor, index: int, columns: Mapping[str, str], source: str = "") -> None:
        self.monitor = monitor
        self.source = source  # the energy source name of the tool's ``power_w`` readings ("npu_smi", "bm_smi")
        self.power: list[PowerSample] = []  # the chip's ``power_w`` at each poll while the run was watched
        self.idle: list[PowerSample] = []
        self.window = (0.0, 0.0)
        self.index = index
        self.columns = dict(columns)  # reading key → row column
        self.last_at = 0.0
        self.in_flight = 0  # polls begun while this run was watched and not yet delivered
        self.attempts = 0
        self.polls = 0
        self.poll_seconds = 0.0
        self.peaks: dict[str, float] = {}

    def measure_idle(self) -> bool | None:
        """The idle baseline: one fresh poll right before the run (the chip's own power, whatever its neighbours
        run). Whether the tool reported the chip's power; None when the poll failed."""
        try:
            reading = self.monitor.current(max_age_s=0.0).get(self.index, {})
        except FarmError:
            return None
        if "power_w" in reading:
            self.idle.append(PowerSample(time.monotonic(), reading["power_w"]))
        return "power_w" in reading

    def start(self, pid: int) -> None:
        self.window = (time.monotonic(), 0.0)
        self.monitor.attach(self)

    def next_due(self, interval_s: float) -> float:
        gap = _FIRST_GAPS_S[self.attempts] if self.attempts < len(_FIRST_GAPS_S) else interval_s
        return self.last_at + gap

    def feed(self, at: float, readings: Mapping[int, Reading] | None, seconds: float) -> None:
        self.attempts += 1
        self.last_at = at
        if readings is None:
            return
        self.polls += 1
        self.poll_seconds += seconds
        chip = readings.get(self.index, {})
        if "power_w" in chip and self.window[0] <= at:
            self.power.append(PowerSample(at, chip["power_w"]))
        for key, value in chip.items():
            if key in self.columns:
                self.peaks[key] = max(self.peaks.get(key, value), value)

    def stop(self) -> dict[str, float]:
        self.window = (self.window[0], time.monotonic())
        self.monitor.detach(self)
        samples = {self.columns[key]: round(value, 3) for key, value in self.peaks.items()}
        samples["sampler_polls"] = float(self.polls)
        if self.polls:
            samples["sampler_poll_ms"] = round(1000.0 * self.poll_seconds / self.polls, 3)
        return samples

    def energy_columns(self) -> dict[str, ColumnValue]:
        """The chip's energy from the tool's power readings (none: no columns)."""
        if not self.power and not self.idle:
            return {}
        start, end = self.window
        return sampled_energy(self.source, self.power, self.idle, start, end).columns()


class BoxMonitor:
    """One status command polled for all runs in flight on a box (see the module docstring). Thread-safe."""

    def __init__(self, read: Callable[[], dict[int, Reading]], *, interval_s: float = 1.0, label: str = "") -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self._read = read
        self.interval_s = interval_s
        self.label = label
        self._cond = threading.Condition()
        self._watches: list[MonitorWatch] = []
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()  # one poll at a time, whoever asks
        self._last: tuple[float, dict[int, Reading]] | None = None
        self.polls = 0  # every poll made, for every run: the box-side cost is this, not the sum over runs

    def watch(self, index: int, columns: Mapping[str, str], source: str = "") -> MonitorWatch:
        return MonitorWatch(self, index, columns, source)

    def attach(self, watch: MonitorWatch) -> None:
        with self._cond:
            watch.last_at = time.monotonic()
            self._watches.append(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"box-monitor-{self.label}", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def detach(self, watch: MonitorWatch) -> None:
        """Stop watching; first wait (briefly) for a poll begun while the run was going: on a slow link its
        reading, taken during the run, often arrives after the run has ended."""
        deadline = time.monotonic() + _DELIVERY_WAIT_S
        with self._cond:
            if watch in self._watches:
                self._watches.remove(watch)
            self._cond.notify_all()
            while watch.in_flight and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))

    def current(self, max_age_s: float) -> dict[int, Reading]:
        """The latest readings, polling now unless a poll younger than ``max_age_s`` already has them."""
        last = self._last
        if last is not None and time.monotonic() - last[0] <= max_age_s:
            return last[1]
        return self._poll()[0]

    def _poll(self) -> tuple[dict[int, Reading], float]:
        with self._poll_lock:
            t0 = time.monotonic()
            readings = self._read()
            self.polls += 1
            self._last = (time.monotonic(), readings)
            return readings, time.monotonic() - t0

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._watches:
                        self._thread = None
                        return
                    now = time.monotonic()
                    due = min(w.next_due(self.interval_s) for w in self._watches)
                    if due <= now:
                        break
                    self._cond.wait(due - now)
                started = time.monotonic()
                # runs that started after the poll began are not fed by it: it may have read the chip before
                targets = list(self._watches)
                for w in targets:
                    w.in_flight += 1
            readings: dict[int, Reading] | None
            try:
                readings, seconds = self._poll()
            except FarmError as exc:  # the box dropped: the run reports that; the monitor just skips this poll
                log.debug("%s: status poll failed: %s", self.label, exc)
                readings, seconds = None, 0.0
            with self._cond:
                for w in targets:
                    w.feed(started, readings, seconds)
                    w.in_flight -= 1
                self._cond.notify_all()


class AcceleratorBox(SshDevice):
    """A box with one slot per accelerator (TPU chip, NPU), all watched by one status tool (``bm-smi``,
    ``npu-smi``) whose single poll serves every run in flight on the box."""

    sample_interval_s = 1.0
    columns: Mapping[str, str] = {}  # the tool's reading name → the row column of its peak over a run
    energy_source = ""  # the name the energy columns give the tool's power readings

    def _watch_accelerators(
        self, read: Callable[[], dict[int, Reading]], declared: list[int] | None, field: str, tool: str, what: str
    ) -> None:
        """Start the shared monitor and learn the slots: the inventory's ``field`` list, or what ``tool`` lists
        once at start (falling back to index 0 when it cannot answer)."""
        self.monitor = BoxMonitor(read, interval_s=self.sample_interval_s, label=self.spec.id)
        self._box_bench = BoxBench(read, tool, self.kind)
        self._reports_power: bool | None = None
        spec = self.spec
        assert isinstance(spec, SophgoDevice | AscendDevice)
        if declared is not None:
            self._slots = spec.slots()
        else:
            try:
                found = sorted(read())
                log.info("%s: %s lists %s %s", spec.id, tool, what, found)
                self._slots = spec.model_copy(update={field: found}).slots()
            except FarmError as exc:
                log.warning(
                    "%s: cannot list %s with %s (%s); using index 0 only — list `%s:` in the inventory to use "
                    "every one whatever the box's state when the farm starts",
                    spec.id,
                    what,
                    tool,
                    exc,
                    field,
                )
                self._slots = spec.slots()
        self._index = {s.slot_id: s.index for s in self._slots}

    def slots(self) -> list[Slot]:
        return list(self._slots)

    def bench_control(self) -> tuple[BenchControl, SavedFile]:
        return self._box_bench, saved_file(self.ssh, ".cache/farm", self.spec.id)

    def sampler(self, slot_id: str) -> RunSampler:
        watch = self.monitor.watch(self._index.get(slot_id) or 0, self.columns, self.energy_source)
        if self._reports_power is not False:  # a tool that printed no power once is not asked before each run
            reported = watch.measure_idle()
            self._reports_power = self._reports_power if reported is None else reported
        return watch

    def temperature_c(self) -> float | None:
        try:
            readings = self.monitor.current(max_age_s=2.0)
        except OutputParseError:
            return None
        temps = [r["temp_c"] for r in readings.values() if "temp_c" in r]
        return max(temps) if temps else None
