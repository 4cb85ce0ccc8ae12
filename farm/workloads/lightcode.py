"""Adapter for the LightCode hardware simulator: the result dict it prints (JSON or a Python literal).

The last printed mapping holding ``Makespan`` (seconds), ``total_energy`` (pJ) and ``num_nodes`` is read
with ``json`` or ``ast.literal_eval`` (never ``eval``); numpy reprs like ``np.float64(1.5)`` are read too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import last_mapping

_FIELDS = {"Makespan": "makespan_s", "total_energy": "energy_pj", "num_nodes": "nodes_count"}


@dataclass
class LightCodeAdapter:
    """Makespan, energy and graph size of one simulated schedule."""

    name: str = "lightcode"

    def parse(self, output: str) -> Metrics:
        mapping = last_mapping(output, required=frozenset({"Makespan"}))
        if mapping is None:
            raise OutputParseError("lightcode: no printed dict with a 'Makespan' key")
        metrics: Metrics = {}
        for key, metric in _FIELDS.items():
            value = mapping.get(key)
            if isinstance(value, bool) or value is None:
                continue
            if not isinstance(value, int | float):
                raise OutputParseError(f"lightcode: {key} is not a number: {value!r}")
            metrics[metric] = float(value)
        return metrics


def make(options: Mapping[str, Any]) -> LightCodeAdapter:
    """Factory; the adapter takes no options."""
    if options:
        raise ValueError(f"lightcode takes no options, got {sorted(options)}")
    return LightCodeAdapter()
