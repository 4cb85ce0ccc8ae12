"""Probe parsers: pure readers of device-tool output (procfs, sysfs, npu-smi, bm-smi, model_tool).

Device actors run the commands through their transport and hand the text to these functions; nothing here does
I/O. Each parser returns small frozen dataclasses and raises :class:`farm.errors.OutputParseError` with a
one-line reason when the text holds nothing it recognises. The registry maps a probe name to its parser so the
``farm parse`` command can reach them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, str] = {
    # name: "module:function" — imported lazily.
    "proc_status": "farm.probes.proc_status:parse_proc_status",
    "thermal_zones": "farm.probes.thermal_zones:parse_thermal_zones",
    "npu_smi": "farm.probes.npu_smi:parse_npu_smi",
    "bm_smi": "farm.probes.bm_smi:parse_bm_smi",
    "model_tool_info": "farm.probes.model_tool_info:parse_model_tool_info",
}


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_parser(name: str) -> Callable[[str], Any]:
    """The parser function of probe ``name``; ``KeyError`` if unknown."""
    module_name, _, attr = _REGISTRY[name].partition(":")
    parser: Callable[[str], Any] = getattr(importlib.import_module(module_name), attr)
    return parser


__all__ = ["available", "get_parser"]
