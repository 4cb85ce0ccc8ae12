"""How many of a job's runs one call to a device carries (``farm/batching.py``)."""

from __future__ import annotations

import math

from farm.batching import BatchSizer


def test_a_job_starts_with_one_run_per_call() -> None:
    assert BatchSizer().size() == 1


def test_short_runs_fill_the_window_up_to_the_cap_and_long_ones_keep_one() -> None:
    assert BatchSizer(window_s=0.25, max_size=64).observe([0.002] * 3) == 64
    assert BatchSizer(window_s=0.25, max_size=64).observe([0.01]) == 25
    assert BatchSizer(window_s=0.25, max_size=64).observe([1.0, 2.0]) == 1


def test_the_size_follows_a_moving_average_and_ignores_durations_that_are_not_numbers() -> None:
    sizer = BatchSizer(window_s=0.25, max_size=64, weight=0.5)
    sizer.observe([0.01, math.nan, -1.0])
    assert sizer.mean_s == 0.01
    assert sizer.observe([0.03]) == 12  # mean 0.02 s: 12 runs in 0.25 s
    assert sizer.observe([]) == 12


def test_a_zero_window_turns_batching_off() -> None:
    assert BatchSizer(window_s=0.0).observe([0.001]) == 1
