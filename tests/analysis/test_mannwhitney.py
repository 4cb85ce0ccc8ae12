"""The Mann-Whitney U test against values worked out by hand (exact counts and the normal formula)."""

from __future__ import annotations

import math
import random

import pytest

from farm.analysis.mannwhitney import _u_counts, mann_whitney_u


def test_exact_distribution_counts_every_ordering() -> None:
    # n=3, m=2: the 10 orderings give U = 0,1,2,2,3,3,4,4,5,6 (listed by hand)
    assert _u_counts(3, 2) == (1, 1, 2, 2, 2, 1, 1)
    assert sum(_u_counts(50, 50)) == math.comb(100, 50)
    assert _u_counts(4, 4) == _u_counts(4, 4)[::-1]  # symmetric about n*m/2


def test_exact_p_values() -> None:
    lo, hi = [1.0, 2, 3, 4, 5], [6.0, 7, 8, 9, 10]
    res = mann_whitney_u(lo, hi, "less")
    assert (res.u, res.method) == (0.0, "exact")
    assert res.p_value == pytest.approx(1 / 252)  # the one ordering of C(10, 5) with every x below every y
    assert mann_whitney_u(lo, hi, "greater").p_value == 1.0
    # x=[1, 4], y=[2, 3]: U = 2; P(U <= 2) for n=m=2 counts U in {0, 1, 2}: 1 + 1 + 2 of 6
    assert mann_whitney_u([1.0, 4], [2.0, 3], "less").p_value == pytest.approx(4 / 6)


def test_ties_use_the_normal_approximation_with_tie_correction() -> None:
    # mid-ranks: x gets 1, 3, 3, 5.5 -> R = 12.5, U = 2.5; mean 10; sum(t^3 - t) = 36 over groups 3, 2, 2;
    # var = 4*5/12 * (10 - 36/72) = 15.8333; z = (2.5 - 10 + 0.5) / sqrt(var) = -1.7592 -> Phi(z) = 0.03927
    res = mann_whitney_u([1.0, 2, 2, 3], [2.0, 3, 4, 4, 5], "less")
    assert (res.u, res.method) == (2.5, "normal")
    assert res.p_value == pytest.approx(0.03927, abs=5e-5)
    assert mann_whitney_u([3.0, 3, 3], [3.0, 3, 3], "less").p_value == 1.0  # all equal: no evidence


def test_normal_approximation_agrees_with_the_exact_distribution() -> None:
    rng = random.Random(7)
    x = [rng.gauss(0, 1) for _ in range(51)]  # 51 > EXACT_MAX: the normal approximation
    y = [rng.gauss(0.4, 1) for _ in range(51)]
    normal = mann_whitney_u(x, y, "less")
    assert normal.method == "normal" and normal.p_value < 0.05
    exact_p = sum(_u_counts(51, 51)[: round(normal.u) + 1]) / math.comb(102, 51)
    assert normal.p_value == pytest.approx(exact_p, abs=0.002)


def test_empty_side_is_an_error() -> None:
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0], "less")
