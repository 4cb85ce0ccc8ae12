"""Energy of one run from power readings: fuel gauge conventions, RAPL counters, meter lines, integration, columns.

Pure functions and records; the samplers that read a device live with its device kind (:mod:`actors.energy`,
:mod:`actors.phone`). What each source means and its limits: ``docs/measurement.md`` (``## Energy``).

* **Integration** — :func:`integrate_j`: trapezoid between timestamped power samples; the first value is held back
  to the start of the run and the last one forward to its end (a run's edges are where its load steps, so a
  straight line from an idle reading before the run to a busy one inside it would be wrong by half a gap).
* **Fuel gauge** — :func:`gauge_power`: ``current_now`` / ``voltage_now`` / ``status`` of
  ``/sys/class/power_supply/battery``. Units and sign differ between vendors and are detected per run:
  ``voltage_now`` above 100 000 is µV (the kernel ABI), else mV; ``current_now`` is µA when any reading of the
  run or its idle window is 10 000 or more in magnitude (a phone never draws 10 A, and a phone running a
  benchmark draws far more than 10 mA), else mA; the discharge sign is the sign of the summed currents while
  ``status`` says the battery is discharging. Energy is invalid when ``status`` reads ``Charging``, ``Full`` or
  ``Not charging`` (a charger powers the phone and holds the battery) at any reading, or when readings of the
  other sign and more than a tenth of the typical magnitude appear (a charger fed the phone for part of the
  run).
* **RAPL** — :func:`rapl_delta_uj`: ``energy_uj`` counters wrap at ``max_energy_range_uj``; a counter that went
  down wrapped once (runs longer than one wrap period, hours at package power, are undercounted).
* **External meter** — :func:`parse_watts`: one number of watts per line.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from farm.errors import OutputParseError

ColumnValue = float | bool | str

_UV_THRESHOLD = 100_000  # voltage_now above this is µV
_UA_THRESHOLD = 10_000  # any |current_now| at or above this: the gauge counts µA
_REVERSED_SHARE = 0.1  # opposite-sign readings above this share of the median magnitude: a charger was on
_CHARGING = ("charging", "full", "not charging")  # "Not charging": on a charger that holds the battery
_TOKEN_COUNTS = ("prefill_tokens", "decode_tokens")


@dataclass(frozen=True)
class PowerSample:
    """One power reading: ``t`` seconds on a monotonic clock, ``watts``."""

    t: float
    watts: float


def integrate_j(samples: Sequence[PowerSample], start: float, end: float) -> float | None:
    """Joules over ``[start, end]`` from the samples inside it (trapezoid; edge values held); None if none."""
    inside = sorted((s for s in samples if start <= s.t <= end), key=lambda s: s.t)
    if not inside or end < start:
        return None
    total = inside[0].watts * (inside[0].t - start) + inside[-1].watts * (end - inside[-1].t)
    for a, b in itertools.pairwise(inside):
        total += 0.5 * (a.watts + b.watts) * (b.t - a.t)
    return total


def mean_power_w(samples: Sequence[PowerSample]) -> float | None:
    """Time-weighted mean power of samples (their plain mean when they share one timestamp); None if empty."""
    if not samples:
        return None
    span = samples[-1].t - samples[0].t
    if span <= 0:
        return sum(s.watts for s in samples) / len(samples)
    energy = integrate_j(samples, samples[0].t, samples[-1].t)
    return None if energy is None else energy / span


def mean_period_s(samples: Sequence[PowerSample]) -> float | None:
    if len(samples) < 2:
        return None
    return (samples[-1].t - samples[0].t) / (len(samples) - 1)


@dataclass(frozen=True)
class GaugeReading:
    """Raw fuel gauge files at one moment: ``current_now``, ``voltage_now`` (integers as printed), ``status``."""

    t: float
    current: int
    voltage: int
    status: str


def parse_gauge(t: float, text: str) -> GaugeReading | None:
    """``current_now``, ``voltage_now`` and ``status`` lines (in that order) → a reading; None if unreadable.
    ``status`` is the whole line (``Not charging`` is two words)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 3:
        return None
    try:
        return GaugeReading(t, int(lines[0]), int(lines[1]), lines[2])
    except ValueError:
        return None


@dataclass(frozen=True)
class GaugePower:
    """Fuel gauge readings turned into watts, with the conventions detected (see the module docstring)."""

    samples: list[PowerSample]
    current_unit: str  # "uA" or "mA"
    discharge_sign: int  # -1 or +1: the sign current_now has while the battery discharges
    problem: str | None  # why the energy is invalid, None when it is valid


