"""The stopping rule of adaptive repeats: t and bootstrap intervals, their determinism, when to stop."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from farm.stability import StoppingRule, bootstrap_interval, interval, should_stop, t_interval, t_quantile


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.975, 1, 12.706204736), (0.975, 4, 2.776445105), (0.95, 10, 1.812461123), (0.995, 30, 2.749995654)],
)
def test_t_quantiles_match_the_tables(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, rel=1e-8)


def test_t_interval_is_mean_plus_minus_t_times_standard_error() -> None:
    values = [10.0, 11.0, 9.0, 10.5, 9.5]
    iv = t_interval(values, 0.95)
    half = 2.776445105 * statistics.stdev(values) / math.sqrt(5)
    assert iv.center == pytest.approx(10.0)
    assert (iv.low, iv.high) == pytest.approx((10.0 - half, 10.0 + half))
    assert iv.rel_pct == pytest.approx(half / 10.0 * 100)


def test_t_interval_covers_the_true_mean_at_its_nominal_rate() -> None:
    rng = random.Random(7)
    hits = 0
    for _ in range(2000):
        sample = [rng.gauss(100.0, 5.0) for _ in range(6)]
        iv = t_interval(sample, 0.9)
        hits += iv.low <= 100.0 <= iv.high
    assert 0.88 <= hits / 2000 <= 0.92


def test_bootstrap_is_deterministic_per_seed_and_centered_on_the_median() -> None:
    values = [10.0, 10.2, 9.7, 10.1, 30.0, 9.9, 10.05]
    a = bootstrap_interval(values, 0.95, seed=1, resamples=1000)
    assert a == bootstrap_interval(values, 0.95, seed=1, resamples=1000)
    assert a.center == statistics.median(values)  # the outlier moves the median little
    assert a.low <= a.center <= a.high and a.high < 30.0
    rule = StoppingRule(3, 10, 5.0, method="bootstrap", seed=4)
    assert interval(rule, values, "p1") == interval(rule, list(values), "p1")


def test_the_rule_needs_min_then_stops_when_narrow_and_always_at_max() -> None:
    rule = StoppingRule(min=3, max=6, ci_pct=2.0)
    stable = [100.0, 100.1, 99.9]
    assert not should_stop(rule, stable[:2], 2)  # fewer than min: never
    assert should_stop(rule, stable, 3)
    noisy = [100.0, 130.0, 70.0, 120.0, 80.0]
    assert not should_stop(rule, noisy, 5)
    assert should_stop(rule, [*noisy, 110.0], 6)  # max reached, however wide
    assert not should_stop(rule, [100.0], 4)  # one value (the others failed): no interval, go on
    assert interval(rule, [100.0]) is None


def test_a_zero_centered_interval_is_infinitely_wide() -> None:
    iv = t_interval([-1.0, 1.0, 0.0], 0.95)
    assert iv.rel_pct == math.inf
    assert not should_stop(StoppingRule(2, 5, 50.0), [-1.0, 1.0, 0.0], 3)
