"""Summary statistics over repeats and a two-sample significance test, in plain Python (no numpy/scipy).

Definitions used everywhere in the analysis (and stated in the reports):

- median: the middle value, or the mean of the two middle values;
- percentile (p90): linear interpolation between closest ranks on the sorted values, position ``(n - 1) * q``
  (numpy's default method, Excel's ``PERCENTILE.INC``);
- coefficient of variation (CV): sample standard deviation (``n - 1`` denominator) over the mean; undefined
  with fewer than two values or a zero mean;
- significance: Welch's unequal-variance t-test, two-sided; the p-value comes from Student's t distribution
  through the regularized incomplete beta function.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: Below this p-value a difference is called significant in hints.
DEFAULT_ALPHA = 0.05


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (raises ``ValueError`` when empty)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0 ≤ q ≤ 1) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Sample standard deviation over mean; ``None`` with fewer than two values or a zero mean."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    if mean == 0:
        return None
    return statistics.stdev(values) / abs(mean)


@dataclass(frozen=True)
class Summary:
    """Statistics of one metric over the repeats of one grid point on one device."""

    n: int
    median: float
    p90: float
    mean: float
    stdev: float | None
    cv: float | None
    min: float
    max: float


def summarize(values: Sequence[float]) -> Summary:
    """The :class:`Summary` of a non-empty sequence of finite numbers."""
    if not values:
        raise ValueError("summary of no values")
    return Summary(
        n=len(values),
        median=median(values),
        p90=percentile(values, 0.9),
        mean=statistics.fmean(values),
        stdev=statistics.stdev(values) if len(values) > 1 else None,
        cv=coefficient_of_variation(values),
        min=float(min(values)),
        max=float(max(values)),
    )


def finite(values: Sequence[object]) -> list[float]:
    """The finite numbers among ``values`` (drops ``None``, NaN, ±inf, bools and non-numbers)."""
    out: list[float] = []
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


# -- Student's t through the regularized incomplete beta function --------------------------------------------


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    # Lentz's method on the continued fraction of I_x(a, b) (Numerical Recipes §6.4); converges quickly for
    # x < (a + 1) / (a + b + 2), which the caller guarantees by symmetry.
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 ≤ x ≤ 1."""
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be positive")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class WelchResult:
    """Welch's t-test of ``b`` against ``a``: ``t > 0`` means b's mean is larger."""

    t: float
    df: float
    p: float


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult | None:
    """Two-sided Welch's t-test; ``None`` when either sample has fewer than two values.

    Two samples without any spread are equal (p = 1) or certainly different (p = 0).
    """
    if len(a) < 2 or len(b) < 2:
        return None
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    se_a = statistics.variance(a) / len(a)
    se_b = statistics.variance(b) / len(b)
    se = se_a + se_b
    if se == 0:
        same = mean_a == mean_b
        t_inf = 0.0 if same else math.copysign(math.inf, mean_b - mean_a)
        return WelchResult(t=t_inf, df=math.inf, p=1.0 if same else 0.0)
    t = (mean_b - mean_a) / math.sqrt(se)
    df = se * se / (se_a * se_a / (len(a) - 1) + se_b * se_b / (len(b) - 1))
    return WelchResult(t=t, df=df, p=t_two_sided_p(t, df))


def significance_hint(a: Sequence[float], b: Sequence[float], alpha: float = DEFAULT_ALPHA) -> str:
    """A short human hint: ``p=0.003 *`` (significant at ``alpha``), ``p=0.41``, or ``n/a (n<2)``."""
    result = welch_t_test(a, b)
    if result is None:
        return "n/a (n<2)"
    mark = " *" if result.p < alpha else ""
    return f"p={result.p:.2g}{mark}" if result.p >= 0.001 else f"p<0.001{mark}"
