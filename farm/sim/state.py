"""What a virtual phone is besides its sockets: identity, files, processes, thermal state, configuration.

Commands, services and workloads all receive one :class:`PhoneState`; it holds no network code.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from farm.sim.battery import FuelGauge
from farm.sim.device_settings import DeviceSettings
from farm.sim.filesystem import VirtualFS
from farm.sim.processes import ProcessTable
from farm.sim.soc import DEFAULT_STORAGE, SOC_PROFILES, STORAGE_PROFILES, SocProfile, StorageProfile
from farm.sim.thermal import ThermalModel


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the simulation itself (not of the modelled hardware)."""

    time_scale: float = 0.05  # wall seconds a scripted benchmark sleeps per reported second
    min_wall_s: float = 0.2  # ... but at least this long, so samplers see it running
    max_wall_s: float = 1.0  # ... and at most this long, so tests stay fast
    noise: float = 0.02  # relative sd of the seeded noise on reported speeds
    heat_tau_s: float = 4.0
    cool_tau_s: float = 6.0

    def wall_seconds(self, reported_s: float) -> float:
        return min(self.max_wall_s, max(self.min_wall_s, reported_s * self.time_scale))


@dataclass
class PhoneState:
    """Everything commands can see and change on one phone."""

    name: str
    seed: int
    soc: SocProfile
    props: dict[str, str]
    fs: VirtualFS
    procs: ProcessTable
    thermal: ThermalModel
    config: SimConfig
    # Called with each shell command line before it runs (fault injection hooks in here).
    on_command: Callable[[str], None] | None = None
    storage: StorageProfile = STORAGE_PROFILES[DEFAULT_STORAGE]
    # cpufreq policies, GPU devfreq, settings, screen, charge switch (what bench mode pins)
    device: DeviceSettings = field(default_factory=lambda: DeviceSettings.for_soc(SOC_PROFILES["sm8550"], rooted=False))
    battery: FuelGauge | None = None  # /sys/class/power_supply/battery (see farm.sim.battery)
    _runs: dict[str, int] = field(default_factory=dict)

    def rng_for(self, label: str) -> random.Random:
        """A generator seeded by the phone seed, ``label`` and how often ``label`` was asked for before.

        The n-th run of the same command on a phone with the same seed sees the same numbers, while repeats
        differ from each other like real repeats do.
        """
        n = self._runs.get(label, 0)
        self._runs[label] = n + 1
        digest = hashlib.sha256(f"{self.seed}\0{label}\0{n}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "little"))
