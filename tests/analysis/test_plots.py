"""Plot choice from a job's axes and metrics, and the PNGs drawn for each rule."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from farm.analysis.jobdata import JobData
from farm.analysis.plots import choose_plots, energy_plots, render
from tests.analysis.jobs import job

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rows(grid: dict[str, list[Any]], repeats: int = 2, **metrics: Any) -> list[dict[str, Any]]:
    """One row per grid point × repeat; each metric value is computed from the point by a callable."""
    rows = []
    names = list(grid)
    for values in itertools.product(*grid.values()):
        point = dict(zip(names, values, strict=True))
        for rep in range(repeats):
            row = {k: v for k, v in point.items() if not k.startswith("_")}
            row.update(point.get("_extra", {}))
            row["repeat"] = rep
            row.update({m: f(point) + rep * 0.1 for m, f in metrics.items()})
            rows.append(row)
    return rows


def _png_ok(path: Path | None) -> None:
    assert path is not None and path.exists()
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def sparsity_job(root: Path) -> JobData:
    zipped = [{"p_threads": 8, "p_cores": "0-7"}, {"p_threads": 4, "p_cores": "4-7"}]
    rows = []
    for z in zipped:
        for row in _rows(
            {"p_sparsity": [0.0, 0.5, 0.9], "p_batch": [1, 8], "slot": ["phone-1", "phone-2"]},
            decode_tokens_per_s=lambda p: 5 + 10 * p["p_sparsity"],
            prefill_tokens_per_s=lambda p: 40 + p["p_batch"],
        ):
            rows.append({**row, **z, "decode_tokens_per_s": row["decode_tokens_per_s"] * z["p_threads"] / 4})
    return job(root, "elastic", rows)


def test_sparsity_rule_drops_restating_axes(tmp_path: Path) -> None:
    data = sparsity_job(tmp_path)
    assert data.independent_axes() == ["p_sparsity", "p_batch", "p_threads"]  # cores restates threads
    specs = choose_plots(data)
    assert [(s.metric, s.x, s.lines, s.panels) for s in specs] == [
        ("decode_tokens_per_s", "p_sparsity", ("p_threads", "p_batch"), ("slot",)),
        ("prefill_tokens_per_s", "p_sparsity", ("p_threads", "p_batch"), ("slot",)),
    ]
    assert specs[0].title == "elastic: decode_tokens_per_s vs sparsity (synthetic)"
    _png_ok(render(data, specs[0], tmp_path / "plots"))


def test_split_rule_panels_by_memory_type(tmp_path: Path) -> None:
    rows = []
    for shape, weight in (("1,56,56,64", "64,64,3,3"), ("1,14,14,256", "512,256,3,3")):
        rows += _rows(
            {"p_part_ratio": [0.0, 0.5, 1.0], "p_part_dim": [1, 4], "p_gpu_memory_type": [1, 2]},
            latency_ms=lambda p: 10 - 4 * p["p_part_ratio"] + p["p_gpu_memory_type"],
            latency_std_ms=lambda p: 0.2,
        )
        rows[-24:] = [{**r, "p_input_shape": shape, "p_weight_shape": weight} for r in rows[-24:]]
    data = job(tmp_path, "codl", rows)
    (spec,) = choose_plots(data)
    assert (spec.metric, spec.x) == ("latency_ms", "p_part_ratio")
    assert spec.lines == ("p_part_dim", "p_input_shape", "p_weight_shape")
    assert spec.panels == ("slot", "p_gpu_memory_type")
    _png_ok(render(data, spec, tmp_path / "plots"))


def test_batch_rule_one_line_per_device(tmp_path: Path) -> None:
    rows = _rows(
        {"p_batch_size": [1, 5], "slot": ["box/npu0", "box/npu1"]},
        repeats=3,
        throughput_pictures_per_s=lambda p: 6.0 if p["p_batch_size"] == 1 else 12.5,
    )
    data = job(tmp_path, "ascend", rows)
    (spec,) = choose_plots(data)
    assert (spec.metric, spec.x, spec.lines, spec.panels) == (
        "throughput_pictures_per_s",
        "p_batch_size",
        ("slot",),
        (),
    )
    _png_ok(render(data, spec, tmp_path / "plots"))


def test_generic_rule_uses_the_numeric_axis_with_most_values(tmp_path: Path) -> None:
    rows = _rows(
        {"p_target": ["time", "energy"], "p_seq_len": [128, 256, 512], "p_flag": [0, 1]},
        repeats=1,
        makespan_s=lambda p: p["p_seq_len"] / 100,
        energy_pj=lambda p: 1.0,
    )
    data = job(tmp_path, "lightcode", rows)
    (spec,) = choose_plots(data)
    assert (spec.metric, spec.x, spec.lines, spec.panels) == (
        "makespan_s",
        "p_seq_len",
        ("p_target", "p_flag"),
        ("slot",),
    )
    assert spec.rule == "generic: numeric axis"
    (chosen,) = choose_plots(data, ["energy_pj"])
    assert chosen.metric == "energy_pj"


def test_categories_become_bars(tmp_path: Path) -> None:
    rows = _rows(
        {"p_bmodel": ["qwen_seq512.bmodel", "qwen_seq2048.bmodel"], "slot": ["tpu/chip0", "tpu/chip1"]},
        repeats=3,
        decode_tokens_per_s=lambda p: 20.0 if "512" in p["p_bmodel"] else 15.0,
    )
    data = job(tmp_path, "tpu", rows)
    (spec,) = choose_plots(data)
    assert (spec.x, spec.lines, spec.panels, spec.filename) == (
        None,
        ("p_bmodel",),
        (),
        "decode_tokens_per_s_by_point.png",
    )
    _png_ok(render(data, spec, tmp_path / "plots"))


def test_nothing_to_plot_without_measurements(tmp_path: Path) -> None:
    data = job(tmp_path, "broken", [{"status": "failed", "error": "exit code 1", "p_x": 1}])
    assert choose_plots(data) == []


def test_energy_per_token_is_plotted_against_the_grid_axes(tmp_path: Path) -> None:
    rows = _rows(
        {"p_threads": [1, 2, 4], "slot": ["phone-1"]},
        decode_tokens_per_s=lambda p: 5.0 * p["p_threads"],
        j_per_token=lambda p: 0.5 / p["p_threads"],
        energy_j=lambda p: 30.0 / p["p_threads"],
    )
    for row in rows:
        row.update(energy_valid=True, energy_samples=8.0, energy_period_s=0.5)
    data = job(tmp_path, "energy", rows)
    assert "energy_samples" not in data.metrics and "energy_valid" not in data.metrics
    (spec,) = energy_plots(data)
    assert (spec.metric, spec.x, spec.panels) == ("j_per_token", "p_threads", ("slot",))
    _png_ok(render(data, spec, tmp_path / "plots"))
    assert energy_plots(sparsity_job(tmp_path / "other")) == []  # no energy columns: no energy plot
