"""Grid expansion: ranges (stop inclusive, exact float steps), zip groups, include/exclude, counts, errors."""

from __future__ import annotations

import itertools
import random
import time
import tracemalloc
from typing import Any

import pytest

from farm.grid import MAX_POINTS, GridError, parse_grid


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
        ({"r": {"start": 0, "stop": 10_000_000}}, "r", "range has 10000001 values; a grid has at most 1000000"),
        ({"r": {"start": 0, "stop": 1e300, "step": 1e-300}}, "r", "range has more than 10^60 values"),
        ({"t": [1, 2**64]}, "t[1]", "integers must fit in 64 bits"),
        ({"t": ["a\x00b"]}, "t[0]", "a NUL character cannot be passed"),
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


# -- sizes are counted, never enumerated ---------------------------------------------------------------------


def test_ten_axes_of_a_thousand_with_exclude_is_refused_by_counting() -> None:
    raw: dict[str, Any] = {name: {"start": 0, "stop": 999} for name in "abcdefghij"}
    raw["exclude"] = [{"a": 1}]
    start = time.perf_counter()
    path, reason = error(raw)
    assert time.perf_counter() - start < 1.0  # walking the 10^30 points would never end
    assert path == ""
    assert reason == f"the grid has {10**30} points (before exclude); the limit is {MAX_POINTS}"


def test_ranges_are_never_materialised() -> None:
    tracemalloc.start()
    try:
        start = time.perf_counter()
        path, reason = error({k: {"start": 0, "stop": 999_999} for k in "xyz"})
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (path, reason) == ("", f"the grid has {10**18} points (before exclude); the limit is {MAX_POINTS}")
    assert elapsed < 1.0 and peak < 1 << 20  # was 7 s and 1 GB: three lists of a million values


def test_a_million_point_range_is_indexed_lazily() -> None:
    tracemalloc.start()
    try:
        grid = parse_grid({"x": {"start": 0, "stop": 999_999}, "exclude": [{"x": 7}, {"x": 999_999}]})
        assert grid.count() == 999_998
        assert grid.point_at(123_456) == {"x": 123_456}
        assert grid.point_at(7) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_size_limit_counts_includes() -> None:
    path, reason = error({"x": {"start": 1, "stop": MAX_POINTS}, "include": [{"x": 0}]})
    assert (path, reason) == ("", f"the grid has {MAX_POINTS + 1} points (before exclude); the limit is {MAX_POINTS}")
    assert parse_grid({"x": {"start": 1, "stop": MAX_POINTS}}).count() == MAX_POINTS


def test_exclude_everything_of_a_big_grid_is_found_by_counting() -> None:
    raw = {"a": {"start": 0, "stop": 999}, "b": {"start": 0, "stop": 999}, "exclude": [{"a": 3}, {"b": 0.0}]}
    start = time.perf_counter()
    grid = parse_grid(raw)
    assert grid.count() == 999 * 999
    assert time.perf_counter() - start < 1.0
    assert error({**raw, "c": [1], "exclude": [{"c": 1}]}) == ("exclude", "excludes every point of the grid")


def test_range_membership_is_exact_for_float_steps() -> None:
    grid = parse_grid({"r": {"start": 0.0, "stop": 1.0, "step": 0.1}, "exclude": [{"r": 0.3}, {"r": 0.35}]})
    assert grid.count() == 10
    assert 0.3 not in [p["r"] for p in grid.points()]
    # An include equal to a range value (same type) would run twice; 5.0 is another value than 5.
    assert error({"n": {"start": 0, "stop": 9}, "include": [{"n": 5}]}) == (
        "include[0]",
        "this point is already in the grid",
    )
    assert parse_grid({"n": {"start": 0, "stop": 9}, "include": [{"n": 5.0}]}).count() == 11


@pytest.mark.parametrize("seed", range(40))
def test_count_matches_enumeration(seed: int) -> None:
    rng = random.Random(seed)
    values: list[Any] = [0, 1, 2, 1.0, 2.5, True, False, "x", "y"]
    raw: dict[str, Any] = {}
    for name in ("a", "b", "c")[: rng.randint(1, 3)]:
        if rng.random() < 0.3:
            raw[name] = {"start": rng.choice([0, 0.5]), "stop": rng.randint(1, 5)}
        else:
            raw[name] = rng.sample(values, rng.randint(1, 4))
    if rng.random() < 0.5:
        raw["zip"] = [{"p": v, "q": str(v)} for v in rng.sample(values, rng.randint(1, 3))]
    names = [n for n in raw if n != "zip"] + (["p", "q"] if "zip" in raw else [])
    raw["exclude"] = [
        {n: rng.choice([*values, 3, 4]) for n in rng.sample(names, rng.randint(1, min(2, len(names))))}
        for _ in range(rng.randint(0, 4))
    ]
    try:
        grid = parse_grid(raw)
    except GridError as exc:
        assert exc.reason == "excludes every point of the grid", exc.issues
        return
    assert grid.count() == len(list(grid.points()))


def test_every_grid_problem_is_reported() -> None:
    with pytest.raises(GridError) as info:
        parse_grid({"a": [1, 1], "b": [], "c": {"start": 0}, "2d": [1], "zip": [{"a": 1}]})
    assert info.value.issues == [
        ("a[1]", "duplicate value 1"),
        ("b", "empty axis: give at least one value"),
        ("c.stop", "required key is missing"),
        ("2d", "axis names must be identifiers (letters, digits, '_')"),
    ]


def test_many_exclude_rules_are_counted_fast_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    raw: dict[str, Any] = {a: list(range(10)) for a in "abcdef"}
    raw["exclude"] = [{k: rng.randrange(10) for k in rng.sample("abcdef", 3)} for _ in range(3000)]
    start = time.process_time()
    grid = parse_grid(raw)
    assert grid.count() == 51475  # checked once against the union of the rules' point sets
    assert time.process_time() - start < 1.0
    monkeypatch.setattr("farm.grid._COUNT_BUDGET", 1000)
    assert error(raw) == ("exclude", "3000 exclude rules are too intricate to count; use fewer")
