"""Energy samplers that any device kind can attach to a run: RAPL counters of this machine, an external meter.

Each one measures an idle baseline right before the run (:data:`IDLE_WINDOW_S`), is a
:class:`~actors.device.RunSampler` for the run itself, and gives the row's ``energy_*`` columns through
``energy_columns()`` (:func:`energy_columns` reads them off any sampler). The maths are in
:mod:`farm.probes.power`; the meaning and limits of each source are in ``docs/measurement.md``.

* :class:`RaplSampler` — ``/sys/class/powercap/intel-rapl:*`` package and dram domains, read at the start and
  the end of the run (the counters integrate in hardware; nothing to sample in between).
* :class:`MeterSampler` — the inventory's ``energy_meter: {command: [...]}``, started on the device's node as a
  child process that prints watts, one number per line; lines are timestamped as they arrive.
* :class:`WithEnergy` — a device kind's own sampler plus one of these: both watch the run, the energy columns
  come from the energy sampler.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Protocol

from farm.errors import FarmError, OutputParseError
from farm.probes.power import (
    ColumnValue,
    EnergyReading,
    PowerSample,
    parse_watts,
    rapl_delta_uj,
    rapl_kind,
    sampled_energy,
)

log = logging.getLogger(__name__)

#: The idle baseline: how long power is watched right before a run, with the device otherwise idle.
IDLE_WINDOW_S = 0.5
POWERCAP = Path("/sys/class/powercap")


class Watch(Protocol):
    """What :class:`actors.device.RunSampler` is (restated here: the device module imports this one)."""

    def start(self, pid: int) -> Callable[[], None] | None: ...

    def stop(self) -> dict[str, float]: ...


class EnergySampler(Watch, Protocol):
    def energy_columns(self) -> dict[str, ColumnValue]: ...


def energy_columns(sampler: Watch) -> dict[str, ColumnValue]:
    """The energy columns of a sampler that measures energy, ``{}`` for any other."""
    columns = getattr(sampler, "energy_columns", None)
    return dict(columns()) if callable(columns) else {}


class WithEnergy:
    """Runs a device kind's sampler and an energy sampler side by side; the energy columns are the latter's."""

    def __init__(self, inner: Watch, energy: EnergySampler) -> None:
        self.inner = inner
        self.energy = energy

    def start(self, pid: int) -> Callable[[], None] | None:
        self.energy.start(pid)
        return self.inner.start(pid)  # its poll, if it has one (the energy samplers run their own clocks)

    def stop(self) -> dict[str, float]:
        samples = self.energy.stop()
        samples.update(self.inner.stop())
        return samples

    def energy_columns(self) -> dict[str, ColumnValue]:
        return self.energy.energy_columns()


# -- RAPL ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaplDomain:
    """One powercap zone that counts: ``kind`` ``package`` or ``dram``; its counter file and wrap range."""

    kind: str
    energy_file: PurePath  # on this machine, or on a remote host (read by the sampler's ``read``)
    max_range_uj: int


def rapl_domains(root: Path = POWERCAP) -> list[RaplDomain]:
    """The package and dram zones under ``root`` (``intel-rapl:N``, ``intel-rapl:N:M``); ``[]`` when absent."""
    domains = []
    for zone in sorted(root.glob("intel-rapl:*")):
        try:
            kind = rapl_kind((zone / "name").read_text().strip())
            max_range = int((zone / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            continue
        if kind is not None:
            domains.append(RaplDomain(kind, zone / "energy_uj", max_range))
    return domains


def read_local_counters(domains: list[RaplDomain]) -> list[int]:
    return [int(Path(d.energy_file).read_text().strip()) for d in domains]


def rapl_listing_script(root: str = str(POWERCAP)) -> str:
    """Shell printing ``<zone dir> <name> <max_energy_range_uj>`` per RAPL zone of a remote host."""
    return (
        f"for z in {shlex.quote(root)}/intel-rapl:*; do "
        '[ -r "$z/name" ] && echo "$z $(cat "$z/name") $(cat "$z/max_energy_range_uj")"; done; exit 0'
    )


def parse_rapl_listing(text: str) -> list[RaplDomain]:
    """The package and dram zones of :func:`rapl_listing_script` output."""
    domains = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit() and (kind := rapl_kind(parts[1])) is not None:
            domains.append(RaplDomain(kind, PurePosixPath(parts[0]) / "energy_uj", int(parts[2])))
    return domains


class RaplSampler:
    """Energy of a run on this machine from RAPL counters (see the module docstring)."""

    def __init__(
        self,
        domains: list[RaplDomain],
        idle_window_s: float = IDLE_WINDOW_S,
        read: Callable[[list[RaplDomain]], list[int]] | None = None,
    ) -> None:
        self.domains = domains
        self.idle_window_s = idle_window_s
        self._read_counters = read or read_local_counters
        self.problem: str | None = None
        self.idle_power_w: float | None = None
        self._start: tuple[float, list[int]] | None = None
        self._end: tuple[float, list[int]] | None = None

    def _read(self) -> tuple[float, list[int]] | None:
        try:
            values = self._read_counters(self.domains)
        except (OSError, ValueError, FarmError) as exc:
            # Since Linux 5.10 (the Platypus fix) energy_uj is readable by root only.
            self.problem = f"RAPL counters not readable: {exc}"
            return None
        return time.monotonic(), values

    def _joules(self, a: tuple[float, list[int]], b: tuple[float, list[int]]) -> list[float]:
        return [rapl_delta_uj(x, y, d.max_range_uj) / 1e6 for d, x, y in zip(self.domains, a[1], b[1], strict=True)]

    def measure_idle(self) -> None:
        before = self._read()
        if before is None:  # unreadable: the row says why; no point waiting
            return
        time.sleep(self.idle_window_s)
        after = self._read()
        if after is not None and after[0] > before[0]:
            self.idle_power_w = sum(self._joules(before, after)) / (after[0] - before[0])
        # The run starts from this read: read at start() (once the pid is known, an SSH round trip later on a
        # remote host) a short command would already be over.
        self._start = after

    def start(self, pid: int) -> None:
        if self._start is None:
            self._start = self._read()

    def stop(self) -> dict[str, float]:
        self._end = self._read()
        return {}

    def energy_columns(self) -> dict[str, ColumnValue]:
        if self._start is None or self._end is None:
            return EnergyReading("rapl", None, 0.0, 0, None, self.idle_power_w, self.problem).columns()
        joules = self._joules(self._start, self._end)
        cols = EnergyReading(
            "rapl", sum(joules), self._end[0] - self._start[0], 2, None, self.idle_power_w, self.problem
        ).columns()
        for kind in ("package", "dram"):
            parts = [j for d, j in zip(self.domains, joules, strict=True) if d.kind == kind]
            if parts:
                cols[f"energy_{kind}_j"] = round(sum(parts), 6)
        return cols


# -- external meter ------------------------------------------------------------------------------------------------


class MeterSampler:
    """Watts printed by a meter command while a run goes (see the module docstring). Start it right before the
    run: its first :data:`IDLE_WINDOW_S` of readings are the idle baseline."""

    def __init__(self, command: list[str], idle_window_s: float = IDLE_WINDOW_S) -> None:
        self.command = list(command)
        self.idle_window_s = idle_window_s
        self.readings: list[PowerSample] = []
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._opened = 0.0
        self._start = 0.0
        self._end = 0.0

    def measure_idle(self) -> None:
        """Start the meter and wait out the idle window."""
        self._opened = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,  # its own group: stopping it stops a wrapper's children too
            )
        except OSError as exc:
            self.problem = f"energy meter {self.command[0]!r} could not start: {exc}"
            return
        self._thread = threading.Thread(target=self._read, name="energy-meter", daemon=True)
        self._thread.start()
        time.sleep(self.idle_window_s)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            now = time.monotonic()
            if not line.strip():
                continue
            try:
                watts = parse_watts(line)
            except OutputParseError as exc:
                with self._lock:
                    self.problem = self.problem or str(exc)
                continue
            with self._lock:
                self.readings.append(PowerSample(now, watts))

    def start(self, pid: int) -> None:
        self._start = time.monotonic()

    def stop(self) -> dict[str, float]:
        self._end = time.monotonic()
        proc = self._proc
        if proc is not None:
            code = proc.poll()
            if code is not None and self.problem is None:
                self.problem = f"energy meter exited with code {code} before the run ended"
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5.0)
        if self._thread is not None:
            self._thread.join(5.0)
        return {}

    def energy_columns(self) -> dict[str, ColumnValue]:
        if not self._start and self.problem is None:
            return {}  # the command never started: no run to put an energy on
        with self._lock:
            readings = list(self.readings)
        idle = [r for r in readings if r.t < self._start]
        run = [r for r in readings if self._start <= r.t <= self._end]
        return sampled_energy("meter", run, idle, self._start, self._end, self.problem).columns()
