"""CoDL-style CPU/GPU split sweeps: the best split ratio per op configuration and device, and its speed-up.

The ratio axis (``part_ratio``: 0 = all on the CPU … 1 = all on the GPU) is swept while every other axis
(op shape flags, ``part_dim``, ``gpu_memory_type`` …) names an op configuration. For each device ×
configuration the median latency (over repeats) is taken at every ratio; the best ratio is the one with the
lowest median (highest, for a rate metric), and its speed-up over CPU-only (ratio 0) and GPU-only (ratio 1) is
``median(other) / median(best)`` for times (``best / other`` for rates), so > 1 means co-execution wins.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from farm.analysis.jobdata import (
    SLOT,
    JobData,
    axis_name,
    describe,
    group_rows,
    higher_is_better,
    is_number,
)
from farm.analysis.stats import finite, median
from farm.errors import ConfigError

RATIO_AXIS = "part_ratio"
DEFAULT_METRIC = "latency_ms"


def _is(value: float, target: float) -> bool:
    return math.isclose(value, target, abs_tol=1e-9)


@dataclass(frozen=True)
class SplitRow:
    device: str
    point: dict[str, Any]
    best_ratio: float
    best: float
    cpu_only: float | None
    gpu_only: float | None
    speedup_vs_cpu: float | None
    speedup_vs_gpu: float | None
    by_ratio: dict[float, float]  # ratio → median
    n: int  # measurements behind this row


@dataclass(frozen=True)
class SplitAnalysis:
    job: str
    metric: str
    ratio_axis: str
    higher_is_better: bool
    rows: list[SplitRow]
    synthetic: bool

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio_axis"] = axis_name(self.ratio_axis)
        for row in out["rows"]:
            row["by_ratio"] = [{"ratio": k, "median": v} for k, v in row["by_ratio"].items()]
        return out


def _speedup(best: float, other: float | None, higher: bool) -> float | None:
    if other is None or best == 0 or other == 0:
        return None
    return best / other if higher else other / best


def analyze_split(
    data: JobData, metric: str | None = None, ratio_axis: str = RATIO_AXIS, source: str = "analyze split"
) -> SplitAnalysis:
    """The best ratio per device × op configuration (see the module docstring)."""
    column = ratio_axis if ratio_axis.startswith("p_") else f"p_{ratio_axis}"
    if column not in data.axes:
        axes = ", ".join(axis_name(a) for a in data.axes) or "none"
        raise ConfigError.single(
            source,
            "job",
            f"job {data.job!r} is not a split sweep: no axis {axis_name(column)!r} (axes: {axes})",
        )
    if any(not is_number(v) for v in data.values(column)):
        raise ConfigError.single(source, "job", f"axis {axis_name(column)!r} must hold numbers 0…1")
    chosen = metric or DEFAULT_METRIC
    if chosen not in data.metrics:
        measured = ", ".join(data.metrics) or "none"
        raise ConfigError.single(
            source, "--metric", f"job {data.job!r} has no metric {chosen!r} (measured: {measured})"
        )
    higher = higher_is_better(chosen)
    others = [a for a in data.axes if a != column]
    rows: list[SplitRow] = []
    for key, group in group_rows(data.measurements, [SLOT, *others]).items():
        by_ratio: dict[float, float] = {}
        n = 0
        for (ratio,), rgroup in group_rows(group, [column]).items():
            values = finite([r.get(chosen) for r in rgroup])
            if ratio is not None and values:
                by_ratio[float(ratio)] = median(values)
                n += len(values)
        if not by_ratio:
            continue
        pick = max if higher else min
        best_ratio = pick(by_ratio, key=lambda r: by_ratio[r])
        best = by_ratio[best_ratio]
        cpu = next((v for r, v in by_ratio.items() if _is(r, 0.0)), None)
        gpu = next((v for r, v in by_ratio.items() if _is(r, 1.0)), None)
        rows.append(
            SplitRow(
                device=key[0],
                point={axis_name(a): v for a, v in zip(others, key[1:], strict=True)},
                best_ratio=best_ratio,
                best=best,
                cpu_only=cpu,
                gpu_only=gpu,
                speedup_vs_cpu=_speedup(best, cpu, higher),
                speedup_vs_gpu=_speedup(best, gpu, higher),
                by_ratio=by_ratio,
                n=n,
            )
        )
    return SplitAnalysis(data.job, chosen, column, higher, rows, data.synthetic)


def point_label(row: SplitRow) -> str:
    return describe([f"p_{k}" for k in row.point], list(row.point.values())) or "all runs"
