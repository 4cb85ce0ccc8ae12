from __future__ import annotations

import re

import pytest

from farm.errors import OutputParseError
from farm.workloads import available, make_adapter
from tests.fixtures.captured import read


def test_registry_lists_every_adapter():
    assert available() == sorted(
        [
            "ais_bench",
            "ascend_llama_adapter",
            "codl_chain",
            "codl_op",
            "json",
            "lightcode",
            "llama_bench",
            "llama_cpp",
            "msame",
            "regex",
            "sophgo_llm_tpu",
        ]
    )
    for name in available():
        adapter = make_adapter(name, {"patterns": {"x_ms": r"(\d+)"}} if name == "regex" else None)
        assert adapter.name == name


def test_lightcode_python_literal_with_numpy_scalars():
    m = make_adapter("lightcode").parse(read("lightcode", "handmade_python_dict.txt"))
    assert m == {"makespan_s": 0.0123, "energy_pj": 5.5e9, "nodes_count": 1337}


def test_lightcode_json():
    m = make_adapter("lightcode").parse(read("lightcode", "handmade_json.txt"))
    assert m == {"makespan_s": 0.5, "energy_pj": 1250000.0, "nodes_count": 64}


def test_lightcode_never_evaluates_code(tmp_path):
    marker = tmp_path / "pwned"
    text = f"{{'Makespan': __import__('pathlib').Path({str(marker)!r}).touch()}}"
    with pytest.raises(OutputParseError):
        make_adapter("lightcode").parse(text)
    assert not marker.exists()


def test_regex_named_and_positional_groups_with_aggregate():
    # Demo scripts such as LLaMA-Adapter's demo_bsz.py print a rate per batch; the format here is SYNTHETIC.
    text = "batch 0: 6.01 pictures/s\nbatch 1: 6.11 pictures/s\nlatency 165 ms\n"
    adapter = make_adapter(
        "regex",
        {
            "patterns": {
                "throughput_pictures_per_s": r"(?P<value>[\d.]+) pictures/s",
                "latency_ms": r"latency (\d+) ms",
            },
            "aggregate": "mean",
        },
    )
    m = adapter.parse(text)
    assert m["throughput_pictures_per_s"] == pytest.approx(6.06)
    assert m["latency_ms"] == 165


def test_regex_default_aggregate_is_last():
    m = make_adapter("regex", {"patterns": {"rate_per_s": r"rate (\S+)"}}).parse("rate 1,5\nrate 2.5\n")
    assert m == {"rate_per_s": 2.5}


def test_regex_rejects_name_without_unit_naming_the_pattern():
    with pytest.raises(ValueError, match=re.escape(r"regex pattern 'rate (\d+)'")):
        make_adapter("regex", {"patterns": {"rate": r"rate (\d+)"}})


def test_regex_rejects_bad_patterns():
    with pytest.raises(ValueError, match="capture group"):
        make_adapter("regex", {"patterns": {"a_ms": r"(\d+) (\d+)"}})
    with pytest.raises(ValueError, match="does not compile"):
        make_adapter("regex", {"patterns": {"a_ms": r"(\d+"}})
    with pytest.raises(ValueError, match="non-empty mapping"):
        make_adapter("regex", {})


def test_regex_no_match_is_parse_error():
    adapter = make_adapter("regex", {"patterns": {"a_ms": r"a (\d+)"}})
    with pytest.raises(OutputParseError, match="a_ms"):
        adapter.parse("b 1\n")


def test_json_default_flattens_last_object():
    text = 'log line {not json}\n{"a": 1}\n{"lat": {"mean_ms": 2.5, "p99_ms": 4}, "ok": true, "tag": "x"}\n'
    assert make_adapter("json").parse(text) == {"lat_mean_ms": 2.5, "lat_p99_ms": 4.0}


def test_json_fields_with_dotted_paths():
    text = '{"runs": [{"tps": 10.5}, {"tps": 11.5}], "mem": {"peak": 1024}}'
    adapter = make_adapter("json", {"fields": {"decode_tokens_per_s": "runs.1.tps", "peak_rss_mib": "mem.peak"}})
    assert adapter.parse(text) == {"decode_tokens_per_s": 11.5, "peak_rss_mib": 1024.0}


def test_json_field_missing_or_not_numeric():
    with pytest.raises(OutputParseError, match=r"runs\.5"):
        make_adapter("json", {"fields": {"a_ms": "runs.5"}}).parse('{"runs": []}')
    with pytest.raises(OutputParseError, match="not a number"):
        make_adapter("json", {"fields": {"a_ms": "x"}}).parse('{"x": "fast"}')


def test_json_field_name_needs_unit():
    with pytest.raises(ValueError, match="unit suffix"):
        make_adapter("json", {"fields": {"speed": "a"}})


def test_json_no_object():
    with pytest.raises(OutputParseError):
        make_adapter("json").parse("[1, 2, 3]\n")
