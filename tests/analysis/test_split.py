"""Best CPU/GPU split ratio and its speed-ups over CPU-only and GPU-only, on hand-made latencies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm.analysis.split import analyze_split
from farm.errors import ConfigError
from tests.analysis.jobs import job

SHAPE_A = {"p_input_shape": "1,56,56,64", "p_weight_shape": "64,64,3,3", "p_strides": "1,1"}
SHAPE_B = {"p_input_shape": "1,14,14,256", "p_weight_shape": "512,256,3,3", "p_strides": "2,2"}
COMMAND = "./codl_op_run --op_type=Conv2D --compute --num_threads=4"


def latency_rows(
    device: str, shape: dict[str, str], by_ratio: dict[float, list[float]], **extra: Any
) -> list[dict[str, Any]]:
    return [
        {"slot": device, **shape, "p_part_ratio": ratio, "p_part_dim": 1, "p_gpu_memory_type": 2,
         "repeat": i, "latency_ms": lat, "ops_per_s": 1000 / lat, "command": COMMAND, **extra}
        for ratio, lats in by_ratio.items()
        for i, lat in enumerate(lats)
    ]  # fmt: skip


def split_rows() -> list[dict[str, Any]]:
    return [
        *latency_rows("phone-1", SHAPE_A, {0.0: [10, 12], 0.5: [6, 6.4], 1.0: [8, 8]}, fp_soc="sm8550"),
        *latency_rows("phone-1", SHAPE_B, {0.0: [5, 5], 0.5: [7, 7], 1.0: [9, 9]}, fp_soc="sm8550"),
        *latency_rows("phone-2", SHAPE_A, {0.5: [4, 4], 1.0: [5, 5]}),
        {"slot": "phone-1", **SHAPE_A, "p_part_ratio": 0.5, "p_part_dim": 1, "p_gpu_memory_type": 2,
         "status": "failed", "error": "exit code 1", "command": COMMAND},
    ]  # fmt: skip


def test_best_ratio_and_speedups(tmp_path: Path) -> None:
    result = analyze_split(job(tmp_path, "codl", split_rows()))
    assert result.metric == "latency_ms" and not result.higher_is_better
    rows = {(r.device, r.point["input_shape"]): r for r in result.rows}
    a = rows[("phone-1", "1,56,56,64")]
    assert (a.best_ratio, a.best, a.cpu_only, a.gpu_only) == (0.5, 6.2, 11.0, 8.0)
    assert a.speedup_vs_cpu == pytest.approx(11 / 6.2) and a.speedup_vs_gpu == pytest.approx(8 / 6.2)
    assert a.by_ratio == {0.0: 11.0, 0.5: 6.2, 1.0: 8.0} and a.n == 6
    assert a.point == {"part_dim": 1, "gpu_memory_type": 2, "input_shape": "1,56,56,64",
                       "weight_shape": "64,64,3,3", "strides": "1,1"}  # fmt: skip
    b = rows[("phone-1", "1,14,14,256")]  # CPU-only wins: no co-execution gain
    assert (b.best_ratio, b.speedup_vs_cpu, b.speedup_vs_gpu) == (0.0, 1.0, 9 / 5)
    c = rows[("phone-2", "1,56,56,64")]  # never ran CPU-only
    assert c.cpu_only is None and c.speedup_vs_cpu is None and c.speedup_vs_gpu == pytest.approx(5 / 4)
    first = result.to_json()["rows"][0]  # rows are ordered by device, then the op configuration
    assert first["point"]["input_shape"] == "1,14,14,256"
    assert first["by_ratio"] == [
        {"ratio": 0.0, "median": 5.0},
        {"ratio": 0.5, "median": 7.0},
        {"ratio": 1.0, "median": 9.0},
    ]


def test_rate_metric_picks_the_highest(tmp_path: Path) -> None:
    result = analyze_split(job(tmp_path, "codl", split_rows()), metric="ops_per_s")
    assert result.higher_is_better
    a = next(r for r in result.rows if r.device == "phone-1" and r.point["input_shape"] == "1,56,56,64")
    assert a.best_ratio == 0.5 and a.best == pytest.approx((1000 / 6 + 1000 / 6.4) / 2)
    assert a.speedup_vs_gpu == pytest.approx(a.best / 125.0)


def test_errors(tmp_path: Path) -> None:
    data = job(tmp_path, "codl", split_rows())
    with pytest.raises(ConfigError, match="no metric 'energy_mj'"):
        analyze_split(data, metric="energy_mj")
    with pytest.raises(ConfigError, match="not a split sweep"):
        analyze_split(job(tmp_path, "other", [{"p_threads": 4, "latency_ms": 3.0}]))
