"""Generic adapter: metrics pulled from any output with user-given regular expressions.

Options: ``patterns: {metric_name: regex}``; each regex has one capture group or a group named ``value``.
Metric names must be unit-suffixed (``_ms``, ``_s``, ``_per_s``, ``_mb``, ``_pct``, ``_count``, ...). With
``aggregate`` (``last`` by default, or ``first``, ``mean``, ``min``, ``max``, ``sum``) a pattern that matches
several times is reduced to one value. Every pattern must match at least once, else the output holds no
result.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import check_metric_name, to_float

AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "last": lambda values: values[-1],
    "first": lambda values: values[0],
    "mean": statistics.fmean,
    "min": min,
    "max": max,
    "sum": math.fsum,
}


@dataclass
class RegexAdapter:
    """Metrics captured by regular expressions, one value per metric."""

    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    aggregate: str = "last"
    name: str = "regex"

    def parse(self, output: str) -> Metrics:
        metrics: Metrics = {}
        reduce = AGGREGATES[self.aggregate]
        for metric, pattern in self.patterns:
            values: list[float] = []
            for match in pattern.finditer(output):
                raw = match.group("value") if "value" in pattern.groupindex else match.group(1)
                if raw is None:
                    continue
                try:
                    values.append(to_float(raw))
                except ValueError:
                    raise OutputParseError(f"regex: {metric}: captured {raw!r} is not a number") from None
            if not values:
                raise OutputParseError(f"regex: pattern for {metric} ({pattern.pattern!r}) did not match")
            metrics[metric] = reduce(values)
        return metrics


def make(options: Mapping[str, Any]) -> RegexAdapter:
    """Factory; validates ``patterns`` (names, compilable regexes with a value group) and ``aggregate``."""
    unknown = set(options) - {"patterns", "aggregate"}
    if unknown:
        raise ValueError(f"regex: unknown options {sorted(unknown)} (known: patterns, aggregate)")
    patterns = options.get("patterns")
    if not isinstance(patterns, Mapping) or not patterns:
        raise ValueError("regex: option 'patterns' must be a non-empty mapping {metric_name: regex}")
    aggregate = str(options.get("aggregate", "last"))
    if aggregate not in AGGREGATES:
        raise ValueError(f"regex: aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    compiled: list[tuple[str, re.Pattern[str]]] = []
    for metric, source in patterns.items():
        what = f"regex pattern '{source}'"
        check_metric_name(str(metric), what)
        if not isinstance(source, str):
            raise ValueError(f"regex: pattern for {metric} must be a string, got {type(source).__name__}")
        try:
            pattern = re.compile(source, re.MULTILINE)
        except re.error as exc:
            raise ValueError(f"{what}: does not compile: {exc}") from None
        if "value" not in pattern.groupindex and pattern.groups != 1:
            raise ValueError(f"{what}: needs exactly one capture group or a group named 'value'")
        compiled.append((str(metric), pattern))
    return RegexAdapter(patterns=tuple(compiled), aggregate=aggregate)
