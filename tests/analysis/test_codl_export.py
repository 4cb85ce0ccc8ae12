"""CoDL dataset export: file layout per SoC and op type, CSV content against hand computations."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from farm.analysis.codl_export import COLUMNS, export_codl_dataset, op_config
from farm.errors import ConfigError
from tests.analysis.jobs import job
from tests.analysis.test_split import COMMAND, SHAPE_A, split_rows


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_per_soc_csv_layout_and_values(tmp_path: Path) -> None:
    rows = [
        *split_rows(),
        # A malformed shape is left out and counted, not guessed.
        {"device_id": "phone-1", **SHAPE_A, "p_input_shape": "1,56,56", "p_part_ratio": 0.5, "p_part_dim": 1,
         "p_gpu_memory_type": 2, "latency_ms": 1.0, "command": COMMAND, "fp_soc": "sm8550"},
    ]  # fmt: skip
    result = export_codl_dataset(job(tmp_path / "results", "codl", rows), tmp_path / "out")
    sm8550 = tmp_path / "out" / "sm8550" / "t_conv2d_op.csv"
    phone2 = tmp_path / "out" / "phone-2" / "t_conv2d_op.csv"  # no SoC column: the device id names it
    assert result.files == {phone2: 2, sm8550: 6}
    assert result.skipped == {"input_shape '1,56,56': expected 4 comma-separated integers": 1}
    table = _read(sm8550)
    assert table[0] == list(COLUMNS)
    assert table[0][:4] == ["T_OP", "SD_T_OP", "PDIM", "PRATIO"]
    # Ordered by shape (IH 14 before 56), then PRATIO; T_OP = median, SD_T_OP = stdev over repeats.
    assert table[1] == ["5.0", "0.0", "1", "0.0", "14", "14", "256", "512", "3", "3", "2", "2", "2", "2"]
    assert table[4][:4] == ["11.0", repr(math.sqrt(2)), "1", "0.0"]
    assert table[4][4:] == ["56", "56", "64", "64", "3", "3", "1", "1", "2", "2"]
    assert [r[3] for r in table[1:]] == ["0.0", "0.5", "1.0"] * 2
    assert float(table[5][0]) == pytest.approx(6.2) and float(table[5][1]) == pytest.approx(math.sqrt(0.08))


def test_fixed_flags_come_from_the_command(tmp_path: Path) -> None:
    command = (
        "./codl_op_run --op_type=FullyConnected --input_shape=1,7,7,512 --weight_shape 1000,512,7,7 "
        "--strides=1 --part_dim=4 --gpu_memory_type=1"
    )
    rows = [{"p_part_ratio": r, "latency_ms": 2.0 + r, "command": command, "fp_soc": "Kirin 9000"} for r in (0.0, 1.0)]
    result = export_codl_dataset(job(tmp_path / "results", "fc", rows), tmp_path / "out")
    (path,) = result.files
    assert path == tmp_path / "out" / "Kirin_9000" / "t_fc_op.csv"
    assert _read(path)[1:] == [
        ["2.0", "", "4", "0.0", "7", "7", "512", "1000", "7", "7", "1", "1", "1", "1"],
        ["3.0", "", "4", "1.0", "7", "7", "512", "1000", "7", "7", "1", "1", "1", "1"],
    ]


def test_op_config_needs_a_split_ratio_and_shapes() -> None:
    with pytest.raises(ValueError, match="input_shape"):
        op_config({"device_id": "d", "command": "./x"})
    with pytest.raises(ValueError, match="part_ratio"):
        op_config({"device_id": "d", **SHAPE_A, "command": "./x"})
    cfg = op_config({"device_id": "d", **SHAPE_A, "p_part_ratio": 0.3, "command": "./x", "p_soc": "sd8g2"})
    assert (cfg.soc, cfg.op, cfg.pratio, cfg.pdim, cfg.mem) == ("sd8g2", "unknown", 0.3, None, None)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no latency_ms measurements"):
        export_codl_dataset(job(tmp_path, "llm", [{"decode_tokens_per_s": 3.0}]), tmp_path / "out")
    with pytest.raises(ConfigError, match="no row describes a single op"):
        export_codl_dataset(job(tmp_path, "chain", [{"latency_ms": 3.0}]), tmp_path / "out")
    with pytest.raises(ConfigError, match="no column 'fp_nope'"):
        export_codl_dataset(job(tmp_path, "codl", split_rows()), tmp_path / "out", soc_column="fp_nope")
