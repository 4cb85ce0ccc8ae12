"""The thermal model of a virtual phone: zones that heat under load and cool exponentially back to idle.

Each zone follows a first-order law, ``dT/dt = (T_target - T) / tau``, with ``T_target = idle + gain * load``.
Load is piecewise constant (it changes when a scripted benchmark starts or ends), so the state is advanced
with the exact exponential between changes and the model is deterministic given its clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ZoneSpec:
    """One ``/sys/class/thermal/thermal_zoneN``: its ``type`` and how strongly CPU/GPU load heats it."""

    type: str
    idle_c: float
    cpu_gain_c: float  # degrees above idle at full CPU load
    gpu_gain_c: float  # degrees above idle at full GPU load


DEFAULT_ZONES: tuple[ZoneSpec, ...] = (
    ZoneSpec("cpu-0-0-usr", 36.0, 18.0, 4.0),
    ZoneSpec("cpu-1-0-usr", 37.0, 34.0, 5.0),
    ZoneSpec("cpu-1-1-usr", 37.0, 33.0, 5.0),
    ZoneSpec("gpuss-0-usr", 35.0, 8.0, 30.0),
    ZoneSpec("battery", 30.0, 6.0, 5.0),
    ZoneSpec("xo-therm", 31.0, 9.0, 7.0),
)


class ThermalModel:
    """Zone temperatures as a function of the load history; thread-safe, clock injectable."""

    def __init__(
        self,
        zones: tuple[ZoneSpec, ...] = DEFAULT_ZONES,
        *,
        heat_tau_s: float = 4.0,
        cool_tau_s: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.zones = zones
        self.heat_tau_s = heat_tau_s
        self.cool_tau_s = cool_tau_s
        self._clock = clock
        self._lock = threading.Lock()
        self._temps = [z.idle_c for z in zones]
        self._loads: dict[object, tuple[float, float]] = {}
        self._t = clock()
        # Called (outside the lock) after each load change: the fuel gauge integrates power between changes.
        self.listeners: list[Callable[[], None]] = []

    def _load(self) -> tuple[float, float]:
        cpu = min(1.0, sum(c for c, _ in self._loads.values()))
        gpu = min(1.0, sum(g for _, g in self._loads.values()))
        return cpu, gpu

    def _advance(self) -> None:
        now = self._clock()
        dt = max(0.0, now - self._t)
        self._t = now
        if dt == 0.0:
            return
        cpu, gpu = self._load()
        for i, zone in enumerate(self.zones):
            target = zone.idle_c + zone.cpu_gain_c * cpu + zone.gpu_gain_c * gpu
            tau = self.heat_tau_s if target > self._temps[i] else self.cool_tau_s
            self._temps[i] = target + (self._temps[i] - target) * math.exp(-dt / tau)

    def set_load(self, key: object, cpu: float = 0.0, gpu: float = 0.0) -> None:
        """Register (or replace) one workload's load; ``cpu``/``gpu`` are fractions of full load."""
        with self._lock:
            self._advance()
            self._loads[key] = (max(0.0, cpu), max(0.0, gpu))
        self._notify()

    def clear_load(self, key: object) -> None:
        with self._lock:
            self._advance()
            self._loads.pop(key, None)
        self._notify()

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()

    def load(self) -> tuple[float, float]:
        """The summed (cpu, gpu) load now, each capped at full load."""
        with self._lock:
            return self._load()

    def temperatures_c(self) -> list[float]:
        with self._lock:
            self._advance()
            return list(self._temps)

    def temperature_c(self, index: int) -> float:
        return self.temperatures_c()[index]

    def zone_index(self, zone_type: str) -> int:
        for i, zone in enumerate(self.zones):
            if zone.type == zone_type:
                return i
        raise KeyError(zone_type)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._loads)
