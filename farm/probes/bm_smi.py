"""Probe: Sophgo ``bm-smi`` status table (per TPU chip: utilisation %, device memory used/total MB, temperature,
``TPU_P`` power in W, the clock: ``Minclk``, ``Maxclk``, ``Currclk`` in MHz).

bm-smi redraws its table with ANSI escapes unless run with ``--file=`` or non-looping; escapes are stripped
and, when several frames were captured, the last frame of each chip wins. Per chip the table has two rows: the
first ends with ``Tpu-Util`` (``NN%``), the second holds ``Memory-Usage`` as ``<used>MB/ <total>MB``. Layouts
with several ``MB/ MB`` pairs on that row (newer SDKs list extra heaps) report the first pair. The second row's
``<n>M`` cells are the clocks, in the header's order ``Minclk Maxclk … Currclk`` (wherever the SDK puts ``Fan``);
a row with another count of them reports none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from farm.errors import OutputParseError
from farm.workloads.textscan import strip_ansi

_UTIL = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_MEMORY = re.compile(r"(?P<used>\d+(?:\.\d+)?)\s*MB\s*/\s*(?P<total>\d+(?:\.\d+)?)\s*MB", re.IGNORECASE)
_TEMP = re.compile(r"^(\d+(?:\.\d+)?)C$")
_WATTS = re.compile(r"^(\d+(?:\.\d+)?)W$")
_MHZ = re.compile(r"(?<![\w.:/])(\d+)M(?!\w)")  # ``1000M``, not ``0MB`` or a bus id


@dataclass(frozen=True)
class TpuChip:
    chip_id: int
    name: str | None
    util_pct: float | None
    memory_used_mb: float | None
    memory_total_mb: float | None
    chip_temp_c: float | None = None
    power_w: float | None = None  # TPU_P: the chip's own power, where the SDK prints it
    min_clock_mhz: float | None = None
    max_clock_mhz: float | None = None
    clock_mhz: float | None = None  # Currclk


@dataclass(frozen=True)
class BmSmiReport:
    chips: tuple[TpuChip, ...]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_bm_smi(text: str) -> BmSmiReport:
    """Chips in id order; raise OutputParseError when no chip row pair is found."""
    chips: dict[int, TpuChip] = {}
    pending: tuple[int, str | None, float | None, float | None, float | None] | None = None
    for line in strip_ansi(text).splitlines():
        if not line.strip().startswith("|"):
            continue
        cells = _cells(line)
        first = cells[0].split()
        memory = _MEMORY.search(line)
        utils = _UTIL.findall(line)
        if memory is None and utils and len(cells) >= 2 and first and first[0].isdigit():
            second = cells[1].split()
            chip_id = int(second[0]) if second and second[0].isdigit() else int(first[0])
            name = first[1] if len(first) > 1 else None
            temp = _TEMP.match(second[2]) if len(second) > 2 else None
            watts = _WATTS.match(second[3]) if len(second) > 3 else None
            pending = (
                chip_id,
                name,
                float(utils[-1]),
                float(temp.group(1)) if temp else None,
                float(watts.group(1)) if watts else None,
            )
        elif memory is not None and pending is not None:
            chip_id, name, util, temp_c, power_w = pending
            clocks = [float(mhz) for mhz in _MHZ.findall(line)]
            lo, hi, now = clocks if len(clocks) == 3 else (None, None, None)
            chips[chip_id] = TpuChip(
                chip_id=chip_id,
                name=name,
                util_pct=util,
                memory_used_mb=float(memory["used"]),
                memory_total_mb=float(memory["total"]),
                chip_temp_c=temp_c,
                power_w=power_w,
                min_clock_mhz=lo,
                max_clock_mhz=hi,
                clock_mhz=now,
            )
            pending = None
    if not chips:
        raise OutputParseError("bm_smi: no chip rows (Tpu-Util % row followed by a MB/ MB memory row)")
    return BmSmiReport(chips=tuple(chips[chip_id] for chip_id in sorted(chips)))
