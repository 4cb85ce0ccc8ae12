"""Two jobs side by side (e.g. two builds): matched grid points, medians, ratio B/A and a significance hint.

Points match when they ran on the same device with the same values of the axes both jobs have (in the
spirit of llama.cpp's ``compare-llama-bench.py``). An axis only one job has is pooled over, and named in the
result so the reader knows. For each matched point and metric: the medians over repeats, ``B/A``, and
Welch's t-test p-value of B against A; the verdict is ``better``/``worse`` (by the metric's direction) when
p < alpha, ``~`` when not significant, ``?`` with fewer than two repeats on a side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from farm.analysis.jobdata import (
    DEVICE,
    JobData,
    axis_name,
    describe,
    group_rows,
    higher_is_better,
    order_metrics,
)
from farm.analysis.stats import DEFAULT_ALPHA, finite, median, welch_t_test
from farm.errors import ConfigError

#: Metrics compared when none are named: the first few both jobs measured.
MAX_DEFAULT_METRICS = 3


@dataclass(frozen=True)
class CompareRow:
    device: str
    point: dict[str, Any]
    metric: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    ratio: float | None  # median_b / median_a
    p_value: float | None
    verdict: str


@dataclass(frozen=True)
class Comparison:
    job_a: str
    job_b: str
    metrics: list[str]
    key_axes: list[str]
    only_a: list[str]  # axes pooled over in A
    only_b: list[str]
    alpha: float
    rows: list[CompareRow]
    unmatched_a: int  # device × point groups of A with no partner in B
    unmatched_b: int
    synthetic: bool

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("key_axes", "only_a", "only_b"):
            out[name] = [axis_name(a) for a in out[name]]
        return out


def _verdict(metric: str, ratio: float | None, p: float | None, alpha: float) -> str:
    if p is None or ratio is None:
        return "?"
    if p >= alpha or ratio == 1:
        return "~"
    return "better" if (ratio > 1) == higher_is_better(metric) else "worse"


def compare_jobs(
    a: JobData,
    b: JobData,
    metrics: Sequence[str] | None = None,
    alpha: float = DEFAULT_ALPHA,
    source: str = "compare",
) -> Comparison:
    """Matched points of ``a`` and ``b`` with medians, B/A and significance (see the module docstring)."""
    common = [m for m in order_metrics(a.metrics) if m in b.metrics]
    if metrics:
        missing = [m for m in metrics if m not in common]
        if missing:
            raise ConfigError.single(
                source,
                "--metric",
                f"not measured by both jobs: {', '.join(missing)} (common metrics: {', '.join(common) or 'none'})",
            )
        chosen = list(metrics)
    else:
        chosen = common[:MAX_DEFAULT_METRICS]
    key_axes = [x for x in a.axes if x in b.axes]
    keys = [DEVICE, *key_axes]
    groups_a = group_rows(a.measurements, keys)
    groups_b = group_rows(b.measurements, keys)
    rows: list[CompareRow] = []
    for key, rows_a in groups_a.items():
        rows_b = groups_b.get(key)
        if rows_b is None:
            continue
        for metric in chosen:
            va = finite([r.get(metric) for r in rows_a])
            vb = finite([r.get(metric) for r in rows_b])
            if not va or not vb:
                continue
            ma, mb = median(va), median(vb)
            ratio = mb / ma if ma != 0 else None
            test = welch_t_test(va, vb)
            p = test.p if test else None
            rows.append(
                CompareRow(
                    device=key[0],
                    point={axis_name(x): v for x, v in zip(key_axes, key[1:], strict=True)},
                    metric=metric,
                    n_a=len(va),
                    n_b=len(vb),
                    median_a=ma,
                    median_b=mb,
                    ratio=ratio,
                    p_value=p,
                    verdict=_verdict(metric, ratio, p, alpha),
                )
            )
    return Comparison(
        job_a=a.job,
        job_b=b.job,
        metrics=chosen,
        key_axes=key_axes,
        only_a=[x for x in a.axes if x not in b.axes],
        only_b=[x for x in b.axes if x not in a.axes],
        alpha=alpha,
        rows=rows,
        unmatched_a=sum(1 for k in groups_a if k not in groups_b),
        unmatched_b=sum(1 for k in groups_b if k not in groups_a),
        synthetic=a.synthetic or b.synthetic,
    )


def point_label(row: CompareRow) -> str:
    return describe([f"p_{k}" for k in row.point], list(row.point.values())) or "all runs"
