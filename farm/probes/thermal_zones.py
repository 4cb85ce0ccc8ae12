"""Probe: temperatures of ``/sys/class/thermal/thermal_zone*`` (type and temp of every zone).

Run :data:`THERMAL_ZONES_COMMAND` on the device; it prints ``<path>:<value>`` lines (grep's multi-file form).
Lines of the form ``<type> <temp>`` (one zone per line, as a shell loop prints them) are read as well.
Units: most kernels report millidegrees Celsius, some drivers degrees or decidegrees. The heuristic: a
magnitude of 1000 or more is millidegrees, 200 to 999 decidegrees, below 200 degrees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from farm.errors import OutputParseError

THERMAL_ZONES_COMMAND = (
    "grep -H . /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp 2>/dev/null"
)

_GREP_LINE = re.compile(r"thermal_zone(?P<zone>\d+)/(?P<field>type|temp):(?P<value>.*)$")
_PAIR_LINE = re.compile(r"^(?P<type>\S+)\s+(?P<temp>-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class ThermalZone:
    zone: int
    type: str
    temp_c: float


@dataclass(frozen=True)
class ThermalZones:
    zones: tuple[ThermalZone, ...]

    def max_temp_c(self, types: tuple[str, ...] = ()) -> float:
        """Hottest zone, optionally only zones whose type starts with one of ``types`` (e.g. ``("cpu",)``)."""
        temps = [z.temp_c for z in self.zones if not types or z.type.startswith(types)]
        if not temps:
            raise ValueError(f"no thermal zone of type {types}")
        return max(temps)


def millidegree_heuristic(raw: float) -> float:
    """Degrees Celsius from a sysfs reading of unknown scale (see module docstring)."""
    magnitude = abs(raw)
    if magnitude >= 1000:
        return raw / 1000.0
    if magnitude >= 200:
        return raw / 10.0
    return raw


def parse_thermal_zones(text: str) -> ThermalZones:
    """Zones in zone order; zones whose temp could not be read (no temp line) are left out."""
    types: dict[int, str] = {}
    temps: dict[int, float] = {}
    pairs: list[tuple[str, float]] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if match := _GREP_LINE.search(line):
            zone = int(match["zone"])
            value = match["value"].strip()
            if match["field"] == "type":
                types[zone] = value
            elif re.fullmatch(r"-?\d+(?:\.\d+)?", value):
                temps[zone] = float(value)
        elif match := _PAIR_LINE.match(line):
            pairs.append((match["type"], float(match["temp"])))
    if temps:
        zones = [
            ThermalZone(zone=zone, type=types.get(zone, f"thermal_zone{zone}"), temp_c=millidegree_heuristic(raw))
            for zone, raw in sorted(temps.items())
        ]
    else:
        zones = [
            ThermalZone(zone=index, type=kind, temp_c=millidegree_heuristic(raw))
            for index, (kind, raw) in enumerate(pairs)
        ]
    if not zones:
        raise OutputParseError("thermal_zones: no readable thermal zone temperature")
    return ThermalZones(zones=tuple(zones))
