from __future__ import annotations

import pytest

from farm.errors import OutputParseError
from farm.workloads import make_adapter
from tests.fixtures.captured import read


def test_ais_bench_full_summary():
    m = make_adapter("ais_bench").parse(read("ais_bench", "rosetta_310p_summary.txt"))
    assert m["throughput_samples_per_s"] == 2302.359688694924
    assert m["npu_compute_mean_ms"] == 0.4343369999527931
    assert m["npu_compute_median_ms"] == 0.42399999499320984
    assert m["npu_compute_p99_ms"] == 0.5660099846124649
    assert m["npu_compute_max_ms"] == 3.2839999198913574
    assert m["h2d_mean_ms"] == 0.10275840759277344
    assert m["d2h_mean_ms"] == 0.07843971252441406


def test_ais_bench_batchsize_mean_variant_without_h2d():
    m = make_adapter("ais_bench").parse(read("ais_bench", "ait_batchsize_mean.txt"))
    assert m["throughput_samples_per_s"] == 407.16610891670894
    assert m["npu_compute_mean_ms"] == 2.4560000896453857
    assert "h2d_mean_ms" not in m


def test_ais_infer_old_throughput_line():
    m = make_adapter("ais_bench").parse(read("ais_bench", "ais_infer_old_throughput.txt"))
    assert m["throughput_samples_per_s"] == 1281.4860983806905
    assert m["d2h_mean_ms"] == 0.0


def test_ais_bench_casing_and_second_summary_wins():
    # SYNTHETIC: lower-case names, multi-thread "mean only" form, and a first summary that must be dropped.
    text = (
        read("ais_bench", "rosetta_310p_summary.txt")
        + "[INFO] -----------------Performance Summary------------------\n"
        + "[INFO] npu_compute_time (ms): mean = 1.5\n"
        + "[INFO] Throughput 1000*batchsize.mean(4)/npu_compute_time.mean(1.5): 2666.6\n"
    )
    m = make_adapter("ais_bench").parse(text)
    assert m == {"npu_compute_mean_ms": 1.5, "throughput_samples_per_s": 2666.6}


def test_ais_bench_no_summary():
    with pytest.raises(OutputParseError):
        make_adapter("ais_bench").parse("[ERROR] load model failed\n")


def test_msame_average_and_without_first():
    m = make_adapter("msame").parse(read("msame", "pwcnet_loop100.txt"))
    assert m == {"latency_ms": 1205.341410, "latency_without_first_ms": 1205.274374}


def test_msame_space_before_colon_and_per_input_lines():
    m = make_adapter("msame").parse(read("msame", "cifar_per_input.txt"))
    assert m == {"latency_ms": 81.11, "latency_without_first_ms": 81.11, "inferences_count": 2}


def test_msame_missing():
    with pytest.raises(OutputParseError):
        make_adapter("msame").parse("Inference time: 81.1ms\n")


def test_sophgo_averages_answers():
    m = make_adapter("sophgo_llm_tpu").parse(read("sophgo_llm_tpu", "handmade_two_answers.txt"))
    assert m["load_s"] == 21.877
    assert m["first_token_latency_s"] == pytest.approx((0.842 + 0.913) / 2)
    assert m["decode_tokens_per_s"] == pytest.approx((8.712 + 8.655) / 2)
    assert m["answers_count"] == 2


def test_sophgo_no_answer():
    with pytest.raises(OutputParseError):
        make_adapter("sophgo_llm_tpu").parse("Load Time: 21.877 s\nQuestion: \n")
