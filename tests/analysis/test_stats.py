"""Statistics against hand computations and closed forms of Student's t distribution."""

from __future__ import annotations

import math

import pytest

from farm.analysis.stats import (
    coefficient_of_variation,
    finite,
    median,
    percentile,
    regularized_incomplete_beta,
    significance_hint,
    summarize,
    t_two_sided_p,
    welch_t_test,
)


def test_median_odd_and_even() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([10.0, 12.0, 11.0], 0.9) == pytest.approx(11.8)  # pos 1.8 between 11 and 12
    assert percentile([float(i) for i in range(1, 11)], 0.9) == pytest.approx(9.1)  # pos 8.1
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1.0, 9.0], 0.0) == 1.0 and percentile([1.0, 9.0], 1.0) == 9.0
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_coefficient_of_variation_uses_sample_stdev() -> None:
    assert coefficient_of_variation([10.0, 12.0, 11.0]) == pytest.approx(1 / 11)  # stdev 1, mean 11
    assert coefficient_of_variation([7.0]) is None
    assert coefficient_of_variation([-1.0, 1.0]) is None


def test_summarize() -> None:
    s = summarize([20.0, 20.5, 19.5])
    assert (s.n, s.median, s.mean, s.min, s.max) == (3, 20.0, 20.0, 19.5, 20.5)
    assert s.p90 == pytest.approx(20.4)
    assert s.stdev == pytest.approx(0.5) and s.cv == pytest.approx(0.025)
    single = summarize([3.0])
    assert single.stdev is None and single.cv is None and single.p90 == 3.0


def test_finite_drops_missing_and_non_numbers() -> None:
    assert finite([1, 2.5, None, math.nan, math.inf, True, "3"]) == [1.0, 2.5]


def test_incomplete_beta_closed_forms() -> None:
    for x in (0.05, 0.3, 0.5, 0.77, 0.99):
        assert regularized_incomplete_beta(3.0, 1.0, x) == pytest.approx(x**3, rel=1e-12)
        assert regularized_incomplete_beta(1.0, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, rel=1e-12)
    assert regularized_incomplete_beta(2.0, 2.0, 0.0) == 0.0 and regularized_incomplete_beta(2.0, 2.0, 1.0) == 1.0


@pytest.mark.parametrize("t", [0.0, 0.5, 1.0, 2.0, 6.3, 40.0])
def test_t_p_value_matches_closed_forms(t: float) -> None:
    # df = 1 is the Cauchy distribution, df = 2 has a closed form too.
    assert t_two_sided_p(t, 1.0) == pytest.approx(1 - 2 / math.pi * math.atan(abs(t)), abs=1e-12)
    assert t_two_sided_p(-t, 2.0) == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), abs=1e-12)


def test_t_p_value_matches_table_critical_values() -> None:
    # Two-sided 5% critical values from a t table.
    for t, df in ((12.706, 1), (2.776, 4), (2.228, 10), (2.042, 30)):
        assert t_two_sided_p(t, df) == pytest.approx(0.05, abs=2e-4)


def test_welch_against_hand_computation() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0, 7.0]
    # var(a) = 5/3, var(b) = 5/2: se² = 5/12 + 1/2 = 11/12; t = 2.5 / sqrt(11/12)
    result = welch_t_test(a, b)
    assert result is not None
    assert result.t == pytest.approx(2.5 / math.sqrt(11 / 12))
    se_a, se_b = 5 / 12, 0.5
    assert result.df == pytest.approx((se_a + se_b) ** 2 / (se_a**2 / 3 + se_b**2 / 4))
    assert result.p == pytest.approx(t_two_sided_p(result.t, result.df))
    # t ≈ 2.61 with df ≈ 6.98: between the 5% (2.365) and 2% (2.998) critical values for df = 7.
    assert 0.02 < result.p < 0.05
    assert welch_t_test(b, a).t == pytest.approx(-result.t)  # type: ignore[union-attr]


def test_welch_degenerate_cases() -> None:
    assert welch_t_test([1.0], [1.0, 2.0]) is None
    same = welch_t_test([2.0, 2.0], [2.0, 2.0, 2.0])
    assert same is not None and same.p == 1.0
    apart = welch_t_test([2.0, 2.0], [3.0, 3.0])
    assert apart is not None and apart.p == 0.0 and apart.t == math.inf


def test_significance_hint() -> None:
    assert significance_hint([1.0], [2.0, 3.0]) == "n/a (n<2)"
    assert significance_hint([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0, 7.0]).endswith(" *")
    assert significance_hint([1.0, 2.0, 3.0], [1.5, 2.5, 2.0]) == "p=1"
    assert significance_hint([10.0, 10.1, 9.9], [20.0, 20.1, 19.9]) == "p<0.001 *"
