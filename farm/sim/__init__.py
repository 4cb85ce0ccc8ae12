"""Virtual Android phones that speak the device side of the ADB protocol, for tests and job rehearsals.

Everything a virtual phone prints is synthetic: scripted stand-ins for benchmark binaries, a modelled thermal
state, ``ro.farm.synthetic=1`` in its properties. See :class:`farm.sim.phone.VirtualPhone`.
"""

from __future__ import annotations

from farm.sim.phone import PhoneFaults, ShellResult, SimConfig, VirtualPhone
from farm.sim.soc import SOC_PROFILES, SocProfile

__all__ = ["SOC_PROFILES", "PhoneFaults", "ShellResult", "SimConfig", "SocProfile", "VirtualPhone"]
