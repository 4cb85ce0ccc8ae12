"""Probe: ``model_tool --info X.bmodel`` (also ``tpu_model --info`` / ``bm_model.bin --info``).

Reads the header (``bmodel version``, ``chip:``/``processor:``) and every ``device mem size: N (weight: W,
instruct: I, runtime: R)`` line in bytes (older builds say ``coeff:`` for ``weight:``), attached to the ``net
<i>: [<name>]`` and ``stage <j>:`` it follows; a line printed outside any net (the whole-file summary of
multi-net LLM bmodels) has ``net`` None. ``host mem size`` is attached to the entry above it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from farm.errors import OutputParseError

_VERSION = re.compile(r"^\s*bmodel version\s*:\s*(?P<v>\S+)", re.IGNORECASE)
_CHIP = re.compile(r"^\s*(?:chip|processor)\s*:\s*(?P<chip>\S+)", re.IGNORECASE)
_NET = re.compile(r"^\s*net\s+(?P<index>\d+)\s*:\s*\[(?P<name>[^\]]*)\]")
_STAGE = re.compile(r"^\s*stage\s+(?P<stage>\d+)\s*:")
_DEVICE = re.compile(
    r"device mem size\s*:\s*(?P<total>\d+)\s*\(\s*(?:weight|coeff)\s*:\s*(?P<weight>\d+)\s*,"
    r"\s*instruct\s*:\s*(?P<instruct>\d+)\s*,\s*runtime\s*:\s*(?P<runtime>\d+)\s*\)",
    re.IGNORECASE,
)
_HOST = re.compile(r"host mem size\s*:\s*(?P<total>\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class BmodelMemory:
    """Device memory of one net stage (or of the whole file when ``net`` is None), in bytes."""

    net: str | None
    net_index: int | None
    stage: int | None
    device_mem_bytes: int
    weight_bytes: int
    instruct_bytes: int
    runtime_bytes: int
    host_mem_bytes: int | None = None


@dataclass(frozen=True)
class ModelToolInfo:
    bmodel_version: str | None
    chip: str | None
    entries: tuple[BmodelMemory, ...]


def parse_model_tool_info(text: str) -> ModelToolInfo:
    """Raise OutputParseError when no ``device mem size`` line is printed."""
    version: str | None = None
    chip: str | None = None
    net: tuple[int, str] | None = None
    stage: int | None = None
    entries: list[BmodelMemory] = []
    for line in text.splitlines():
        if (match := _VERSION.match(line)) and version is None:
            version = match["v"]
        elif (match := _CHIP.match(line)) and chip is None:
            chip = match["chip"]
        elif match := _NET.match(line):
            net = (int(match["index"]), match["name"])
            stage = None
        elif match := _STAGE.match(line):
            stage = int(match["stage"])
        elif match := _DEVICE.search(line):
            entries.append(
                BmodelMemory(
                    net=net[1] if net else None,
                    net_index=net[0] if net else None,
                    stage=stage,
                    device_mem_bytes=int(match["total"]),
                    weight_bytes=int(match["weight"]),
                    instruct_bytes=int(match["instruct"]),
                    runtime_bytes=int(match["runtime"]),
                )
            )
        elif (match := _HOST.search(line)) and entries and entries[-1].host_mem_bytes is None:
            entries[-1] = replace(entries[-1], host_mem_bytes=int(match["total"]))
    if not entries:
        raise OutputParseError("model_tool_info: no 'device mem size: N (weight: W, ...)' line")
    return ModelToolInfo(bmodel_version=version, chip=chip, entries=tuple(entries))
