"""The workload adapter interface: pure functions from a benchmark's raw output to a flat metrics dict.

Adapters never touch a device. Metric names are flat and unit-suffixed (``decode_tokens_per_s``,
``latency_ms``, ``peak_rss_mib``); values are floats (``inf``/``nan`` allowed when the tool printed them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

Metrics = dict[str, float]


class WorkloadAdapter(Protocol):
    """Reads one workload's output. Raise :class:`farm.errors.OutputParseError` when it holds no result."""

    name: str

    def parse(self, output: str) -> Metrics: ...


class AdapterFactory(Protocol):
    """Builds an adapter from the job's ``workload_options`` (raise ``ValueError`` on bad options)."""

    def __call__(self, options: Mapping[str, Any]) -> WorkloadAdapter: ...
