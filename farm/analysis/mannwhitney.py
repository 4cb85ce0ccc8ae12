"""The Mann-Whitney U test (Wilcoxon rank-sum), one-sided, in plain Python.

``U`` counts the pairs ``(x, y)`` with ``x > y`` (a tie counts one half). Under the null hypothesis that both
samples come from one distribution, ``U`` is distributed independently of that distribution, which is why
regression detection uses it: benchmark times are skewed and have outliers, and a rank test does not care.

The p-value is exact when there are no ties and both samples have at most :data:`EXACT_MAX` values (the
distribution of ``U`` counted by the Mann-Whitney recurrence); otherwise it is the normal approximation with the
tie-corrected variance and a continuity correction of one half (as ``scipy.stats.mannwhitneyu`` with
``method="asymptotic"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

#: Largest sample size (each side) for which the exact null distribution is used.
EXACT_MAX = 50

Alternative = Literal["less", "greater"]


@dataclass(frozen=True)
class MannWhitneyResult:
    u: float  # pairs with x > y, ties counting one half
    p_value: float  # one-sided, for the alternative asked
    method: Literal["exact", "normal"]


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Mid-ranks (1-based) of ``values`` and the sizes of the groups of tied values."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    ties: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


@lru_cache(maxsize=64)
def _u_counts(n: int, m: int) -> tuple[int, ...]:
    """How many of the C(n+m, n) orderings give each value 0..n*m of U (no ties): the coefficients of the
    Gaussian binomial ``prod_{i=1..n} (1 - q^(m+i)) / (1 - q^i)``, multiplied out one factor at a time."""
    size = n * m + 1
    poly = [1] + [0] * (size - 1)
    for i in range(1, n + 1):
        for j in range(size - 1, m + i - 1, -1):  # times (1 - q^(m+i))
            poly[j] -= poly[j - m - i]
        for j in range(i, size):  # divided by (1 - q^i): exact, the quotient is a polynomial
            poly[j] += poly[j - i]
    return tuple(poly)


def mann_whitney_u(x: Sequence[float], y: Sequence[float], alternative: Alternative) -> MannWhitneyResult:
    """Test whether ``x`` tends to be ``less`` (or ``greater``) than ``y``; ``ValueError`` if a side is empty."""
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("the Mann-Whitney test needs at least one value on each side")
    ranks, ties = _ranks([*x, *y])
    u = sum(ranks[:n]) - n * (n + 1) / 2
    if all(t == 1 for t in ties) and max(n, m) <= EXACT_MAX:
        counts = _u_counts(n, m)
        total = math.comb(n + m, n)
        k = round(u)
        tail = sum(counts[: k + 1]) if alternative == "less" else sum(counts[k:])
        return MannWhitneyResult(u, min(1.0, tail / total), "exact")
    mean = n * m / 2
    big_n = n + m
    tie_term = sum(t**3 - t for t in ties) / (big_n * (big_n - 1))
    variance = n * m / 12 * ((big_n + 1) - tie_term)
    if variance <= 0:  # every value equal: no evidence either way
        return MannWhitneyResult(u, 1.0, "normal")
    z = (u - mean + 0.5) / math.sqrt(variance) if alternative == "less" else (u - mean - 0.5) / math.sqrt(variance)
    p = 0.5 * math.erfc(z / math.sqrt(2)) if alternative == "greater" else 0.5 * math.erfc(-z / math.sqrt(2))
    return MannWhitneyResult(u, min(1.0, p), "normal")
