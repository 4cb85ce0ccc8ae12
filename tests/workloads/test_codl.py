from __future__ import annotations

import statistics

import pytest

from farm.errors import OutputParseError
from farm.workloads import make_adapter
from tests.workloads.conftest import read

KEPT_ROUNDS = [3.5, 3.75, 4.0, 3.25, 3.5]  # rounds 10..14 of the file, after its "si 10"


def test_codl_op_skips_the_warmup_rounds_the_tool_skips():
    m = make_adapter("codl_op").parse(read("codl_op", "handmade_conv2d_15_rounds.txt"))
    assert m["latency_ms"] == pytest.approx(3.6)
    assert m["latency_median_ms"] == 3.5
    assert m["latency_std_ms"] == pytest.approx(statistics.stdev(KEPT_ROUNDS))
    assert m["latency_min_ms"] == 3.25
    assert m["latency_max_ms"] == 4.0
    assert m["rounds_count"] == 5
    assert m["warmup_rounds_count"] == 10


def test_codl_op_without_stat_line_uses_option():
    text = "\n".join(
        line for line in read("codl_op", "handmade_conv2d_15_rounds.txt").splitlines() if "Stat:" not in line
    )
    m = make_adapter("codl_op", {"warmup_rounds": 1}).parse(text)
    assert m["rounds_count"] == 14
    assert m["latency_max_ms"] == 4.105


def test_codl_op_all_rounds_warmup_is_a_parse_error():
    text = "I x.cc:1] Round 0, latency 3.0 ms\nI x.cc:2] Stat: si 10, stat [], std_pect []\n"
    with pytest.raises(OutputParseError, match="warm-up"):
        make_adapter("codl_op").parse(text)


def test_codl_op_bad_option():
    with pytest.raises(ValueError, match="warmup_rounds"):
        make_adapter("codl_op", {"warmup_rounds": -1})
    with pytest.raises(ValueError, match="warmup_rounds"):
        make_adapter("codl_op", {"warmup_rounds": "many"})


def test_codl_chain_summary_and_size():
    m = make_adapter("codl_chain").parse(read("codl_chain", "handmade_codl_run.txt"))
    assert m == {"latency_ms": 31.25, "data_sharing_ms": 4.5, "compute_ms": 26.75, "total_size_mb": 48.0}


def test_codl_chain_eval_verbose_lines_average_last_pair():
    m = make_adapter("codl_chain").parse(read("codl_chain", "handmade_eval_verbose.txt"))
    assert m["latency_ms"] == pytest.approx((60.5 + 59.5 + 61.0) / 3)
    assert m["rounds_count"] == 3


def test_codl_chain_nothing():
    with pytest.raises(OutputParseError):
        make_adapter("codl_chain").parse("I x.cc:1] total_raw_size 10 bytes, total_size 0.01 MB\n")
