from __future__ import annotations

import pytest

from farm.errors import OutputParseError
from farm.workloads import make_adapter
from tests.fixtures.captured import read

README_JSON = {
    "prefill_tokens_per_s": 7100.002165,
    "prefill_stddev_tokens_per_s": 140.341520,
    "prefill_tokens": 512,
    "decode_tokens_per_s": 118.881588,
    "decode_stddev_tokens_per_s": 1.041811,
    "decode_tokens": 128,
    "threads_count": 8,
    "batch_tokens": 2048,
    "ubatch_tokens": 512,
    "gpu_layers_count": -1,
    "model_size_bytes": 4677120000,
    "model_params_count": 7615616512,
}


@pytest.mark.parametrize(("name", "fmt"), [("readme_rtx4080.json", "json"), ("readme_rtx4080.jsonl", "jsonl")])
def test_json_and_jsonl(name, fmt):
    text = read("llama_bench", name)
    assert make_adapter("llama_bench").parse(text) == README_JSON
    assert make_adapter("llama_bench", {"format": fmt}).parse(text) == README_JSON


def test_csv_keys_on_column_names():
    m = make_adapter("llama_bench", {"format": "csv"}).parse(read("llama_bench", "jetson_orin_f16.csv"))
    assert m["prefill_tokens_per_s"] == 177.866833
    assert m["prefill_stddev_tokens_per_s"] == 0.018056
    assert m["decode_tokens_per_s"] == 3.400850
    assert m["decode_stddev_tokens_per_s"] == 0.000393
    assert m["threads_count"] == 4
    assert m["gpu_layers_count"] == 99


def test_csv_rows_with_shifted_fields_are_dropped():
    # SYNTHETIC: a header with one column more than the row would shift avg_ts onto another value.
    text = "n_prompt,n_gen,extra,avg_ts,stddev_ts\n512,0,7.5,1.0\n"
    with pytest.raises(OutputParseError):
        make_adapter("llama_bench", {"format": "csv"}).parse(text)


def test_markdown_table():
    m = make_adapter("llama_bench").parse(read("llama_bench", "readme_md.txt"))
    assert m == {
        "prefill_tokens_per_s": 2368.80,
        "prefill_stddev_tokens_per_s": 93.24,
        "prefill_tokens": 512,
        "decode_tokens_per_s": 131.42,
        "decode_stddev_tokens_per_s": 0.59,
        "decode_tokens": 128,
    }


def test_several_rows_of_a_kind_report_the_last(caplog):
    m = make_adapter("llama_bench").parse(read("llama_bench", "readme_md_threads.txt"))
    assert m["prefill_tokens_per_s"] == 12.31
    assert m["decode_tokens_per_s"] == 7.80
    assert m["threads_count"] == 2
    assert "2 prefill rows" in caplog.text


def test_no_rows():
    with pytest.raises(OutputParseError, match="no result rows"):
        make_adapter("llama_bench").parse("error: failed to load model\n")


def test_bad_format_option():
    with pytest.raises(ValueError, match="format"):
        make_adapter("llama_bench", {"format": "xml"})
    with pytest.raises(ValueError, match="unknown options"):
        make_adapter("llama_bench", {"fmt": "json"})
