"""Adapter for llama.cpp programs: llama-cli, llama-server, forks and llama-cpp-python verbose logs.

Reads the timing block printed at exit under any of its prefixes (``llama_print_timings:``,
``llama_perf_context_print:`` / ``llama_perf_sampler_print:``, ``common_perf_print:``, or none at all as
llama-server prints it), with or without a log prefix (``0.01.234.567 I``, ``[42027]``), with decimal commas
and ``inf``/``nan``. When the output holds several blocks (a tool that generates twice), the last complete one
wins. Allocation sizes (model buffers, KV cache, compute buffers; or the ``llama_memory_breakdown_print``
table) are reported in MiB; they are not resident memory, which the device actor samples from the OS.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import NUMBER, to_float

logger = logging.getLogger(__name__)

_KEYS = (
    r"load time|sample time|sampling time|samplers time|prompt eval time|eval time|total time"
    r"|unaccounted time|graphs reused"
)
# Non-greedy prefix: at the first position a key matches, "prompt eval time" is tried before "eval time".
_TIMING = re.compile(rf"^(?P<prefix>[^=\n]*?)\b(?P<key>{_KEYS})\s*=\s*(?P<rest>.*)$")
_DURATION = re.compile(
    rf"^(?P<ms>{NUMBER})\s*ms"
    rf"(?:\s*/\s*(?P<count>\d+)\s*(?:tokens|runs))?"
    rf"(?:\s*\(\s*(?P<mspt>{NUMBER})\s*ms per token\s*,\s*(?P<tps>{NUMBER})\s*tokens per second\s*\))?",
    re.IGNORECASE,
)
# 2023 builds printed "MB" for the same 2**20-byte unit.
_MIB = rf"(?P<mib>{NUMBER})\s*(?:MiB|MB)\b"
# "mem required" is how 2023 builds (before backend buffers) reported the model's allocation.
_MODEL_BUFFER = re.compile(rf"\b(?:llm_)?load_tensors:\s*(?:.*?\bbuffer size|mem required)\s*=\s*{_MIB}")
_KV_BUFFER = re.compile(rf"\bllama_kv_cache\w*:\s*(?P<dev>.*?)\s*KV buffer size\s*=\s*{_MIB}")
_KV_TOTAL = re.compile(rf"\bllama_kv_cache\w*:\s*size\s*=\s*{_MIB}")
_KV_SELF = re.compile(rf"\bkv self size\s*=\s*{_MIB}", re.IGNORECASE)
_COMPUTE_BUFFER = re.compile(rf":\s*(?P<dev>[^:]*?)\s*compute buffer (?:total )?size\s*=\s*{_MIB}")
_BREAKDOWN = re.compile(r"llama_memory_breakdown_print:\s*\|\s*-\s*(?P<dev>[^|]*?)\s*\|(?P<cells>[^|]*)\|")
# "self = model + context + compute" inside a breakdown row, with or without the leading "total = free + (".
_BREAKDOWN_SELF = re.compile(r"\d+\s*=\s*(?P<model>\d+)\s*\+\s*(?P<ctx>\d+)\s*\+\s*(?P<compute>\d+)")

_BLOCK_KEYS = {
    "load time": "load",
    "sample time": "sample",
    "sampling time": "sample",
    # common_perf_print prints both: "sampling time" (whole sampling) and "samplers time" (the chain only).
    "samplers time": "samplers",
    "prompt eval time": "prefill",
    "eval time": "decode",
    "total time": "total",
    "unaccounted time": "unaccounted",
    "graphs reused": "graphs_reused",
}


@dataclass
class _Timing:
    ms: float
    count: int | None = None
    ms_per_token: float | None = None
    tokens_per_s: float | None = None


@dataclass
class _MemoryBlock:
    """Allocation lines of one model load; a new block starts when model buffers follow other lines."""

    model: list[float] = field(default_factory=list)
    kv_buffers: list[float] = field(default_factory=list)
    kv_totals: list[float] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.model or self.kv_buffers or self.kv_totals or self.compute)


def _parse_timing(key: str, rest: str) -> _Timing | None:
    if key == "graphs reused":
        number = re.match(r"\s*(\d+)", rest)
        return _Timing(ms=math.nan, count=int(number.group(1))) if number else None
    match = _DURATION.match(rest.strip())
    if not match:
        return None
    count = int(match["count"]) if match["count"] else None
    return _Timing(
        ms=to_float(match["ms"]),
        count=count,
        ms_per_token=to_float(match["mspt"]) if match["mspt"] else None,
        tokens_per_s=to_float(match["tps"]) if match["tps"] else None,
    )


def _timing_blocks(lines: list[str]) -> list[dict[str, _Timing]]:
    blocks: list[dict[str, _Timing]] = [{}]
    for line in lines:
        match = _TIMING.match(line)
        if not match:
            continue
        kind = _BLOCK_KEYS[match["key"]]
        timing = _parse_timing(match["key"], match["rest"])
        if timing is None:
            continue
        if kind in blocks[-1]:
            blocks.append({})
        blocks[-1][kind] = timing
    return [block for block in blocks if block]


def _rate_metrics(prefix: str, timing: _Timing) -> Metrics:
    out: Metrics = {f"{prefix}_ms": timing.ms}
    if timing.count is not None:
        out[f"{prefix}_tokens"] = float(timing.count)
    # Builds before mid-2023 printed no tokens/s; derive it from the same two numbers the tool divides.
    mspt = timing.ms_per_token
    tps = timing.tokens_per_s
    if mspt is None and timing.count:
        mspt = timing.ms / timing.count
    if tps is None and timing.count is not None and timing.ms:
        tps = 1e3 * timing.count / timing.ms
    if mspt is not None:
        out[f"{prefix}_ms_per_token"] = mspt
    if tps is not None:
        out[f"{prefix}_tokens_per_s"] = tps
    return out


def _memory_metrics(lines: list[str]) -> Metrics:
    blocks = [_MemoryBlock()]
    breakdown: dict[str, tuple[float, float, float]] = {}
    for line in lines:
        current = blocks[-1]
        if match := _MODEL_BUFFER.search(line):
            if current.kv_buffers or current.kv_totals or current.compute:
                blocks.append(_MemoryBlock())
            blocks[-1].model.append(to_float(match["mib"]))
        elif match := _KV_BUFFER.search(line):
            current.kv_buffers.append(to_float(match["mib"]))
        elif (match := _KV_TOTAL.search(line)) or (match := _KV_SELF.search(line)):
            current.kv_totals.append(to_float(match["mib"]))
        elif match := _COMPUTE_BUFFER.search(line):
            current.compute.append(to_float(match["mib"]))
        elif (match := _BREAKDOWN.search(line)) and (parts := _BREAKDOWN_SELF.search(match["cells"])):
            # One row per device; a later table (second run) replaces the earlier row of that device.
            breakdown[match["dev"]] = (
                float(parts["model"]),
                float(parts["ctx"]),
                float(parts["compute"]),
            )
    last = next((block for block in reversed(blocks) if not block.empty()), _MemoryBlock())
    out: Metrics = {}
    # Buffer lines carry two decimals; the breakdown table is rounded to whole MiB, so it only fills gaps.
    if last.model:
        out["model_buffer_mib"] = math.fsum(last.model)
    elif breakdown:
        out["model_buffer_mib"] = math.fsum(row[0] for row in breakdown.values())
    if last.kv_buffers:
        out["kv_cache_mib"] = math.fsum(last.kv_buffers)
    elif last.kv_totals:
        out["kv_cache_mib"] = math.fsum(last.kv_totals)
    elif breakdown:
        out["kv_cache_mib"] = math.fsum(row[1] for row in breakdown.values())
    if last.compute:
        out["compute_buffer_mib"] = math.fsum(last.compute)
    elif breakdown:
        out["compute_buffer_mib"] = math.fsum(row[2] for row in breakdown.values())
    return out


@dataclass
class LlamaCppAdapter:
    """Timing block and allocation sizes of one llama.cpp run."""

    name: str = "llama_cpp"

    def parse(self, output: str) -> Metrics:
        lines = output.replace("\r", "\n").splitlines()
        blocks = _timing_blocks(lines)
        complete = [block for block in blocks if "prefill" in block and "decode" in block]
        if not complete:
            raise OutputParseError("llama.cpp: no timing block with both 'prompt eval time' and 'eval time'")
        if len(complete) > 1:
            logger.debug("llama.cpp output holds %d timing blocks; using the last", len(complete))
        block = complete[-1]
        metrics: Metrics = {}
        metrics.update(_rate_metrics("prefill", block["prefill"]))
        metrics.update(_rate_metrics("decode", block["decode"]))
        if "load" in block:
            metrics["load_ms"] = block["load"].ms
        if "sample" in block:
            metrics["sample_ms"] = block["sample"].ms
        if "samplers" in block:
            metrics["samplers_ms"] = block["samplers"].ms
        if "total" in block:
            metrics["total_ms"] = block["total"].ms
        if "unaccounted" in block:
            metrics["unaccounted_ms"] = block["unaccounted"].ms
        if "graphs_reused" in block and block["graphs_reused"].count is not None:
            metrics["graphs_reused_count"] = float(block["graphs_reused"].count)
        metrics.update(_memory_metrics(lines))
        return metrics


def make(options: Mapping[str, Any]) -> LlamaCppAdapter:
    """Factory for the registry; the adapter takes no options."""
    if options:
        raise ValueError(f"llama_cpp takes no options, got {sorted(options)}")
    return LlamaCppAdapter()
