"""Adapter for the LightCode hardware simulator: the result dict it prints (JSON or a Python literal).

Graph search: the last printed mapping holding ``Makespan`` (seconds), ``total_energy`` (pJ), ``num_nodes``
and, when reported, ``phu_nodes`` (nodes placed on the photonic unit) is read with ``json`` or
``ast.literal_eval`` (never ``eval``); numpy reprs like ``np.float64(1.5)`` are read too. Threshold search
(``farm-lightcode thresholds``): the mapping holding ``thresholds``, the sequence lengths at which the
optimizer switches hardware, gives ``threshold_count``, ``threshold_min_seq_len``, ``threshold_max_seq_len``
(the full list stays in the run's log).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import last_mapping

_FIELDS = {
    "Makespan": "makespan_s",
    "total_energy": "energy_pj",
    "num_nodes": "nodes_count",
    "phu_nodes": "phu_nodes_count",
}


@dataclass
class LightCodeAdapter:
    """Makespan, energy and graph size of one simulated schedule."""

    name: str = "lightcode"

    def parse(self, output: str) -> Metrics:
        found = last_mapping(output, required=frozenset({"thresholds"}))
        if found is not None:
            return _thresholds(found["thresholds"])
        mapping = last_mapping(output, required=frozenset({"Makespan"}))
        if mapping is None:
            raise OutputParseError("lightcode: no printed dict with a 'Makespan' or 'thresholds' key")
        metrics: Metrics = {}
        for key, metric in _FIELDS.items():
            value = mapping.get(key)
            if isinstance(value, bool) or value is None:
                continue
            if not isinstance(value, int | float):
                raise OutputParseError(f"lightcode: {key} is not a number: {value!r}")
            metrics[metric] = float(value)
        return metrics


def _thresholds(values: Any) -> Metrics:
    if not isinstance(values, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise OutputParseError(f"lightcode: thresholds is not a list of sequence lengths: {values!r}"[:200])
    metrics: Metrics = {"threshold_count": float(len(values))}
    if values:
        metrics["threshold_min_seq_len"] = float(min(values))
        metrics["threshold_max_seq_len"] = float(max(values))
    return metrics


def make(options: Mapping[str, Any]) -> LightCodeAdapter:
    """Factory; the adapter takes no options."""
    if options:
        raise ValueError(f"lightcode takes no options, got {sorted(options)}")
    return LightCodeAdapter()
