"""Adapter for CoDL whole-model chains: ``codl_run`` summaries and the ``[VERBOSE]`` lines of its eval script.

``codl_run`` logs ``total <ms> ms, dms <ms> ms, comp <ms> ms`` (end-to-end, data sharing, compute) and
``total_raw_size <bytes> bytes, total_size <MB> MB``; the last such line wins. Without a summary line, the
eval script's ``[VERBOSE] model <m>, exec_type <t>, round <r>, lat <ms>, ...`` lines are averaged over the
rounds of the last (model, exec_type) pair printed.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import NUMBER, to_float

_SUMMARY = re.compile(
    rf"\btotal\s+(?P<total>{NUMBER})\s*ms\s*,\s*dms\s+(?P<dms>{NUMBER})\s*ms\s*,\s*comp\s+(?P<comp>{NUMBER})\s*ms"
)
_SIZE = re.compile(rf"\btotal_size\s+(?P<mb>{NUMBER})\s*MB\b")
_VERBOSE = re.compile(
    rf"\[VERBOSE\]\s*model\s+(?P<model>[^,]+?)\s*,\s*exec_type\s+(?P<exec>[^,]+?)\s*,\s*round\s+(?P<round>\d+)"
    rf"\s*,\s*lat\s+(?P<lat>{NUMBER})"
)


@dataclass
class CodlChainAdapter:
    """End-to-end / data-sharing / compute latency of one CoDL model run."""

    name: str = "codl_chain"

    def parse(self, output: str) -> Metrics:
        summary: re.Match[str] | None = None
        size: re.Match[str] | None = None
        verbose: dict[tuple[str, str], dict[int, float]] = {}
        last_pair: tuple[str, str] | None = None
        for line in output.splitlines():
            if match := _SUMMARY.search(line):
                summary = match
            if match := _SIZE.search(line):
                size = match
            if match := _VERBOSE.search(line):
                last_pair = (match["model"], match["exec"])
                verbose.setdefault(last_pair, {})[int(match["round"])] = to_float(match["lat"])
        metrics: Metrics = {}
        if summary is not None:
            metrics["latency_ms"] = to_float(summary["total"])
            metrics["data_sharing_ms"] = to_float(summary["dms"])
            metrics["compute_ms"] = to_float(summary["comp"])
        elif last_pair is not None:
            lats = list(verbose[last_pair].values())
            metrics["latency_ms"] = statistics.fmean(lats)
            metrics["rounds_count"] = float(len(lats))
        else:
            raise OutputParseError("codl_chain: no 'total <ms> ms, dms .., comp ..' or '[VERBOSE] .. lat' line")
        if size is not None:
            metrics["total_size_mb"] = to_float(size["mb"])
        return metrics


def make(options: Mapping[str, Any]) -> CodlChainAdapter:
    """Factory; the adapter takes no options."""
    if options:
        raise ValueError(f"codl_chain takes no options, got {sorted(options)}")
    return CodlChainAdapter()