def gauge_power(readings: Sequence[GaugeReading]) -> GaugePower:
    """Watts drawn from the battery at each reading; conventions detected over all ``readings`` together."""
    if not readings:
        return GaugePower([], "uA", -1, "no fuel gauge reading")
    unit_scale = 1e-6 if max(abs(r.current) for r in readings) >= _UA_THRESHOLD else 1e-3
    total = sum(r.current for r in readings)
    sign = -1 if total < 0 else 1
    problem = None
    charging = sorted({r.status for r in readings if r.status.lower() in _CHARGING})
    if charging:
        problem = f"the battery reported status {'/'.join(charging)}: a charger, not the battery, powered the phone"
    else:
        magnitudes = sorted(abs(r.current) for r in readings)
        typical = magnitudes[len(magnitudes) // 2]
        reversed_ = [r for r in readings if r.current * sign < 0 and abs(r.current) > _REVERSED_SHARE * typical]
        if reversed_:
            problem = f"{len(reversed_)} fuel gauge readings had the charging sign: a charger fed the phone"
    samples = [
        PowerSample(r.t, abs(r.current) * unit_scale * r.voltage * (1e-6 if r.voltage > _UV_THRESHOLD else 1e-3))
        for r in readings
    ]
    return GaugePower(samples, "uA" if unit_scale == 1e-6 else "mA", sign, problem)


@dataclass(frozen=True)
class EnergyReading:
    """The energy of one run and how it was obtained; :meth:`columns` are the row's ``energy_*`` columns."""

    source: str  # "fuel_gauge", "rapl", "meter", "npu_smi"
    energy_j: float | None
    duration_s: float
    samples: int
    period_s: float | None
    idle_power_w: float | None
    problem: str | None = None

    def columns(self) -> dict[str, ColumnValue]:
        cols: dict[str, ColumnValue] = {
            "energy_source": self.source,
            "energy_samples": float(self.samples),
            "energy_valid": self.problem is None and self.energy_j is not None,
        }
        if self.energy_j is not None:
            cols["energy_j"] = round(self.energy_j, 6)
            if self.duration_s > 0:
                cols["avg_power_w"] = round(self.energy_j / self.duration_s, 6)
        if self.period_s is not None:
            cols["energy_period_s"] = round(self.period_s, 6)
        if self.idle_power_w is not None:
            cols["idle_power_w"] = round(self.idle_power_w, 6)
        if self.problem is not None or self.energy_j is None:
            cols["energy_invalid_reason"] = self.problem or "no power reading during the run"
        return cols


def sampled_energy(
    source: str, run: Sequence[PowerSample], idle: Sequence[PowerSample], start: float, end: float,
    problem: str | None = None,
) -> EnergyReading:  # fmt: skip
    """The :class:`EnergyReading` of power samples taken during ``[start, end]`` plus an idle window before it."""
    return EnergyReading(
        source=source,
        energy_j=integrate_j(run, start, end),
        duration_s=max(0.0, end - start),
        samples=len(run),
        period_s=mean_period_s(run),
        idle_power_w=mean_power_w(idle),
        problem=problem,
    )


# -- RAPL ----------------------------------------------------------------------------------------------------------


def rapl_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Microjoules between two reads of one ``energy_uj`` counter, which wraps at ``max_energy_range_uj``."""
    return after - before if after >= before else after + max_range_uj - before


def rapl_kind(name: str) -> str | None:
    """``package`` for ``package-N``, ``dram`` for ``dram``; other domains (``core``, ``uncore``, ``psys``) are
    inside the package or overlap it and are not added."""
    if name.startswith("package"):
        return "package"
    if name == "dram":
        return "dram"
    return None


# -- external meter ------------------------------------------------------------------------------------------------


def parse_watts(line: str) -> float:
    """One meter line → watts; an :class:`OutputParseError` names the line when it is no finite number ≥ 0."""
    text = line.strip()
    try:
        value = float(text)
    except ValueError:
        raise OutputParseError(f"energy meter printed {text[:80]!r}, not a number of watts") from None
    if not math.isfinite(value) or value < 0:
        raise OutputParseError(f"energy meter printed {text[:80]!r}, not a finite, non-negative number of watts")
    return value


# -- per unit of work ----------------------------------------------------------------------------------------------


def per_unit_columns(metrics: Mapping[str, float], energy: Mapping[str, ColumnValue]) -> dict[str, float]:
    """``tokens_per_j`` / ``j_per_token`` (the run's ``prefill_tokens`` + ``decode_tokens`` over its whole energy,
    model loading included) and ``pictures_per_j`` (``throughput_pictures_per_s`` over ``avg_power_w``), when the
    energy is valid."""
    if energy.get("energy_valid") is not True:
        return {}
    out: dict[str, float] = {}
    joules = energy.get("energy_j")
    tokens = sum(v for k, v in metrics.items() if k in _TOKEN_COUNTS and math.isfinite(v))
    if isinstance(joules, float) and joules > 0 and tokens > 0:
        out["tokens_per_j"] = tokens / joules
        out["j_per_token"] = joules / tokens
    watts = energy.get("avg_power_w")
    rate = metrics.get("throughput_pictures_per_s")
    if isinstance(watts, float) and watts > 0 and rate is not None and math.isfinite(rate):
        out["pictures_per_j"] = rate / watts
    return out
