from __future__ import annotations

import math

import pytest

from farm.errors import OutputParseError
from farm.workloads import make_adapter
from tests.fixtures.captured import read


def parse(name: str) -> dict[str, float]:
    return make_adapter("llama_cpp").parse(read("llama_cpp", name))


def test_llama_print_timings_old_format_total_without_count():
    m = parse("print_timings_issue2237.txt")
    assert m["prefill_tokens_per_s"] == 43.05
    assert m["prefill_ms_per_token"] == 23.23
    assert m["prefill_tokens"] == 271
    assert m["prefill_ms"] == 6294.68
    assert m["decode_tokens_per_s"] == 4.43
    assert m["decode_ms_per_token"] == 225.93
    assert m["decode_tokens"] == 510
    assert m["load_ms"] == 907.71
    assert m["sample_ms"] == 301.80
    assert m["total_ms"] == 121963.55


def test_perf_context_and_sampler_prefixes():
    m = parse("perf_context_rk3566_issue34.txt")
    assert m["prefill_tokens_per_s"] == 1.88
    assert m["decode_tokens_per_s"] == 1.02
    assert m["decode_tokens"] == 127
    assert m["sample_ms"] == 170.97
    assert m["load_ms"] == 4450.58
    assert m["total_ms"] == 129561.47


def test_llama_cpp_python_block_without_load_line():
    m = parse("llama_cpp_python_issue1830.txt")
    assert m["prefill_tokens_per_s"] == 0.88
    assert m["decode_tokens_per_s"] == 9.33
    assert "load_ms" not in m


def test_llama_server_lines_have_no_function_prefix():
    m = parse("server_issue9013.txt")
    assert m["prefill_tokens"] == 51
    assert m["prefill_tokens_per_s"] == 55.73
    assert m["decode_tokens"] == 275
    assert m["decode_tokens_per_s"] == 11.94


def test_llama_server_with_pid_prefix():
    m = parse("server_pid_prefix_pr23269.txt")
    assert m["prefill_tokens_per_s"] == 33.25
    assert m["decode_tokens_per_s"] == 11.90
    assert m["total_ms"] == 16883.78


def test_common_perf_print_with_elapsed_time_and_level_prefix():
    m = parse("common_perf_timestamped.txt")
    assert m["prefill_tokens_per_s"] == 18.47
    assert m["decode_tokens_per_s"] == 3.51
    assert m["decode_tokens"] == 7
    # "sampling time" and "samplers time" are distinct lines of one block, not two blocks.
    assert m["sample_ms"] == 7.45
    assert m["samplers_ms"] == 2.63
    assert m["load_ms"] == 4924.25
    assert m["unaccounted_ms"] == 246.12


def test_decimal_commas():
    m = parse("common_perf_decimal_comma.txt")
    assert m["prefill_ms"] == 116.10
    assert m["prefill_tokens_per_s"] == 77.52
    assert m["decode_ms_per_token"] == 79.02
    assert m["decode_tokens_per_s"] == 12.65
    assert m["total_ms"] == 40676.85
    assert m["graphs_reused_count"] == 508


def test_last_complete_block_wins_and_inf_is_kept():
    m = parse("speculative_two_blocks.txt")
    # The draft block comes first; the target block is the last one printed.
    assert m["prefill_tokens_per_s"] == 127.33
    assert m["load_ms"] == 969.35
    assert m["decode_tokens"] == 1
    assert math.isinf(m["decode_tokens_per_s"])


def test_buffers_summed_over_devices_and_kv_caches():
    m = parse("hexagon_buffers_breakdown.txt")
    assert m["model_buffer_mib"] == pytest.approx(11232.42)
    # Two KV caches (non-SWA and SWA) on four devices; the "size =" summaries are not added twice.
    assert m["kv_cache_mib"] == pytest.approx(105.19)
    assert m["compute_buffer_mib"] == pytest.approx(162.43)
    assert m["decode_tokens_per_s"] == 18.39


