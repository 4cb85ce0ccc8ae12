"""Workload adapter registry: name → factory. A new workload is one module plus one line here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from farm.workloads.base import AdapterFactory, Metrics, WorkloadAdapter

_REGISTRY: dict[str, str] = {
    # name: "module:factory" — imported lazily so `farm validate` stays fast.
    "llama_cpp": "farm.workloads.llama_cpp:make",
    "llama_bench": "farm.workloads.llama_bench:make",
    "codl_op": "farm.workloads.codl_op:make",
    "codl_chain": "farm.workloads.codl_chain:make",
    "sophgo_llm_tpu": "farm.workloads.sophgo_llm_tpu:make",
    "ais_bench": "farm.workloads.ais_bench:make",
    "msame": "farm.workloads.msame:make",
    "lightcode": "farm.workloads.lightcode:make",
    "ascend_llama_adapter": "farm.workloads.llama_adapter_demo:make",
    "regex": "farm.workloads.regex_metrics:make",
    "json": "farm.workloads.json_metrics:make",
}


#: The metrics each workload is judged by, most important first: summaries, reports and comparisons show them
#: before any other. ``regex`` and ``json`` jobs name their own (see :func:`headline_metrics`).
HEADLINES: dict[str, tuple[str, ...]] = {
    "llama_cpp": ("decode_tokens_per_s", "prefill_tokens_per_s"),
    "llama_bench": ("decode_tokens_per_s", "prefill_tokens_per_s"),
    "codl_op": ("latency_ms",),
    "codl_chain": ("latency_ms",),
    "sophgo_llm_tpu": ("decode_tokens_per_s", "first_token_latency_s"),
    "ais_bench": ("throughput_samples_per_s", "npu_compute_mean_ms"),
    "msame": ("latency_ms",),
    "ascend_llama_adapter": ("throughput_pictures_per_s", "avg_time_ms"),
    "lightcode": ("makespan_s", "energy_pj", "threshold_count"),
}


def headline_metrics(name: str, options: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The headline metrics of workload ``name``: :data:`HEADLINES`, or for ``regex`` / ``json`` the metrics
    the job's ``workload_options`` declare, in the order written."""
    options = options or {}
    declared = options.get("patterns") if name == "regex" else options.get("fields") if name == "json" else None
    if isinstance(declared, Mapping):
        return tuple(str(k) for k in declared)
    return HEADLINES.get(name, ())


def available() -> list[str]:
    return sorted(_REGISTRY)


def make_adapter(name: str, options: Mapping[str, Any] | None = None) -> WorkloadAdapter:
    """Build the adapter ``name``; ``KeyError`` if unknown, ``ValueError`` if ``options`` are invalid."""
    import importlib

    target = _REGISTRY[name]
    module_name, _, attr = target.partition(":")
    factory: AdapterFactory = getattr(importlib.import_module(module_name), attr)
    return factory(options or {})


__all__ = ["HEADLINES", "Metrics", "WorkloadAdapter", "available", "headline_metrics", "make_adapter"]
