"""Adapter for the LLaMA-Adapter ``demo_bsz.py`` of Ascend ModelZoo-PyTorch (multimodal captioning on a 310P).

The script prints ``[result]: [...]`` (one decoded string per picture of the batch) after a warm-up
``generate()`` and after each timed loop, ``[tiral time] <ms>`` (sic) per loop and ``[avg_time]: <ms>`` at
the end. Pictures per second is the batch size × 1000 / ``avg_time``, the batch size being the length of the
last ``[result]`` list (the script's ``BATCH_SIZE``). The patched ``llama_adapter_bsz.py`` keeps stage times
(``clip_time``, ``pre_time``, ``forward_time``, ``post_time``, ``decode_time``, in ms; ``forward``/``post``
are those of the last generated token); a demo that prints them after each ``generate()`` as
``[clip_time]: <ms>`` … gets their means over the timed loops (the warm-up's are dropped when there is one
more of them than timed loops).

Metrics: ``avg_time_ms``, ``throughput_pictures_per_s``, ``trial_time_min_ms`` / ``trial_time_max_ms``,
``trials_count``, ``pictures_per_batch``, ``<stage>_time_ms``.
"""

from __future__ import annotations

import ast
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import NUMBER, to_float

STAGES = ("clip", "pre", "forward", "post", "decode")
_TRIAL = re.compile(rf"^\[tiral time\]:?\s*(?P<ms>{NUMBER})\s*$", re.MULTILINE)
_AVG = re.compile(rf"^\[avg_time\]:?\s*(?P<ms>{NUMBER})\s*$", re.MULTILINE)
_RESULT = re.compile(r"^\[result\]:\s*(?P<list>\[.*\])\s*$", re.MULTILINE)
_STAGE = re.compile(rf"^\[(?P<stage>{'|'.join(STAGES)})_time\]:?\s*(?P<ms>{NUMBER})\s*$", re.MULTILINE)


@dataclass
class LlamaAdapterDemoAdapter:
    """Pictures per second and stage times of one ``demo_bsz.py`` run."""

    name: str = "ascend_llama_adapter"

    def parse(self, output: str) -> Metrics:
        trials = [to_float(m["ms"]) for m in _TRIAL.finditer(output)]
        avgs = [to_float(m["ms"]) for m in _AVG.finditer(output)]
        if not avgs:
            raise OutputParseError("ascend_llama_adapter: no '[avg_time]: <ms>' line (did the demo finish?)")
        results = _RESULT.findall(output)
        if not results:
            raise OutputParseError("ascend_llama_adapter: no '[result]: [...]' line to read the batch size from")
        try:
            batch = ast.literal_eval(results[-1])
        except (ValueError, SyntaxError) as exc:
            raise OutputParseError(f"ascend_llama_adapter: cannot read the last [result] list: {exc}") from None
        if not isinstance(batch, list) or not batch:
            raise OutputParseError("ascend_llama_adapter: the last [result] is not a non-empty list")
        avg = avgs[-1]
        metrics: Metrics = {
            "avg_time_ms": avg,
            "pictures_per_batch": float(len(batch)),
            "throughput_pictures_per_s": len(batch) * 1000.0 / avg if avg > 0 else float("nan"),
            "trials_count": float(len(trials)),
        }
        if trials:
            metrics["trial_time_min_ms"] = min(trials)
            metrics["trial_time_max_ms"] = max(trials)
        for stage in STAGES:
            values = [to_float(m["ms"]) for m in _STAGE.finditer(output) if m["stage"] == stage]
            if trials and len(values) == len(trials) + 1:
                values = values[1:]  # the warm-up generate()
            if values:
                metrics[f"{stage}_time_ms"] = statistics.fmean(values)
        return metrics


def make(options: Mapping[str, Any]) -> LlamaAdapterDemoAdapter:
    """Factory; the adapter takes no options."""
    if options:
        raise ValueError(f"ascend_llama_adapter takes no options, got {sorted(options)}")
    return LlamaAdapterDemoAdapter()
