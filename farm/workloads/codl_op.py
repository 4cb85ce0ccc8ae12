"""Adapter for CoDL's single-operator benchmark ``codl_op_run`` (MACE log lines on an Android phone).

What the tool prints (``test/codl_run/conv2d_test_v2.cc`` in csu-eis/CoDL):

- ``Round <i>, latency <ms> ms`` once per ``--rounds``;
- ``Stat: si <n>, stat [a,b,…], std_pect [p,q,…]``: ``si`` (10 in every build) leading rounds skipped, then the
  mean of each collected duration and its standard deviation in percent of the mean. With
  ``MACE_DURATION_COLLECT_GRANULARITY=Coarse`` the vector holds the round latency; with ``Fine`` one entry per
  stage of the op (e.g. the 8 data-sharing stages with ``--data_transform``); unset (``None``), both vectors
  are empty (``stat , std_pect``). This line is what CoDL's own latency collector greps for and reads.
- the OpenCL runtime (``Using platform: …``, ``OpenCL device: …``, ``OpenCL device version: …`` and
  ``OpenCLRuntime: global_mem_cacheline_size N, global_mem_cache_size N, compute_units N, warp_size N,
  max_wgp_size N, kwg_size N``), printed on every run (the runtime is created even for a CPU-only split): these
  go into the row's fingerprint (``fp_opencl_*``).

Metrics: ``latency_*`` over the rounds after ``si`` (``si`` from the Stat line, else the ``warmup_rounds``
option); ``codl_stat_<k>_ms`` and ``codl_std_pct_<k>`` for every entry of the tool's own vectors. When fewer
rounds are printed than ``si`` skips (the output was filtered to the Stat line, as the collector's ``grep``
does), ``latency_ms`` is the tool's own statistic (``stat[0]``, or the sum of the stages for ``Fine``) and
``latency_from_stat`` is 1.
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
_STAT = re.compile(
    r"\bStat:\s*si\s+(?P<si>\d+)\s*,\s*stat\s*(?P<stat>\[[^\]]*\])?\s*,\s*std_pect\s*(?P<sd>\[[^\]]*\])?"
)
_STAT_SI = re.compile(r"\bStat:\s*si\s+(?P<si>\d+)")
_CL_RUNTIME = re.compile(r"\bOpenCLRuntime:\s*(?P<pairs>global_mem_cacheline_size.*)$")
_CL_TEXT = {
    "opencl_platform": re.compile(r"\bUsing platform:\s*(?P<v>.+?)\s*$"),
    "opencl_device": re.compile(r"\bOpenCL device:\s*(?P<v>.+?)\s*$"),
    "opencl_device_version": re.compile(r"\bOpenCL device version:\s*(?P<v>.+?)\s*$"),
}
_CL_NUMBERS = ("global_mem_cacheline_size", "global_mem_cache_size", "compute_units", "warp_size", "max_wgp_size",
               "kwg_size")  # fmt: skip
_MAX_FP_LEN = 300


def _vector(text: str | None) -> list[float]:
    if not text:
        return []
    inner = text.strip()[1:-1]
    return [to_float(part) for part in inner.split(",") if part.strip()]


def opencl_fingerprint(output: str) -> dict[str, str]:
    """``fp_opencl_*`` columns from MACE's OpenCL runtime lines (the last value of each wins)."""
    out: dict[str, str] = {}
    for line in output.splitlines():
        if match := _CL_RUNTIME.search(line):
            for name, value in re.findall(r"(\w+)\s+(-?\d+)", match["pairs"]):
                if name in _CL_NUMBERS:
                    out[f"fp_opencl_{name}"] = value
            continue
        for key, pattern in _CL_TEXT.items():
            if m := pattern.search(line):
                out[f"fp_{key}"] = m["v"][:_MAX_FP_LEN]
                break
    return out


@dataclass
class CodlOpAdapter:
    """Per-round latency statistics of one CoDL operator run, the tool's own Stat vectors, its OpenCL facts."""

    warmup_rounds: int = 0
    name: str = "codl_op"

    def parse(self, output: str) -> Metrics:
        rounds: dict[int, float] = {}
        skipped = self.warmup_rounds
        stat: list[float] = []
        std_pct: list[float] = []
        for line in output.splitlines():
            if match := _ROUND.search(line):
                # Keyed by index so a re-printed round (log tee'd twice) is not counted twice.
                rounds[int(match["index"])] = to_float(match["ms"])
            elif match := _STAT.search(line):
                skipped = int(match["si"])
                stat, std_pct = _vector(match["stat"]), _vector(match["sd"])
            elif match := _STAT_SI.search(line):
                skipped = int(match["si"])
        metrics: Metrics = {}
        for k, value in enumerate(stat):
            metrics[f"codl_stat_{k}_ms"] = value
        for k, value in enumerate(std_pct):
            metrics[f"codl_std_pct_{k}"] = value
        ordered = [rounds[index] for index in sorted(rounds)]
        kept = ordered[skipped:]
        if kept:
            finite = [value for value in kept if math.isfinite(value)]
            metrics.update(
                {
                    "latency_ms": statistics.fmean(kept),
                    "latency_median_ms": statistics.median(kept),
                    "latency_std_ms": statistics.stdev(finite) if len(finite) > 1 else 0.0,
                    "latency_min_ms": min(kept),
                    "latency_max_ms": max(kept),
                    "rounds_count": float(len(kept)),
                    "warmup_rounds_count": float(min(skipped, len(ordered))),
                    "latency_from_stat": 0.0,
                }
            )
            return metrics
        total = math.fsum(stat) if stat else math.nan
        if stat and math.isfinite(total) and total > 0:
            # Fewer rounds printed than si skips: the tool computed its statistics from rounds we did not see.
            metrics.update({"latency_ms": total, "warmup_rounds_count": float(skipped), "latency_from_stat": 1.0})
            if len(std_pct) == 1 and math.isfinite(std_pct[0]):
                metrics["latency_std_ms"] = total * std_pct[0] / 100.0
            return metrics
        if not rounds and not stat:
            raise OutputParseError(
                "codl_op: no 'Round <i>, latency <ms> ms' lines and no 'Stat:' values "
                "(set MACE_DURATION_COLLECT_GRANULARITY=Coarse for the tool's own statistics)"
            )
        raise OutputParseError(
            f"codl_op: all {len(ordered)} rounds are warm-up rounds (si {skipped}) and the tool's statistics "
            f"are empty or not positive ({stat}): give --rounds above {skipped}"
        )

    def fingerprint(self, output: str) -> dict[str, str]:
        """The OpenCL platform, device, driver version and runtime sizes the run printed."""
        return opencl_fingerprint(output)


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
