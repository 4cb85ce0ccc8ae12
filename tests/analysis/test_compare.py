"""Comparing two jobs: matching, medians, B/A, verdicts by the metric's direction, pooled axes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm.analysis.compare import compare_jobs, parse_where
from farm.errors import ConfigError
from tests.analysis.jobs import job


def _rows(threads: int, decode: list[float], latency: list[float], **extra: Any) -> list[dict[str, Any]]:
    return [
        {"p_threads": threads, "repeat": i, "decode_tokens_per_s": d, "latency_ms": lat, **extra}
        for i, (d, lat) in enumerate(zip(decode, latency, strict=True))
    ]


def test_matched_points_ratios_and_verdicts(tmp_path: Path) -> None:
    a = job(tmp_path, "build-a", [
        *_rows(4, [10.0, 10.2, 9.8], [100.0, 101.0, 99.0]),
        *_rows(8, [20.0, 21.0, 19.0], [50.0, 50.0, 50.0]),
        *_rows(2, [5.0, 5.0], [200.0, 200.0], slot="phone-2"),
    ])  # fmt: skip
    b = job(tmp_path, "build-b", [
        *_rows(4, [12.0, 12.2, 11.8], [120.0, 121.0, 119.0], p_build="x"),
        *_rows(8, [20.5, 19.5, 20.0], [50.0, 50.0, 50.0], p_build="x"),
        *_rows(16, [30.0, 30.0], [40.0, 40.0], p_build="x"),
    ])  # fmt: skip
    result = compare_jobs(a, b)
    assert result.metrics == ["decode_tokens_per_s", "latency_ms"]
    assert result.key_axes == ["p_threads"] and result.only_b == ["p_build"] and result.only_a == []
    assert (result.unmatched_a, result.unmatched_b) == (1, 1)
    rows = {(r.point["threads"], r.metric): r for r in result.rows}
    assert set(rows) == {(4, "decode_tokens_per_s"), (4, "latency_ms"), (8, "decode_tokens_per_s"), (8, "latency_ms")}

    faster = rows[(4, "decode_tokens_per_s")]
    assert (faster.median_a, faster.median_b, faster.n_a, faster.n_b) == (10.0, 12.0, 3, 3)
    assert faster.ratio == pytest.approx(1.2) and faster.p_value is not None and faster.p_value < 0.001
    assert faster.verdict == "better"
    slower = rows[(4, "latency_ms")]  # a higher latency is a regression
    assert slower.ratio == pytest.approx(1.2) and slower.verdict == "worse"
    same = rows[(8, "decode_tokens_per_s")]
    assert same.ratio == 1.0 and same.verdict == "~" and same.p_value == pytest.approx(1.0)
    assert rows[(8, "latency_ms")].verdict == "~"  # identical and without spread
    payload = result.to_json()
    assert payload["only_b"] == ["build"] and payload["rows"][0]["device"] == "phone-1"


def test_few_repeats_give_no_verdict(tmp_path: Path) -> None:
    a = job(tmp_path, "a", _rows(4, [10.0], [1.0]))
    b = job(tmp_path, "b", _rows(4, [20.0, 20.0], [1.0, 1.0]))
    (row,) = compare_jobs(a, b, ["decode_tokens_per_s"]).rows
    assert row.ratio == 2.0 and row.p_value is None and row.verdict == "?"


def test_metric_must_be_in_both(tmp_path: Path) -> None:
    a = job(tmp_path, "a", _rows(4, [10.0], [1.0]))
    b = job(tmp_path, "b", [{"p_threads": 4, "decode_tokens_per_s": 3.0}])
    with pytest.raises(ConfigError, match=r"not measured by both jobs: latency_ms \(common metrics: decode"):
        compare_jobs(a, b, ["latency_ms"])


def test_an_axis_only_one_job_varies_is_refused_not_pooled(tmp_path: Path) -> None:
    a = job(tmp_path, "a", [*_rows(4, [10.0, 10.2], [1.0, 1.0])])
    # B ran two builds at threads=4: pooling them would give one confident verdict about two configurations.
    old, new = _rows(4, [5.0, 5.0], [1.0, 1.0], p_build="old"), _rows(4, [20.0, 20.4], [1.0, 1.0], p_build="new")
    b = job(tmp_path, "b", [*old, *new])
    refused = r"axis 'build' is only in B \(b\) and takes several values there \(new, old\)"
    with pytest.raises(ConfigError, match=refused):
        compare_jobs(a, b)
    pooled = compare_jobs(a, b, ["decode_tokens_per_s"], pool=True)
    assert pooled.warnings == ["B pooled over build (new, old): only b has that axis"]
    (row,) = compare_jobs(a, b, ["decode_tokens_per_s"], where={"p_build": "new"}).rows
    assert row.median_a == pytest.approx(10.1) and row.median_b == pytest.approx(20.2)
    assert (row.n_b, row.verdict) == (2, "better")


def test_where_filters_both_jobs_and_differing_grids_are_named(tmp_path: Path) -> None:
    a = job(tmp_path, "a", [*_rows(4, [10.0, 10.0], [1.0, 1.0]), *_rows(8, [20.0, 20.0], [1.0, 1.0])])
    b = job(tmp_path, "b", [*_rows(4, [11.0, 11.0], [1.0, 1.0]), *_rows(16, [30.0, 30.0], [1.0, 1.0])])
    result = compare_jobs(a, b, ["decode_tokens_per_s"])
    assert result.warnings == [
        "the grids differ on threads (only in A: 8; only in B: 16): those points are not compared"
    ]
    assert [r.point for r in result.rows] == [{"threads": 4}] and (result.unmatched_a, result.unmatched_b) == (1, 1)
    where = compare_jobs(a, b, ["decode_tokens_per_s"], where={"p_threads": "4"})
    assert (
        where.warnings == []
        and [r.median_b for r in where.rows] == [11.0]
        and where.to_json()["where"] == {"threads": "4"}
    )
    with pytest.raises(ConfigError, match=r"no axis model in either job \(axes: threads\)"):
        compare_jobs(a, b, where={"p_model": "x"})


def test_parse_where() -> None:
    assert parse_where(["threads=4", "p_model = a=b"]) == {"p_threads": "4", "p_model": "a=b"}
    with pytest.raises(ConfigError, match="expected AXIS=VALUE"):
        parse_where(["threads"])
