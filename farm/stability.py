"""The stopping rule of adaptive repeats: a confidence interval of a point's headline metric, and whether it is
narrow enough to stop repeating. Pure and deterministic: no I/O, no clock, the bootstrap is seeded.

Two intervals (docs/measurement.md, "Adaptive repeats"):

- ``t``: the Student-t interval of the **mean**, ``mean ± t(1-α/2, n-1) · s / √n``. Assumes independent repeats
  whose mean is close to normally distributed (true for roughly normal run-to-run noise; poor for heavy tails or
  a bimodal device);
- ``bootstrap``: the percentile bootstrap interval of the **median** from ``resamples`` resamples drawn with a
  generator seeded by the job's seed and the point, so the same values always give the same interval. Assumes
  only independent, identically distributed repeats; with few values (n < 5) it is too narrow — it cannot be
  wider than the range of the values.

The width is the larger of the two sides relative to the center: ``ci_rel_pct = max(high - center,
center - low) / |center| · 100`` ("the interval is within ±X % of the mean / median").
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Method = Literal["t", "bootstrap"]


@dataclass(frozen=True)
class StoppingRule:
    """At least ``min`` and at most ``max`` measured repeats; stop once the interval is within ±``ci_pct`` %."""

    min: int
    max: int
    ci_pct: float
    confidence: float = 0.95
    method: Method = "t"
    seed: int = 0
    resamples: int = 2000


@dataclass(frozen=True)
class Interval:
    center: float  # the mean (t) or the median (bootstrap)
    low: float
    high: float
    n: int
    method: Method

    @property
    def rel_pct(self) -> float:
        """The larger side of the interval as a percentage of the center (infinite around a zero center)."""
        half = max(self.high - self.center, self.center - self.low)
        return math.inf if self.center == 0 else half / abs(self.center) * 100.0


def interval(rule: StoppingRule, values: Sequence[float], key: str = "") -> Interval | None:
    """The rule's interval of ``values`` (None with fewer than two); ``key`` names the point for the bootstrap's
    seed, so two points never share a resampling stream and one point's interval never depends on run order."""
    if len(values) < 2:
        return None
    if rule.method == "t":
        return t_interval(values, rule.confidence)
    seed = int.from_bytes(hashlib.sha256(f"{rule.seed}:{key}".encode()).digest()[:8], "little")
    return bootstrap_interval(values, rule.confidence, seed, rule.resamples)


def should_stop(rule: StoppingRule, values: Sequence[float], measured: int, key: str = "") -> bool:
    """True once ``measured`` repeats reach ``max``, or reach ``min`` with an interval within ``ci_pct``."""
    if measured >= rule.max:
        return True
    if measured < rule.min:
        return False
    iv = interval(rule, values, key)
    return iv is not None and iv.rel_pct <= rule.ci_pct


def t_interval(values: Sequence[float], confidence: float) -> Interval:
    n = len(values)
    mean = statistics.fmean(values)
    half = t_quantile((1 + confidence) / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, "t")


def bootstrap_interval(values: Sequence[float], confidence: float, seed: int, resamples: int) -> Interval:
    rng = random.Random(seed)
    n = len(values)
    data = list(values)
    medians = sorted(statistics.median(rng.choices(data, k=n)) for _ in range(resamples))
    alpha = (1 - confidence) / 2
    low = medians[max(0, math.floor(alpha * resamples))]
    high = medians[min(resamples - 1, math.ceil((1 - alpha) * resamples) - 1)]
    return Interval(statistics.median(data), low, high, n, "bootstrap")


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom, by bisection on the CDF."""
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def _t_cdf(t: float, df: int) -> float:
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2, 0.5, x)
    return 1 - tail if t >= 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (continued fraction, modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(ln_front) * f / a
