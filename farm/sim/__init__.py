"""Virtual Android phones that speak the device side of the ADB protocol, for tests and job rehearsals.

Everything a virtual phone prints is synthetic: scripted stand-ins for benchmark binaries, a modelled thermal
state, ``ro.farm.synthetic=1`` in its properties. See :class:`farm.sim.phone.VirtualPhone`.

This package and :mod:`farm.sim.synthetic` (the synthetic markers, where the box stand-ins are installed) are what
code outside ``farm/sim`` may import; ``farm.sim.adb_server`` also serves the tests, benches and ``farm sim``.
"""

from __future__ import annotations

from farm.sim.phone import PhoneCommandResult, PhoneFaults, SimConfig, VirtualPhone, free_port
from farm.sim.soc import SOC_PROFILES, SocProfile
from farm.sim.synthetic import BOXES_DIR, LIGHTCODE_DIR, SYNTHETIC_LINE, SYNTHETIC_PROP, marks_synthetic

__all__ = [
    "BOXES_DIR",
    "LIGHTCODE_DIR",
    "SOC_PROFILES",
    "SYNTHETIC_LINE",
    "SYNTHETIC_PROP",
    "PhoneCommandResult",
    "PhoneFaults",
    "SimConfig",
    "SocProfile",
    "VirtualPhone",
    "free_port",
    "marks_synthetic",
]
