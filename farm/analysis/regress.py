"""Regression detection: the newest build of a job against a baseline, per matched grid point.

Builds are the values of the ``build`` column (the job's ``build:`` label, else the benchmark binary's sha256:
docs/jobs.md), ordered by when each first ran. The *candidate* is the newest build (or the one asked for); the
*baseline* is one named build, or ``rolling:N``: the N builds before the candidate, pooled. Points match when
they ran on the same device with the same value of every grid axis. For each matched point the test is on the
workload's headline metric (``farm.workloads.HEADLINES``, or ``--metric``), over the measurements (``ok``, not
warm-up) of each side:

- the one-sided Mann-Whitney U test (:mod:`farm.analysis.mannwhitney`) of "the candidate is worse" — lower for
  a higher-is-better metric (``*_per_s``, ``throughput*``), higher for the rest (times, latencies, sizes);
- the effect: the ratio of medians, candidate over baseline, turned into "worse by" (a fraction, positive when
  worse).

A point is a **regression** when ``p < alpha`` (default :data:`DEFAULT_ALPHA`) *and* it is worse by at least
``min_effect`` (default :data:`DEFAULT_MIN_EFFECT`); an **improvement** when the mirror test and effect hold;
``~`` otherwise; ``too few`` with fewer than :data:`MIN_SAMPLES` values on a side (the exact test cannot reach
alpha below that); **failed** when the candidate ran the point but none of its runs measured the metric (every
run failed, timed out or printed no figure): a build whose benchmark stopped working fails the check too. Both
thresholds are calibrated on the virtual phones by ``bench/regress.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from farm.analysis.jobdata import SLOT, JobData, Row, describe, group_rows, higher_is_better, require_metric
from farm.analysis.mannwhitney import mann_whitney_u
from farm.analysis.stats import finite, median
from farm.errors import ConfigError

BUILD = "build"
#: Significance level of the one-sided test.
DEFAULT_ALPHA = 0.01
#: Smallest relative change of the median that counts (0.02: 2 % worse).
DEFAULT_MIN_EFFECT = 0.02
#: Fewest measurements per side for a verdict: with 5 and 5 the exact test's smallest p is 1/252 < 0.01.
MIN_SAMPLES = 5
_ROLLING = re.compile(r"rolling:(\d+)\Z")
SOURCE = "regress"


@dataclass(frozen=True)
class RegressRow:
    device: str
    point: str
    n_baseline: int
    n_candidate: int
    median_baseline: float | None
    median_candidate: float | None
    worse_by: float | None  # relative change of the median in the bad direction (negative: better)
    p_value: float | None  # one-sided, "the candidate is worse"
    verdict: str  # regression | failed | improvement | ~ | too few | no baseline


@dataclass(frozen=True)
class Regression:
    job: str
    metric: str
    higher_is_better: bool
    candidate: str
    baseline: list[str]
    baseline_spec: str
    alpha: float
    min_effect: float
    rows: list[RegressRow]
    synthetic: bool

    @property
    def regressions(self) -> list[RegressRow]:
        """Points that fail the check: regressed, or the candidate ran them without one measurement."""
        return [r for r in self.rows if r.verdict in ("regression", "failed")]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "regressed": len(self.regressions)}


def builds_in_order(data: JobData) -> list[str]:
    """The job's builds, the one that first ran earliest first."""
    first: dict[str, Any] = {}
    for r in data.rows:
        build = r.get(BUILD)
        if isinstance(build, str) and (build not in first or r["started_at"] < first[build]):
            first[build] = r["started_at"]
    return sorted(first, key=lambda b: (first[b], b))


def _short(builds: Sequence[str]) -> str:
    shown = ", ".join(b[:12] for b in builds[-10:])
    return ("…, " if len(builds) > 10 else "") + shown