def test_memory_breakdown_table_fills_missing_buffer_lines():
    m = parse("metal_breakdown_only.txt")
    assert m["model_buffer_mib"] == 2368 + 525
    assert m["kv_cache_mib"] == 160.00 + 174.00
    assert m["compute_buffer_mib"] == 517 + 29


def test_handmade_variants_prefix_nan_old_memory_lines_second_run():
    m = parse("handmade_variants.txt")
    assert m["prefill_tokens_per_s"] == 25.0
    assert m["decode_tokens_per_s"] == 10.0
    assert m["load_ms"] == 1100.0
    assert m["model_buffer_mib"] == 3647.87
    assert m["kv_cache_mib"] == 256.0
    assert m["compute_buffer_mib"] == 70.0


def test_nan_values_survive_when_that_block_is_the_last():
    # SYNTHETIC: one block whose decode count is 0, as a run that stops after the prompt prints it.
    text = (
        "llama_print_timings: prompt eval time =   500.00 ms /    10 tokens "
        "(   50.00 ms per token,    20.00 tokens per second)\n"
        "llama_print_timings:        eval time =     0.00 ms /     0 runs   "
        "(    -nan ms per token,     nan tokens per second)\n"
    )
    m = make_adapter("llama_cpp").parse(text)
    assert math.isnan(m["decode_tokens_per_s"])
    assert math.isnan(m["decode_ms_per_token"])
    assert m["decode_tokens"] == 0


def test_incomplete_trailing_block_is_skipped():
    # SYNTHETIC: a second run that died after loading.
    text = (
        read("llama_cpp", "perf_context_rk3566_issue34.txt")
        + "llama_perf_context_print:        load time =    4400.00 ms\n"
    )
    m = make_adapter("llama_cpp").parse(text)
    assert m["load_ms"] == 4450.58
    assert m["decode_tokens_per_s"] == 1.02


def test_rate_derived_when_build_prints_only_ms():
    # SYNTHETIC: builds before mid-2023 printed no "tokens per second".
    text = (
        "llama_print_timings: prompt eval time =  1000.00 ms /     8 tokens\n"
        "llama_print_timings:        eval time =  2000.00 ms /    16 runs\n"
    )
    m = make_adapter("llama_cpp").parse(text)
    assert m["prefill_tokens_per_s"] == 8.0
    assert m["decode_ms_per_token"] == 125.0


def test_no_timing_block_is_a_parse_error():
    with pytest.raises(OutputParseError, match="no timing block"):
        make_adapter("llama_cpp").parse("main: error: unable to load model\n")


def test_only_prompt_line_is_not_complete():
    text = read("llama_cpp", "server_issue9013.txt").splitlines()
    only_prompt = "\n".join(line for line in text if "eval time" not in line or "prompt" in line)
    with pytest.raises(OutputParseError):
        make_adapter("llama_cpp").parse(only_prompt)


def test_rejects_options():
    with pytest.raises(ValueError, match="no options"):
        make_adapter("llama_cpp", {"x": 1})


def test_local_llama_cpp_python_capture_buffers_and_timings():
    # Captured in this repo's dev container (llama-cpp-python 0.3.36, Gemma 3 270M Q4_K_M, 1 thread).
    m = parse("llama_cpp_python_gemma270m_local.txt")
    assert m["prefill_tokens"] == 6
    assert m["prefill_tokens_per_s"] == 5.91
    assert m["decode_tokens"] == 15
    assert m["decode_tokens_per_s"] == 15.38
    assert m["load_ms"] == 1015.07
    assert m["model_buffer_mib"] == 235.16
    assert m["kv_cache_mib"] == pytest.approx(0.75 + 3.75)
    # "~llama_context: ... compute buffer size is 257.2510 MiB" at teardown is not a second buffer.
    assert m["compute_buffer_mib"] == 257.25
