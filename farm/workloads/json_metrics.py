"""Generic adapter: metrics from the last JSON object a program prints (a JSON document or JSON lines).

Without options every numeric leaf becomes a metric, nested keys joined with ``_`` (lists and booleans are
skipped, names are used as printed). With ``fields: {metric_name: "dotted.path"}`` only those values are
taken (list items by index, ``a.0.b``); those metric names must be unit-suffixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import check_metric_name, dig, flatten_numbers, last_mapping


@dataclass
class JsonAdapter:
    """Numeric fields of the last JSON object in the output."""

    fields: tuple[tuple[str, str], ...] = ()
    name: str = "json"

    def parse(self, output: str) -> Metrics:
        document = last_mapping(output, python_literals=False)
        if document is None:
            raise OutputParseError("json: no JSON object in the output")
        if not self.fields:
            metrics = flatten_numbers(document)
            if not metrics:
                raise OutputParseError("json: the last JSON object holds no numeric field")
            return metrics
        metrics = {}
        for metric, path in self.fields:
            try:
                value = dig(document, path)
            except KeyError:
                raise OutputParseError(f"json: field {path!r} ({metric}) is not in the last object") from None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise OutputParseError(f"json: field {path!r} ({metric}) is not a number: {value!r}")
            metrics[metric] = float(value)
        return metrics


def make(options: Mapping[str, Any]) -> JsonAdapter:
    """Factory; option ``fields`` maps unit-suffixed metric names to dotted paths."""
    unknown = set(options) - {"fields"}
    if unknown:
        raise ValueError(f"json: unknown options {sorted(unknown)} (known: fields)")
    fields = options.get("fields", {})
    if not isinstance(fields, Mapping):
        raise ValueError("json: option 'fields' must be a mapping {metric_name: dotted.path}")
    pairs: list[tuple[str, str]] = []
    for metric, path in fields.items():
        check_metric_name(str(metric), f"json field {path!r}")
        if not isinstance(path, str) or not path:
            raise ValueError(f"json: path for {metric} must be a non-empty string")
        pairs.append((str(metric), path))
    return JsonAdapter(fields=tuple(pairs))
