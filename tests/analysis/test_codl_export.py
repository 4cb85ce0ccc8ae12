"""CoDL dataset export: the collector's file set per SoC, values against hand computations, loaded by a reader
written from CoDL's trainer, and the SoC yaml from the OpenCL runtime line."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from farm.analysis.codl_export import (
    DATA_SHARING_COLUMNS,
    MULAYER_COLUMNS,
    POOLING_COLUMNS,
    command_flags,
    export_codl_dataset,
    op_run,
)
from farm.errors import ConfigError
from tests.analysis.codl_trainer import load
from tests.analysis.jobs import job

BASE = "./codl_op_run --compute --cpu_affinity_policy=1 --rounds=21 --num_threads=4 --part_dim=4"
OPENCL = {
    "fp_opencl_global_mem_cache_size": "1048576",
    "fp_opencl_compute_units": "9",
    "fp_opencl_max_wgp_size": "512",
    "fp_opencl_warp_size": "0",
    "fp_opencl_device": "Mali-G77 MC9 r0p1",
}


def op_row(op: str, shapes: str, ratio: float, hint: int, stat: float, sd: float, **extra: Any) -> dict[str, Any]:
    command = f"{BASE} --part_ratio={ratio} --cu_hint={hint} --op_type={op} {shapes}"
    return {"command": command, "codl_stat_0_ms": stat, "codl_std_pct_0": sd, "latency_ms": stat * 1.01,
            "fp_soc": "dimensity8050", **extra}  # fmt: skip


CONV = "--input_shape=1,56,56,64 --weight_shape=128,64,3,3 --strides=2,2"
FC = "--input_shape=1,7,7,512 --weight_shape=1000,512,7,7 --strides=1,1"
POOL = "--input_shape=1,104,104,128 --weight_shape=128,128,2,2 --strides=2,2 --pooling_type=2"
SHARING = "--data_transform --debug --input_shape=1,416,416,3 --weight_shape=32,3,3,3 --strides=1,1"


def rows() -> list[dict[str, Any]]:
    return [
        op_row("Conv2D", CONV, 0.0, 1, 4.0, 1.0, repeat=0, p_cnn="VGG-16"),
        op_row("Conv2D", CONV, 0.0, 1, 6.0, 3.0, repeat=1, p_cnn="VGG-16"),
        op_row("Conv2D", CONV, 1.0, 2, 2.0, 0.5, **OPENCL),
        op_row("FullyConnected", FC, 1.0, 2, 1.5, 0.2, **OPENCL),
        op_row("Pooling", POOL, 0.0, 1, 0.9, 2.0, p_cnn="YOLO-V2"),
        op_row("Conv2D", CONV, 0.5, 0, 1.2, 0.4),  # co-execution: no trainer file holds it
        {**op_row("Conv2D", SHARING, 0.0, 1, 0.0, 0.0),
         **{f"codl_stat_{k}_ms": 0.1 * (k + 1) for k in range(9)}},  # 8 stages + compute (Fine)
        op_row("Conv2D", SHARING, 0.0, 1, 3.0, 1.0),  # Coarse: one value, not the 8 stages
        {"command": "./codl_op_run --op_type=Conv2D", "latency_ms": 1.0},  # no shapes
    ]  # fmt: skip


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_collector_file_set_values_and_trainer_reader(tmp_path: Path) -> None:
    result = export_codl_dataset(job(tmp_path / "results", "codl", rows()), tmp_path / "out")
    soc = tmp_path / "out" / "dimensity8050"
    assert {p.name: n for p, n in result.files.items()} == {
        "t_mulayer_conv2d_cpu.csv": 1,
        "t_mulayer_conv2d_gpu.csv": 1,
        "t_mulayer_fc_gpu.csv": 1,
        "t_mulayer_pooling_cpu.csv": 1,
        "t_pooling_cpu_direct_max.csv": 1,
        "t_data_sharing.csv": 1,
    }
    assert all(p.parent == soc for p in result.files)
    assert result.skipped == {
        "co-execution run (0 < part_ratio < 1): CoDL's trainer files hold CPU-only and GPU-only runs": 1,
        "--data_transform run without the 8 Fine stages (set MACE_DURATION_COLLECT_GRANULARITY=Fine)": 1,
        "no input_shape parameter or flag": 1,
    }
    conv_cpu = _read(soc / "t_mulayer_conv2d_cpu.csv")
    assert conv_cpu[0] == MULAYER_COLUMNS
    # COST median of the Stat means, SD_COST median of std_pect; OH = OW = ceil(56/2) = 28;
    # FLOPS = 28·28·128·(2·3·3·64+1); F0 = 56·56·64; F1 = (3/2)²·128
    assert conv_cpu[1] == ["5.0", "2.0", "4", "0.0", str(28 * 28 * 128 * (2 * 9 * 64 + 1)), str(56 * 56 * 64), "288.0"]
    assert _read(soc / "t_mulayer_fc_gpu.csv")[1] == [
        "1.5",
        "0.2",
        "4",
        "1.0",
        str(7 * 7 * 512 * 1000),
        "25088",
        "1000",
    ]
    # pooling: VALID output (104 − 2) // 2 + 1 = 52; the direct file repeats IC as OC and writes T_COST 0
    assert _read(soc / "t_mulayer_pooling_cpu.csv")[1] == [
        "0.9",
        "2.0",
        "4",
        "0.0",
        str(104 * 104 * 128),
        str(52 * 52 * 128),
    ]
    pool = _read(soc / "t_pooling_cpu_direct_max.csv")
    assert pool[0] == POOLING_COLUMNS
    assert pool[1] == ["YOLO-V2", "0.9", "0", "2.0", "4", "0.0", "104", "104", "128", "128", "2", "2", "2", "2"]
    sharing = _read(soc / "t_data_sharing.csv")
    assert sharing[0] == DATA_SHARING_COLUMNS
    assert [round(float(x), 6) for x in sharing[1][:8]] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert sharing[1][8:] == ["416", "416", "3", "416", "416", "32", str(416 * 416 * 3), str(416 * 416 * 32)]

    # Every file loads in the trainer-format reader; the pooling row is filtered by COST > 0.5 and SD_COST < 5.
    for path in result.files:
        loaded = load(path)
        assert loaded.rows == 1 and loaded.kept == 1, path.name
    assert load(soc / "t_data_sharing.csv").features == [[416 * 416 * 3, 416 * 416 * 32]]

    (yaml_path,) = result.soc_files
    assert yaml_path == tmp_path / "out" / "soc" / "dimensity8050.yaml"
    lines = [ln for ln in yaml_path.read_text().splitlines() if not ln.startswith("#")]
    assert lines == ["global_mem_cache_size: 1048576", "compute_units: 9", "max_work_group_size: 512",
                     "kernel_wave_size: 8"]  # fmt: skip
    assert "Mali" in result.soc_files[yaml_path] and result.no_soc_file == []
    assert "t_conv2d_gpu_direct.csv" in next(iter(result.not_exported))


def test_the_trainer_reader_refuses_what_pandas_would_misread(tmp_path: Path) -> None:
    path = tmp_path / "t_data_sharing.csv"
    # CoDL's collector appends unnamed SD and partition values: pandas would shift every column name
    path.write_text(",".join(DATA_SHARING_COLUMNS) + "\n" + ",".join(["1"] * 26) + "\n")
    with pytest.raises(AssertionError, match="26 fields under a 16-column header"):
        load(path)


def test_flags_from_the_command_and_grid_parameters_win() -> None:
    assert command_flags("./x --compute --rounds 21 --op_type=Conv2D --debug") == {
        "compute": "true",
        "rounds": "21",
        "op_type": "Conv2D",
        "debug": "true",
    }
    run = op_run({"slot": "d", "command": f"{BASE} --part_ratio=0 --op_type=Pooling {POOL}", "p_part_ratio": 1.0})
    assert (run.soc, run.op, run.device, run.pratio, run.pooling_type, run.out_hw()) == (
        "d",
        "pooling",
        "gpu",
        1.0,
        2,
        (52, 52),
    )
    with pytest.raises(ValueError, match="weight_shape"):
        op_run({"slot": "d", "command": "./codl_op_run --op_type=Conv2D --input_shape=1,2,2,3"})


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no row fits a CoDL dataset file"):
        export_codl_dataset(job(tmp_path, "llm", [{"decode_tokens_per_s": 3.0}]), tmp_path / "out")
    with pytest.raises(ConfigError, match="no column 'fp_nope'"):
        export_codl_dataset(job(tmp_path, "codl", rows()), tmp_path / "out", soc_column="fp_nope")
