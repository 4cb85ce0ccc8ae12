"""The LLaMA-Adapter demo adapter and the LightCode adapter's threshold results."""

from __future__ import annotations

import pytest

from farm.errors import OutputParseError
from farm.workloads import make_adapter
from tests.fixtures.captured import read


def test_demo_bsz_pictures_per_second_from_batch_and_avg_time() -> None:
    m = make_adapter("ascend_llama_adapter").parse(read("ascend_llama_adapter", "handmade_demo_bsz_b2.txt"))
    assert m["pictures_per_batch"] == 2 and m["avg_time_ms"] == 400.0
    assert m["throughput_pictures_per_s"] == pytest.approx(2 * 1000 / 400.0)
    assert (m["trials_count"], m["trial_time_min_ms"], m["trial_time_max_ms"]) == (2, 399.5, 400.5)
    # stage times: the warm-up's (100…104) dropped, the mean of the two loops kept
    assert (m["clip_time_ms"], m["forward_time_ms"], m["decode_time_ms"]) == (15.0, 17.0, 19.0)


def test_demo_bsz_without_avg_time_or_result_is_a_parse_error() -> None:
    adapter = make_adapter("ascend_llama_adapter")
    with pytest.raises(OutputParseError, match="avg_time"):
        adapter.parse("[result]: ['a']\n[tiral time] 12.0\n")
    with pytest.raises(OutputParseError, match=r"\[result\]"):
        adapter.parse("[avg_time]: 12.0\n")
    with pytest.raises(ValueError, match="takes no options"):
        make_adapter("ascend_llama_adapter", {"batch": 5})


def test_lightcode_thresholds_and_photonic_nodes() -> None:
    adapter = make_adapter("lightcode")
    printed = '{5, 124, 20, 7}\n{"optimization": "time", "threshold_count": 4, "thresholds": [5, 7, 20, 124]}\n'
    assert adapter.parse(printed) == {"threshold_count": 4, "threshold_min_seq_len": 5, "threshold_max_seq_len": 124}
    graph = '{"Makespan": 0.5, "total_energy": 1e9, "num_nodes": 108, "phu_nodes": 72, "synthetic": true}'
    assert adapter.parse(graph) == {"makespan_s": 0.5, "energy_pj": 1e9, "nodes_count": 108, "phu_nodes_count": 72}
    with pytest.raises(OutputParseError, match="not a list"):
        adapter.parse('{"thresholds": "5,7"}')