def choose_builds(data: JobData, baseline: str, candidate: str | None = None) -> tuple[str, list[str]]:
    """(candidate, baseline builds); :class:`ConfigError` naming the field for an unknown build or a bad spec."""
    builds = builds_in_order(data)
    if not builds:
        raise ConfigError.single(
            SOURCE, "job", f"job {data.job!r} has no rows with a build (set build: in the job, see docs/jobs.md)"
        )
    if candidate is None:
        candidate = builds[-1]
    elif candidate not in builds:
        raise ConfigError.single(
            SOURCE, "--candidate", f"job {data.job!r} has no build {candidate!r} (builds: {_short(builds)})"
        )
    before = builds[: builds.index(candidate)]
    rolling = _ROLLING.match(baseline)
    if rolling:
        n = int(rolling.group(1))
        if n < 1:
            raise ConfigError.single(SOURCE, "--baseline", "rolling:N needs N >= 1")
        if not before:
            raise ConfigError.single(
                SOURCE, "--baseline", f"build {candidate[:12]!r} is the first build of job {data.job!r}: no baseline"
            )
        return candidate, before[-n:]
    if baseline.startswith("rolling"):
        raise ConfigError.single(SOURCE, "--baseline", f"expected BUILD or rolling:N, got {baseline!r}")
    if baseline not in builds:
        raise ConfigError.single(
            SOURCE, "--baseline", f"job {data.job!r} has no build {baseline!r} (builds: {_short(builds)})"
        )
    if baseline == candidate:
        raise ConfigError.single(SOURCE, "--baseline", f"the baseline is the candidate build {candidate[:12]!r}")
    return candidate, [baseline]


def headline_metric(data: JobData, metric: str | None) -> str:
    if metric is not None:
        return require_metric(data, metric, SOURCE)
    chosen = data.main_metric()
    if chosen is None:
        raise ConfigError.single(SOURCE, "job", f"job {data.job!r} has no measured metric")
    return chosen


def verdict(
    baseline: Sequence[float], candidate: Sequence[float], higher: bool, alpha: float, min_effect: float
) -> tuple[float | None, float | None, str]:
    """(worse_by, one-sided p of "worse", verdict) of one matched point."""
    if not baseline:
        return None, None, "no baseline"
    if len(baseline) < MIN_SAMPLES or len(candidate) < MIN_SAMPLES:
        return None, None, "too few"
    med_b, med_c = median(baseline), median(candidate)
    ratio = med_c / med_b if med_b else None
    worse_by = None if ratio is None else (1 - ratio if higher else ratio - 1)
    p_worse = mann_whitney_u(candidate, baseline, "less" if higher else "greater").p_value
    p_better = mann_whitney_u(candidate, baseline, "greater" if higher else "less").p_value
    if worse_by is not None and p_worse < alpha and worse_by >= min_effect:
        return worse_by, p_worse, "regression"
    if worse_by is not None and p_better < alpha and -worse_by >= min_effect:
        return worse_by, p_worse, "improvement"
    return worse_by, p_worse, "~"


def regress(
    data: JobData,
    baseline: str,
    *,
    candidate: str | None = None,
    metric: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    min_effect: float = DEFAULT_MIN_EFFECT,
) -> Regression:
    """Compare the candidate build of ``data`` with ``baseline`` (a build or ``rolling:N``) point by point."""
    if not 0 < alpha < 1:
        raise ConfigError.single(SOURCE, "--alpha", f"must be between 0 and 1, got {alpha}")
    if not 0 <= min_effect < 1:
        raise ConfigError.single(SOURCE, "--min-effect", f"must be in [0, 1), got {min_effect}")
    chosen = headline_metric(data, metric)
    cand, base = choose_builds(data, baseline, candidate)
    higher = higher_is_better(chosen)
    key = [SLOT, *data.axes]
    shown = [i for i, axis in enumerate(data.axes) if len(data.values(axis)) > 1]  # axes that tell points apart
    out = []
    measured = {id(r) for r in data.measurements}
    for point, ran in group_rows([r for r in data.rows if not r["warmup"]], key).items():
        if not any(r.get(BUILD) == cand for r in ran):
            continue  # the candidate did not run this point: nothing to judge
        rows = [r for r in ran if id(r) in measured]
        new = _samples(rows, chosen, {cand})
        old = _samples(rows, chosen, set(base))
        worse_by, p, word = verdict(old, new, higher, alpha, min_effect) if new else (None, None, "failed")
        out.append(
            RegressRow(
                device=str(point[0]),
                point=describe([data.axes[i] for i in shown], [point[1 + i] for i in shown]) or "(one point)",
                n_baseline=len(old),
                n_candidate=len(new),
                median_baseline=median(old) if old else None,
                median_candidate=median(new) if new else None,
                worse_by=worse_by,
                p_value=p,
                verdict=word,
            )
        )
    return Regression(data.job, chosen, higher, cand, base, baseline, alpha, min_effect, out, data.synthetic)


def _samples(rows: Sequence[Row], metric: str, builds: set[str]) -> list[float]:
    return finite([r.get(metric) for r in rows if r.get(BUILD) in builds])
