"""Probe: peak and current resident memory from ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``).

procfs prints these in ``kB`` meaning KiB; the MB values here are KiB / 1024 (MiB), the unit ``peak_rss_mib``
columns use throughout Farm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from farm.errors import OutputParseError

_FIELD = re.compile(r"^(?P<key>VmHWM|VmRSS|VmPeak|VmSize)\s*:\s*(?P<kb>\d+)\s*kB\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ProcStatus:
    """Memory figures of one process; None where the status file had no such line."""

    peak_rss_mib: float | None
    rss_mib: float | None
    peak_virtual_mib: float | None = None
    virtual_mib: float | None = None


def parse_proc_status(text: str) -> ProcStatus:
    """Read one ``/proc/<pid>/status`` file; raise OutputParseError if it has neither VmHWM nor VmRSS."""
    values = {match["key"]: int(match["kb"]) / 1024 for match in _FIELD.finditer(text)}
    if "VmHWM" not in values and "VmRSS" not in values:
        # Kernel threads and zombies have no Vm* lines; so does text that is not a status file at all.
        raise OutputParseError("proc_status: no VmHWM or VmRSS line (process gone or not a status file)")
    return ProcStatus(
        peak_rss_mib=values.get("VmHWM"),
        rss_mib=values.get("VmRSS"),
        peak_virtual_mib=values.get("VmPeak"),
        virtual_mib=values.get("VmSize"),
    )
