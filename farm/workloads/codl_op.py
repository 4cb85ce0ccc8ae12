"""Adapter for CoDL's single-operator benchmark ``codl_op_run`` (MACE log lines on an Android phone).

The tool logs ``Round <i>, latency <ms> ms`` once per round, then ``Stat: si <n>, stat [..], std_pect [..]``
where ``si`` is the number of leading warm-up rounds its own statistics skip. The metrics use the same rounds:
``si`` from the Stat line, else the ``warmup_rounds`` option (default 0).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import NUMBER, to_float

_ROUND = re.compile(rf"\bRound\s+(?P<index>\d+)\s*,\s*latency\s+(?P<ms>{NUMBER})\s*ms\b")
_STAT = re.compile(r"\bStat:\s*si\s+(?P<si>\d+)")


@dataclass
class CodlOpAdapter:
    """Per-round latency statistics of one CoDL operator run."""

    warmup_rounds: int = 0
    name: str = "codl_op"

    def parse(self, output: str) -> Metrics:
        rounds: dict[int, float] = {}
        skipped = self.warmup_rounds
        for line in output.splitlines():
            if match := _ROUND.search(line):
                # Keyed by index so a re-printed round (log tee'd twice) is not counted twice.
                rounds[int(match["index"])] = to_float(match["ms"])
            elif match := _STAT.search(line):
                skipped = int(match["si"])
        if not rounds:
            raise OutputParseError("codl_op: no 'Round <i>, latency <ms> ms' lines")
        ordered = [rounds[index] for index in sorted(rounds)]
        kept = ordered[skipped:]
        if not kept:
            raise OutputParseError(f"codl_op: all {len(ordered)} rounds are warm-up rounds (si {skipped})")
        finite = [value for value in kept if math.isfinite(value)]
        return {
            "latency_ms": statistics.fmean(kept),
            "latency_median_ms": statistics.median(kept),
            "latency_std_ms": statistics.stdev(finite) if len(finite) > 1 else 0.0,
            "latency_min_ms": min(kept),
            "latency_max_ms": max(kept),
            "rounds": float(len(kept)),
            "warmup_rounds": float(min(skipped, len(ordered))),
        }


def make(options: Mapping[str, Any]) -> CodlOpAdapter:
    """Factory; option ``warmup_rounds`` (int ≥ 0) applies only when no ``Stat: si`` line is printed."""
    unknown = set(options) - {"warmup_rounds"}
    if unknown:
        raise ValueError(f"codl_op: unknown options {sorted(unknown)} (known: warmup_rounds)")
    warmup = options.get("warmup_rounds", 0)
    if isinstance(warmup, bool) or not isinstance(warmup, int):
        raise ValueError(f"codl_op: warmup_rounds must be an integer, got {warmup!r}")
    if warmup < 0:
        raise ValueError(f"codl_op: warmup_rounds must be >= 0, got {warmup}")
    return CodlOpAdapter(warmup_rounds=warmup)
