"""Adapter for Ascend's ``msame`` model runner: ``Inference average time : <ms> ms`` and its companions.

``Inference average time without first time: <ms> ms`` becomes ``latency_without_first_ms`` and the
per-input ``Inference time: <ms>ms`` lines are counted. Demo scripts that print other figures (e.g. a
``pictures/s`` rate) are read with the generic ``regex`` adapter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import NUMBER, to_float

_AVERAGE = re.compile(rf"\bInference average time\s*:\s*(?P<ms>{NUMBER})\s*ms", re.IGNORECASE)
_AVERAGE_NO_FIRST = re.compile(
    rf"\bInference average time without first time\s*:\s*(?P<ms>{NUMBER})\s*ms", re.IGNORECASE
)
_SINGLE = re.compile(rf"\bInference time\s*:\s*(?P<ms>{NUMBER})\s*ms", re.IGNORECASE)


@dataclass
class MsameAdapter:
    """Average inference latency of one msame run."""

    name: str = "msame"

    def parse(self, output: str) -> Metrics:
        metrics: Metrics = {}
        singles = 0
        for line in output.splitlines():
            if match := _AVERAGE.search(line):
                metrics["latency_ms"] = to_float(match["ms"])
            elif match := _AVERAGE_NO_FIRST.search(line):
                metrics["latency_without_first_ms"] = to_float(match["ms"])
            elif _SINGLE.search(line):
                singles += 1
        if "latency_ms" not in metrics:
            raise OutputParseError("msame: no 'Inference average time: <ms> ms' line")
        if singles:
            metrics["inferences_count"] = float(singles)
        return metrics


def make(options: Mapping[str, Any]) -> MsameAdapter:
    """Factory; the adapter takes no options."""
    if options:
        raise ValueError(f"msame takes no options, got {sorted(options)}")
    return MsameAdapter()
