"""Two jobs side by side (e.g. two builds): matched grid points, medians, ratio B/A and a significance hint.

Points match when they ran on the same device with the same value of *every* axis both jobs have (in the
spirit of llama.cpp's ``compare-llama-bench.py``). Filters (``where``: ``threads=4``) keep only the runs with
those axis values, in each job that has the axis. An axis only one job has must hold a single value there
(after the filters): with several, pooling over it would mix different configurations into one median, so the
comparison is refused unless ``pool`` is asked for — and then named in the warnings. Shared axes whose values
differ between the jobs (the grids differ) are named too: those points have no partner and are not compared.
For each matched point and metric: the medians over repeats, ``B/A``, and Welch's t-test p-value of B against
A; the verdict is ``better``/``worse`` (by the metric's direction) when p < alpha, ``~`` when not significant,
``?`` with fewer than two repeats on a side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from farm.analysis.jobdata import (
    SLOT,
    JobData,
    Row,
    axis_name,
    describe,
    format_value,
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
    where: dict[str, str] = field(default_factory=dict)  # axis → value the runs were filtered on
    warnings: list[str] = field(default_factory=list)  # grids that differ, axes pooled over

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("key_axes", "only_a", "only_b"):
            out[name] = [axis_name(a) for a in out[name]]
        out["where"] = {axis_name(k): v for k, v in self.where.items()}
        return out


def parse_where(items: Sequence[str], source: str = "compare") -> dict[str, str]:
    """``["threads=4", "p_model=x"]`` → ``{"p_threads": "4", "p_model": "x"}``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError.single(source, "--where", f"expected AXIS=VALUE, got {item!r}")
        out[name if name.startswith("p_") else f"p_{name}"] = value.strip()
    return out


def _matches(value: object, wanted: str) -> bool:
    if isinstance(value, bool):
        return wanted.lower() in (("true", "1") if value else ("false", "0"))
    if isinstance(value, int | float):
        try:
            return float(wanted) == value
        except ValueError:
            return False
    return str(value) == wanted


def _filtered(data: JobData, where: Mapping[str, str]) -> list[Row]:
    own = {k: v for k, v in where.items() if k in data.axes}
    return [r for r in data.measurements if all(_matches(r.get(k), v) for k, v in own.items())]


def _grid_checks(a: JobData, b: JobData, rows_a: list[Row], rows_b: list[Row], pool: bool, source: str) -> list[str]:
    """Warnings about grids that differ; :class:`ConfigError` for an axis of one job that would be pooled."""
    warnings: list[str] = []
    for side, data, rows, other in (("A", a, rows_a, b), ("B", b, rows_b, a)):
        for axis in (x for x in data.axes if x not in other.axes):
            values = data.values(axis, rows)
            if len(values) <= 1:
                continue
            shown = ", ".join(format_value(v) for v in values)
            if not pool:
                raise ConfigError.single(
                    source,
                    "grid",
                    f"axis {axis_name(axis)!r} is only in {side} ({data.job}) and takes several values there "
                    f"({shown}): comparing would pool different configurations. Pick one with --where "
                    f"{axis_name(axis)}=VALUE, or pass --pool to pool over it",
                )
            warnings.append(f"{side} pooled over {axis_name(axis)} ({shown}): only {data.job} has that axis")
    for axis in (x for x in a.axes if x in b.axes):
        va, vb = a.values(axis, rows_a), b.values(axis, rows_b)
        only_a = [format_value(v) for v in va if v not in vb]
        only_b = [format_value(v) for v in vb if v not in va]
        if only_a or only_b:
            parts = [
                f"only in A: {', '.join(only_a)}" if only_a else "",
                f"only in B: {', '.join(only_b)}" if only_b else "",
            ]
            warnings.append(
                f"the grids differ on {axis_name(axis)} ({'; '.join(p for p in parts if p)}): "
                "those points are not compared"
            )
    return warnings


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
    where: Mapping[str, str] | None = None,
    pool: bool = False,
) -> Comparison:
    """Matched points of ``a`` and ``b`` with medians, B/A and significance (see the module docstring)."""
    where = dict(where or {})
    unknown = [k for k in where if k not in a.axes and k not in b.axes]
    if unknown:
        axes = sorted({axis_name(x) for x in (*a.axes, *b.axes)})
        raise ConfigError.single(
            source,
            "--where",
            f"no axis {', '.join(axis_name(k) for k in unknown)} in either job (axes: {', '.join(axes) or 'none'})",
        )
    common = [m for m in order_metrics(a.metrics, a.headline) if m in b.metrics]
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
    rows_a, rows_b = _filtered(a, where), _filtered(b, where)
    # Nothing to compare without a common metric: then pooling misleads nobody.
    warnings = _grid_checks(a, b, rows_a, rows_b, pool, source) if chosen else []
    key_axes = [x for x in a.axes if x in b.axes]
    keys = [SLOT, *key_axes]
    groups_a = group_rows(rows_a, keys)
    groups_b = group_rows(rows_b, keys)
    rows: list[CompareRow] = []
    for key, group_a in groups_a.items():
        group_b = groups_b.get(key)
        if group_b is None:
            continue
        for metric in chosen:
            va = finite([r.get(metric) for r in group_a])
            vb = finite([r.get(metric) for r in group_b])
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
        where=where,
        warnings=warnings,
    )


def point_label(row: CompareRow) -> str:
    return describe([f"p_{k}" for k in row.point], list(row.point.values())) or "all runs"
