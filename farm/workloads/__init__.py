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


def available() -> list[str]:
    return sorted(_REGISTRY)


def make_adapter(name: str, options: Mapping[str, Any] | None = None) -> WorkloadAdapter:
    """Build the adapter ``name``; ``KeyError`` if unknown, ``ValueError`` if ``options`` are invalid."""
    import importlib

    target = _REGISTRY[name]
    module_name, _, attr = target.partition(":")
    factory: AdapterFactory = getattr(importlib.import_module(module_name), attr)
    return factory(options or {})


__all__ = ["Metrics", "WorkloadAdapter", "available", "make_adapter"]
