from __future__ import annotations

import statistics

import pytest

from farm.errors import OutputParseError
from farm.workloads import make_adapter
from tests.fixtures.captured import read

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


def test_codl_op_keeps_the_tools_stat_vectors():
    m = make_adapter("codl_op").parse(read("codl_op", "handmade_conv2d_15_rounds.txt"))
    assert [m[f"codl_stat_{k}_ms"] for k in range(5)] == [0.0, 3.6, 1.8, 1.75, 0.05]
    assert [m[f"codl_std_pct_{k}"] for k in range(5)] == [0.0, 0.07, 0.05, 0.06, 0.1]
    assert m["latency_from_stat"] == 0.0


def test_codl_op_fewer_rounds_than_si_uses_the_tools_statistics_and_reads_opencl():
    adapter = make_adapter("codl_op")
    text = read("codl_op", "seed_opencl_runtime_mali_g77.txt")
    m = adapter.parse(text)
    assert m["latency_ms"] == 38.5 and m["latency_from_stat"] == 1.0 and m["warmup_rounds_count"] == 10
    assert m["latency_std_ms"] == pytest.approx(38.5 * 0.0125)
    fp = adapter.fingerprint(text)  # type: ignore[attr-defined]
    assert fp == {
        "fp_opencl_platform": "ARM Platform, FULL_PROFILE, "
        "OpenCL 3.0 v1.r32p1-01eac0.efd03ef21f136842c0935bd4f493fe81, unknown",
        "fp_opencl_device": "Mali-G77 MC9 r0p1",
        "fp_opencl_device_version": "OpenCL 3.0 v1.r32p1-01eac0.efd03ef21f136842c0935bd4f493fe81",
        "fp_opencl_global_mem_cacheline_size": "64",
        "fp_opencl_global_mem_cache_size": "1048576",
        "fp_opencl_compute_units": "9",
        "fp_opencl_warp_size": "0",
        "fp_opencl_max_wgp_size": "512",
        "fp_opencl_kwg_size": "0",
    }


def test_codl_op_stat_only_output_as_the_collector_greps_it():
    m = make_adapter("codl_op").parse("I x.cc:213] Stat: si 10, stat [2.5,1.5], std_pect [3,4]\n")
    assert m["latency_ms"] == 4.0 and m["codl_stat_1_ms"] == 1.5 and "latency_std_ms" not in m


def test_codl_op_empty_statistics_without_enough_rounds_is_a_parse_error():
    # granularity unset: the tool prints empty vectors; rounds <= si: its statistics are 0 and nan
    with pytest.raises(OutputParseError, match="no 'Round"):
        make_adapter("codl_op").parse("I x.cc:213] Stat: si 10, stat , std_pect \n")
    with pytest.raises(OutputParseError, match="give --rounds above 10"):
        make_adapter("codl_op").parse(
            "I x.cc:1] Round 0, latency 3 ms\nI x.cc:2] Stat: si 10, stat [0], std_pect [nan]\n"
        )
