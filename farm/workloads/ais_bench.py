"""Adapter for Ascend ``ais_bench`` / ``ais_infer`` / ``ait benchmark``: the Performance Summary block.

Lines read (any case, with or without the ``[INFO]`` prefix, the last summary wins)::

    H2D_latency (ms): min = .., max = .., mean = .., median = .., percentile(99%) = ..
    NPU_compute_time (ms): min = .., max = .., mean = .., median = .., percentile(99%) = ..
    D2H_latency (ms): ...                         (multi-thread runs print only ``mean = ..``)
    throughput 1000*batchsize(1)/NPU_compute_time.mean(0.43): 2302.35
    throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(2.45): 407.16
    throughput (1000*batchsize/NPU_compute_time): 1281.48
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import NUMBER, to_float

_SERIES = {"h2d_latency": "h2d", "npu_compute_time": "npu_compute", "d2h_latency": "d2h"}
_STATS_LINE = re.compile(
    r"\b(?P<series>H2D_latency|NPU_compute_time|D2H_latency)\s*\(ms\)\s*:(?P<stats>.*)", re.IGNORECASE
)
_STAT = re.compile(
    rf"(?P<stat>min|max|mean|median|percentile\(\s*(?P<pct>\d+(?:\.\d+)?)\s*%\s*\))\s*=\s*(?P<v>{NUMBER})",
    re.IGNORECASE,
)
_THROUGHPUT = re.compile(rf"\bthroughput\b[^:\n]*:\s*(?P<v>{NUMBER})", re.IGNORECASE)
_SUMMARY_START = re.compile(r"-+\s*Performance Summary\s*-+", re.IGNORECASE)


def _stat_name(stat: str, pct: str | None) -> str:
    if pct is not None:
        return "p" + pct.replace(".", "_")
    return stat.lower()


@dataclass
class AisBenchAdapter:
    """Throughput and latency statistics from one ais_bench run."""

    name: str = "ais_bench"

    def parse(self, output: str) -> Metrics:
        # Restart at every summary header so a second loop in the same log replaces the first.
        metrics: Metrics = {}
        for line in output.splitlines():
            if _SUMMARY_START.search(line):
                metrics = {}
                continue
            if match := _STATS_LINE.search(line):
                series = _SERIES[match["series"].lower()]
                for stat in _STAT.finditer(match["stats"]):
                    metrics[f"{series}_{_stat_name(stat['stat'], stat['pct'])}_ms"] = to_float(stat["v"])
            elif match := _THROUGHPUT.search(line):
                metrics["throughput_samples_per_s"] = to_float(match["v"])
        if "throughput_samples_per_s" not in metrics and "npu_compute_mean_ms" not in metrics:
            raise OutputParseError("ais_bench: no Performance Summary (NPU_compute_time or throughput line)")
        return metrics


def make(options: Mapping[str, Any]) -> AisBenchAdapter:
    """Factory; the adapter takes no options."""
    if options:
        raise ValueError(f"ais_bench takes no options, got {sorted(options)}")
    return AisBenchAdapter()
