"""Grid expansion: ranges (stop inclusive, exact float steps), zip groups, include/exclude, counts, errors."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from farm.grid import GridError, parse_grid


def points(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return list(parse_grid(raw).points())


def error(raw: object) -> tuple[str, str]:
    with pytest.raises(GridError) as info:
        parse_grid(raw)
    return info.value.path, info.value.reason


def test_float_range_is_exact_and_inclusive() -> None:
    values = [p["r"] for p in points({"r": {"start": 0.0, "stop": 1.0, "step": 0.1}})]
    assert values == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert all(isinstance(v, float) for v in values)


def test_int_range_stays_int_and_stop_not_on_step_is_left_out() -> None:
    assert [p["n"] for p in points({"n": {"start": 1, "stop": 7, "step": 2}})] == [1, 3, 5, 7]
    assert [p["n"] for p in points({"n": {"start": 1, "stop": 3}})] == [1, 2, 3]
    assert [p["x"] for p in points({"x": {"start": 0, "stop": 1, "step": 0.3}})] == [0.0, 0.3, 0.6, 0.9]


def test_product_order_last_axis_fastest() -> None:
    assert points({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def test_scalar_axis_is_one_value() -> None:
    assert points({"threads": 4}) == [{"threads": 4}]


def test_zip_group_moves_together() -> None:
    grid = parse_grid({"batch": [1, 8], "zip": [{"threads": 8, "cores": "0-7"}, {"threads": 4, "cores": "4-7"}]})
    assert grid.names == ("batch", "threads", "cores")
    assert grid.count() == 4
    assert list(grid.points()) == [
        {"batch": 1, "threads": 8, "cores": "0-7"},
        {"batch": 1, "threads": 4, "cores": "4-7"},
        {"batch": 8, "threads": 8, "cores": "0-7"},
        {"batch": 8, "threads": 4, "cores": "4-7"},
    ]


def test_several_zip_groups_multiply() -> None:
    grid = parse_grid(
        {
            "zip": [
                [{"threads": 8, "cores": "0-7"}, {"threads": 4, "cores": "4-7"}],
                [{"load": 0, "cache": 0}, {"load": 1, "cache": 1}, {"load": 1, "cache": 0}],
            ]
        }
    )
    assert grid.count() == 6
    got = [(p["threads"], p["cores"], p["load"], p["cache"]) for p in grid.points()]
    expected = [
        (t, c, lo, ca) for (t, c), (lo, ca) in itertools.product([(8, "0-7"), (4, "4-7")], [(0, 0), (1, 1), (1, 0)])
    ]
    assert got == expected


def test_include_appends_and_exclude_removes() -> None:
    grid = parse_grid(
        {
            "a": [1, 2, 3],
            "b": [True, False],
            "include": [{"a": 99, "b": True}],
            "exclude": [{"a": 2}, {"a": 3, "b": False}],
        }
    )
    assert list(grid.points()) == [
        {"a": 1, "b": True},
        {"a": 1, "b": False},
        {"a": 3, "b": True},
        {"a": 99, "b": True},
    ]
    assert grid.count() == 4
    assert grid.index_space == 7


def test_exclude_compares_numbers_by_value_but_not_booleans() -> None:
    assert points({"a": [1, 2], "exclude": [{"a": 1.0}]}) == [{"a": 2}]
    assert points({"a": [1, True], "exclude": [{"a": True}]}) == [{"a": 1}]


def test_counts_match_points() -> None:
    raw = {"a": {"start": 0, "stop": 9}, "b": ["x", "y", "z"], "zip": [{"c": 1, "d": 2}, {"c": 3, "d": 4}]}
    grid = parse_grid(raw)
    assert grid.count() == 60 == len(list(grid.points())) == grid.product_size


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        ({}, "", "the grid is empty"),
        ([1, 2], "", "expected a mapping"),
        ({"t": []}, "t", "empty axis"),
        ({"t": [1, [2]]}, "t[1]", "expected a number, string or boolean, got list"),
        ({"t": [1, {"a": 1}, 3]}, "t[1]", "expected a number, string or boolean, got dict"),
        ({"t": [1, 1]}, "t[1]", "duplicate value 1"),
        ({"t": [1.5, float("nan")]}, "t[1]", "values must be finite numbers"),
        ({"2x": [1]}, "2x", "axis names must be identifiers"),
        ({"device": [1]}, "device", "'device' is reserved"),
        ({"r": {"start": 0, "stop": 1, "step": 0}}, "r.step", "must be positive"),
        ({"r": {"start": 2, "stop": 1}}, "r.stop", "must not be below start"),
        ({"r": {"start": 0}}, "r.stop", "required key is missing"),
        ({"r": {"start": 0, "stop": 1, "stepp": 1}}, "r.stepp", "unknown key"),
        ({"r": {"start": "0", "stop": 1}}, "r.start", "expected a number"),
        ({"r": {"start": 0, "stop": 10_000_000}}, "r", "range has 10000001 values"),
        ({"zip": []}, "zip", "expected a non-empty list"),
        ({"zip": [{"a": 1, "b": 2}, {"a": 2, "c": 3}]}, "zip[1]", "keys ['a', 'c'] differ"),
        ({"zip": [{"a": 1}, {"a": 1}]}, "zip[1]", "duplicate row"),
        ({"a": [1], "zip": [{"a": 2}]}, "zip[0].a", "axis 'a' is defined twice"),
        ({"zip": [[{"a": 1}], []]}, "zip[1]", "empty zip group"),
        ({"a": [1, 2], "include": [{"a": 3, "b": 1}]}, "include[0].b", "not an axis of this grid"),
        ({"a": [1], "b": [2], "include": [{"a": 3}]}, "include[0]", "must set every axis; missing ['b']"),
        ({"a": [1, 2], "include": [{"a": 2}]}, "include[0]", "already in the grid"),
        ({"a": [1], "include": [{"a": 3}, {"a": 3}]}, "include[1]", "duplicate included point"),
        ({"a": [1, 2], "exclude": [{"z": 1}]}, "exclude[0].z", "not an axis of this grid"),
        ({"a": [1, 2], "exclude": [{"a": 1}, {"a": 2}]}, "exclude", "excludes every point"),
        ({"include": [{"a": 1}]}, "", "the grid has no axes"),
    ],
)
def test_errors_name_the_path_below_grid(raw: object, path: str, reason: str) -> None:
    got_path, got_reason = error(raw)
    assert got_path == path
    assert reason in got_reason
