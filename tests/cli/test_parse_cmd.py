from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from farm.cli import main as cli_main

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def farm(monkeypatch):
    # Only this command's module, so the test does not depend on the other commands being importable.
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["farm.cli.parse_cmd"])
    return cli_main.main


def test_prints_aligned_metrics(farm, capsys):
    assert farm(["parse", "msame", str(DATA / "msame" / "pwcnet_loop100.txt")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "latency_ms                1205.34141",
        "latency_without_first_ms  1205.274374",
    ]


def test_json_output(farm, capsys):
    assert farm(["parse", "llama_cpp", str(DATA / "llama_cpp" / "speculative_two_blocks.txt"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["prefill_tokens_per_s"] == 127.33
    assert metrics["decode_tokens_per_s"] is None  # inf has no strict-JSON form


def test_probe_output_flattened(farm, capsys):
    assert farm(["parse", "npu_smi", str(DATA / "npu_smi" / "info_310p3_two_cards.txt")]) == 0
    lines = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert lines["chips.1.memory_used_mb"] == "1070"
    assert lines["chips.0.hbm_total_mb"] == "-"


def test_stdin_and_options(farm, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("took 12 ms\ntook 14 ms\n"))
    code = farm(["parse", "regex", "-", "-o", r"patterns.latency_ms=took (\d+) ms", "--option", "aggregate=mean"])
    assert code == 0
    assert capsys.readouterr().out.split() == ["latency_ms", "13"]


def test_json_option_value(farm, capsys):
    path = str(DATA / "lightcode" / "handmade_json.txt")
    assert farm(["parse", "json", path, "-o", 'fields={"makespan_s": "Makespan"}']) == 0
    assert capsys.readouterr().out.split() == ["makespan_s", "0.5"]
    assert farm(["parse", "json", path, "-o", 'fields={"makespan": "Makespan"}']) == 2
    assert "unit suffix" in capsys.readouterr().err
    assert farm(["parse", "json", path, "-o", "fields={not json"]) == 2
    assert "invalid JSON" in capsys.readouterr().err


def test_no_result_exits_1_with_reason(farm, capsys, tmp_path):
    empty = tmp_path / "out.log"
    empty.write_text("segmentation fault\n")
    assert farm(["parse", "llama_cpp", str(empty)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("farm: llama.cpp: no timing block")
    assert "\n" not in err


def test_unknown_name_exits_2_listing_known(farm, capsys):
    assert farm(["parse", "nope", str(DATA / "msame" / "pwcnet_loop100.txt")]) == 2
    err = capsys.readouterr().err
    assert "unknown adapter or probe 'nope'" in err
    assert "llama_cpp" in err and "npu_smi" in err


def test_unreadable_file_exits_2(farm, capsys, tmp_path):
    missing = tmp_path / "missing.log"
    assert farm(["parse", "msame", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_bad_option_exits_2(farm, capsys):
    path = str(DATA / "msame" / "pwcnet_loop100.txt")
    assert farm(["parse", "msame", path, "-o", "x=1"]) == 2
    assert farm(["parse", "msame", path, "-o", "novalue"]) == 2
    assert farm(["parse", "npu_smi", path, "-o", "x=1"]) == 2
    assert farm(["parse", "regex", path, "-o", "patterns.speed=(\\d+)"]) == 2
    assert "unit suffix" in capsys.readouterr().err


def test_probe_json_is_one_object(farm, capsys):
    assert farm(["parse", "bm_smi", str(DATA / "bm_smi" / "handmade_two_chips_ansi.txt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [chip["util_pct"] for chip in report["chips"]] == [87.0, 12.0]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_only_regular_files_are_read(farm, capsys, tmp_path, kind):
    # A FIFO used to block the reader for ever and /dev/zero to fill the memory.
    path = tmp_path / "out.txt"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    assert farm(["parse", "msame", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"{path}: cannot read file: it is {what}, not a regular file"]
