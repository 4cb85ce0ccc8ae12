"""Adapter for Sophgo LLM-TPU demos (``python3 pipeline.py -m X.bmodel -d N``) on TPU boxes.

The demos print ``Load Time: <s> s`` once and ``FTL: <s> s`` / ``TPS: <x> token/s`` after every answer. A run
that asks several questions reports the mean FTL and TPS over its answers (``answers_count`` says how many)
and the last load time.
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

_LOAD = re.compile(rf"\bLoad Time\s*:\s*(?P<s>{NUMBER})\s*s\b", re.IGNORECASE)
_FTL = re.compile(rf"\bFTL\s*:\s*(?P<s>{NUMBER})\s*s\b")
_TPS = re.compile(rf"\bTPS\s*:\s*(?P<rate>{NUMBER})\s*(?:token|tokens|tok)/s\b")


@dataclass
class SophgoLlmTpuAdapter:
    """Load time, first-token latency and decode rate of one LLM-TPU demo run."""

    name: str = "sophgo_llm_tpu"

    def parse(self, output: str) -> Metrics:
        loads = [to_float(m["s"]) for m in _LOAD.finditer(output)]
        ftls = [to_float(m["s"]) for m in _FTL.finditer(output)]
        rates = [to_float(m["rate"]) for m in _TPS.finditer(output)]
        if not ftls and not rates:
            raise OutputParseError("sophgo_llm_tpu: no 'FTL: <s> s' or 'TPS: <x> token/s' line")
        metrics: Metrics = {}
        if loads:
            metrics["load_s"] = loads[-1]
        if ftls:
            metrics["first_token_latency_s"] = statistics.fmean(ftls)
        if rates:
            metrics["decode_tokens_per_s"] = statistics.fmean(rates)
        metrics["answers_count"] = float(max(len(ftls), len(rates)))
        return metrics


def make(options: Mapping[str, Any]) -> SophgoLlmTpuAdapter:
    """Factory; the adapter takes no options."""
    if options:
        raise ValueError(f"sophgo_llm_tpu takes no options, got {sorted(options)}")
    return SophgoLlmTpuAdapter()
