"""The fuel gauge of a virtual phone: battery current that follows the CPU/GPU load, and the energy it dissipated.

Model (synthetic figures, not measurements of a phone): the phone draws ``idle_a + cpu_a·cpu + gpu_a·gpu`` amperes
(loads from :class:`~farm.sim.thermal.ThermalModel`, 0–1 each) at ``ocv_v − r_ohm·I`` volts. Load is piecewise
constant, so the model integrates its own power exactly between load changes (:meth:`FuelGauge.energy_between`):
a test compares the energy a sampler measured through adb against it.

``/sys/class/power_supply/battery/`` shows ``current_now``, ``voltage_now`` (µV), ``status``, ``capacity``,
``present``. The unit and sign of ``current_now`` follow a per-SoC :class:`GaugeConvention` (vendors differ: µA or
mA, discharge negative or positive), so the sampler's detection is exercised. With :attr:`FuelGauge.charging` on,
a charger feeds ``charge_a`` into the battery: ``current_now`` takes the charging sign and ``status`` reads
``Charging``, while the phone still dissipates its load power.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from farm.sim.filesystem import VirtualNode
from farm.sim.thermal import ThermalModel

SUPPLY_DIR = "/sys/class/power_supply"
BATTERY_DIR = f"{SUPPLY_DIR}/battery"
_FILE = re.compile(r"^/sys/class/power_supply/battery(?:/([a-z_]+))?$")
FILES = ("capacity", "current_now", "present", "status", "type", "voltage_now")
_MAX_SEGMENTS = 100_000


@dataclass(frozen=True)
class GaugeConvention:
    """How a fuel gauge prints ``current_now``: ``unit`` ``uA`` or ``mA``; its sign while discharging."""

    unit: str = "uA"
    discharge_sign: int = -1


#: Synthetic conventions per SoC profile (default: µA, negative while discharging).
CONVENTIONS: dict[str, GaugeConvention] = {"mt6983": GaugeConvention("mA", +1), "sm8450": GaugeConvention("uA", +1)}


class FuelGauge:
    """Battery current and voltage as a function of the load; integrates the power it models (thread-safe)."""

    idle_a = 0.15
    cpu_a = 1.2
    gpu_a = 0.9
    ocv_v = 4.1
    r_ohm = 0.1
    charge_a = 2.0

    def __init__(
        self, thermal: ThermalModel, convention: GaugeConvention, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.thermal = thermal
        self.convention = convention
        self._clock = clock
        self._lock = threading.Lock()
        self._charging = False  # a charger is plugged in and feeding
        #: The kernel's charge switch (``charging_enabled``, see :mod:`farm.sim.device_settings`): a plugged
        #: charger feeds the battery only while it is on.
        self.charge_switch: Callable[[], bool] = lambda: True
        self._segments: list[tuple[float, float]] = [(clock(), self._power_w())]  # (since, watts)
        thermal.listeners.append(self._changed)

    def _current_a(self) -> float:
        cpu, gpu = self.thermal.load()
        return self.idle_a + self.cpu_a * cpu + self.gpu_a * gpu

    def _voltage_v(self, current_a: float) -> float:
        return self.ocv_v - self.r_ohm * current_a

    def _power_w(self) -> float:
        current = self._current_a()
        return current * self._voltage_v(current)

    def _changed(self) -> None:
        with self._lock:
            self._segments.append((self._clock(), self._power_w()))
            del self._segments[:-_MAX_SEGMENTS]

    @property
    def charging(self) -> bool:
        """A charger feeds the battery: plugged in (the setter) and the kernel's charge switch on."""
        return self._charging and self.charge_switch()

    @charging.setter
    def charging(self, on: bool) -> None:
        self._charging = on

    def energy_between(self, start: float, end: float) -> float:
        """Joules the phone dissipated between two readings of the phone's clock (``time.monotonic`` by default)."""
        with self._lock:
            segments = list(self._segments)
        total = 0.0
        for i, (since, watts) in enumerate(segments):
            until = segments[i + 1][0] if i + 1 < len(segments) else end
            lo, hi = max(since, start), min(until, end)
            if hi > lo:
                total += watts * (hi - lo)
        return total

    def power_w(self) -> float:
        return self._power_w()

    def _current_now(self) -> int:
        load = self._current_a()
        battery = self.charge_a - load if self.charging else -load  # > 0: into the battery
        sign = -self.convention.discharge_sign  # the printed sign of a current into the battery
        scale = 1e6 if self.convention.unit == "uA" else 1e3
        return round(sign * battery * scale)

    def file(self, name: str) -> bytes | None:
        current = self._current_a()
        values = {
            "current_now": str(self._current_now()),
            "voltage_now": str(round(self._voltage_v(current) * 1e6)),
            "status": "Charging" if self.charging else "Discharging",
            "capacity": "76",
            "present": "1",
            "type": "Battery",
        }
        return f"{values[name]}\n".encode() if name in values else None


def lookup(gauge: FuelGauge, path: str) -> VirtualNode:
    """The node at ``path`` under ``/sys/class/power_supply``; ``None`` if it does not exist."""
    if path == SUPPLY_DIR:
        return ["battery"]
    m = _FILE.match(path)
    if m is None:
        return None
    if m[1] is None:
        return list(FILES)
    return gauge.file(m[1])
