from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import OutputParseError
from farm.probes import available, get_parser
from farm.probes.bm_smi import parse_bm_smi
from farm.probes.model_tool_info import parse_model_tool_info
from farm.probes.npu_smi import parse_npu_smi
from farm.probes.proc_status import parse_proc_status
from farm.probes.thermal_zones import millidegree_heuristic, parse_thermal_zones

DATA = Path(__file__).resolve().parent.parent / "data"


def read(probe: str, name: str) -> str:
    return (DATA / probe / name).read_text(encoding="utf-8")


def test_registry():
    assert available() == ["bm_smi", "model_tool_info", "npu_smi", "proc_status", "thermal_zones"]
    assert get_parser("npu_smi") is parse_npu_smi


def test_proc_status_real_file():
    status = parse_proc_status(read("proc_status", "linux_container_self.txt"))
    assert status.peak_rss_mib == 1752 / 1024
    assert status.rss_mib == 1752 / 1024


def test_proc_status_zombie_has_no_memory_lines():
    with pytest.raises(OutputParseError, match="VmHWM"):
        parse_proc_status(read("proc_status", "handmade_zombie_no_vm.txt"))


def test_thermal_zones_grep_form_and_scale_heuristic():
    report = parse_thermal_zones(read("thermal_zones", "handmade_android_grep.txt"))
    assert [(z.zone, z.type, z.temp_c) for z in report.zones] == [
        (0, "cpu-0-0-usr", 38.4),
        (1, "cpu-1-0-usr", 41.2),
        (2, "battery", 31.2),
        (3, "pm8150b-wp-therm", 35.0),
    ]
    assert report.max_temp_c() == 41.2
    assert report.max_temp_c(("battery",)) == 31.2
    with pytest.raises(ValueError, match="gpu"):
        report.max_temp_c(("gpu",))


def test_thermal_zones_pair_form():
    zones = parse_thermal_zones(read("thermal_zones", "handmade_pairs.txt")).zones
    assert [(z.type, z.temp_c) for z in zones] == [("soc_thermal", 45.0), ("gpu_thermal", 43.5)]


def test_millidegree_heuristic_negative_and_degrees():
    assert millidegree_heuristic(-5000) == -5.0
    assert millidegree_heuristic(45) == 45


def test_thermal_zones_empty():
    with pytest.raises(OutputParseError):
        parse_thermal_zones("/sys/class/thermal/thermal_zone0/type:tsens\n")


def test_npu_smi_310p_no_hbm():
    report = parse_npu_smi(read("npu_smi", "info_310p3_two_cards.txt"))
    assert len(report.chips) == 2
    first, second = report.chips
    assert (first.npu_id, first.chip_id, first.device_id, first.name, first.health) == (
        0,
        0,
        0,
        "310P3",
        "OK",
    )
    assert (first.power_w, first.temp_c, first.aicore_pct) == (15.8, 42, 0)
    assert (first.memory_used_mb, first.memory_total_mb) == (1074, 21534)
    assert first.hbm_used_mb is None and first.hbm_total_mb is None
    assert (second.npu_id, second.device_id, second.memory_used_mb, second.bus_id) == (
        1,
        1,
        1070,
        "0000:89:00.0",
    )
    assert report.processes == ()


def test_npu_smi_910_two_chips_per_card_and_dash_power():
    report = parse_npu_smi(read("npu_smi", "info_910_two_chips_issue2534.txt"))
    assert [(c.npu_id, c.chip_id, c.device_id) for c in report.chips] == [(0, 0, 0), (0, 1, 1), (1, 0, 2)]
    assert [c.power_w for c in report.chips] == [178.5, None, 186.3]
    assert [(c.hbm_used_mb, c.hbm_total_mb) for c in report.chips] == [
        (3416, 65536),
        (3195, 65536),
        (3415, 65536),
    ]
    assert report.chips[0].memory_total_mb == 0


def test_npu_smi_910b_layout_and_process_table():
    report = parse_npu_smi(read("npu_smi", "handmade_910b_processes.txt"))
    first, second = report.chips
    assert (first.name, first.chip_id, first.device_id, first.aicore_pct) == ("910B3", 0, None, 99)
    assert (first.hbm_used_mb, first.hbm_total_mb) == (20701, 65536)
    assert (second.health, second.power_w, second.temp_c) == ("Warning", None, 48)
    assert len(report.processes) == 1
    process = report.processes[0]
    assert (process.npu_id, process.chip_id, process.pid, process.name, process.memory_mb) == (
        0,
        0,
        123456,
        "python3",
        17356,
    )


def test_npu_smi_key_value_form():
    report = parse_npu_smi(read("npu_smi", "t_common_kv.txt"))
    (chip,) = report.chips
    assert (chip.npu_id, chip.chip_id) == (0, 0)
    assert (chip.memory_usage_pct, chip.hbm_usage_pct, chip.aicore_pct) == (6, 0, 0)
    assert (chip.temp_c, chip.power_w) == (41, 71.7)
    assert chip.raw["Aicore Freq(MHZ)"] == "900"


def test_npu_smi_usages_capacity_keys():
    # SYNTHETIC `npu-smi info -t usages -i 0` shaped output (keys as CANN prints them).
    text = (
        "NPU ID : 0\nChip Count : 1\nChip ID : 0\nHBM Capacity(MB) : 65536\n"
        "HBM Usage Rate(%) : 31\nAicore Usage Rate(%) : 99\n"
    )
    (chip,) = parse_npu_smi(text).chips
    assert (chip.hbm_total_mb, chip.hbm_usage_pct, chip.aicore_pct) == (65536, 31, 99)


def test_npu_smi_garbage():
    with pytest.raises(OutputParseError):
        parse_npu_smi("npu-smi: command not found\n")


def test_bm_smi_strips_ansi_and_keeps_last_frame():
    chips = parse_bm_smi(read("bm_smi", "handmade_two_chips_ansi.txt")).chips
    assert [(c.chip_id, c.util_pct, c.memory_used_mb, c.memory_total_mb, c.chip_temp_c) for c in chips] == [
        (0, 87, 6123, 10694, 55),
        (1, 12, 1024, 10694, 47),
    ]
    assert chips[0].name == "1684X-SC7"
    assert [c.power_w for c in chips] == [3.0, 3.2]  # TPU_P
    assert [(c.min_clock_mhz, c.max_clock_mhz, c.clock_mhz) for c in chips] == [(25, 1000, 1000)] * 2


def test_bm_smi_nothing():
    with pytest.raises(OutputParseError):
        parse_bm_smi("Error: /dev/bmdev-ctl not found\n")


def test_model_tool_llm_summary_line_weight():
    info = parse_model_tool_info(read("model_tool_info", "llm_tpu_weight_share.txt"))
    (entry,) = info.entries
    assert entry.net is None
    assert (entry.device_mem_bytes, entry.weight_bytes, entry.instruct_bytes, entry.runtime_bytes) == (
        1680323988,
        1050832896,
        6612372,
        622878720,
    )


def test_model_tool_old_coeff_and_chip_header():
    info = parse_model_tool_info(read("model_tool_info", "lprnet_bm1684_coeff.txt"))
    assert (info.bmodel_version, info.chip) == ("B.2.2", "BM1684")
    (entry,) = info.entries
    assert (entry.net, entry.net_index, entry.stage) == ("lprnet", 0, 0)
    assert (entry.device_mem_bytes, entry.weight_bytes, entry.host_mem_bytes) == (5151696, 1941776, 0)


def test_model_tool_indented_tpu_mlir_output():
    (entry,) = parse_model_tool_info(read("model_tool_info", "yolov5s_tpu_mlir.txt")).entries
    assert (entry.net, entry.weight_bytes, entry.runtime_bytes) == ("yolov5s", 14757888, 10211328)


def test_model_tool_several_nets_and_processor_header():
    # SYNTHETIC: two nets, newer "processor:" header.
    text = (
        "bmodel version: B.2.2+v1.7\nprocessor: BM1684X\n"
        "net 0: [block_0]  static\nstage 0:\ndevice mem size: 100 (weight: 60, instruct: 10, runtime: 30)\n"
        "net 1: [lm_head]  static\nstage 0:\ndevice mem size: 50 (weight: 40, instruct: 5, runtime: 5)\n"
    )
    info = parse_model_tool_info(text)
    assert info.chip == "BM1684X"
    assert [(e.net, e.weight_bytes) for e in info.entries] == [("block_0", 60), ("lm_head", 40)]


def test_model_tool_nothing():
    with pytest.raises(OutputParseError):
        parse_model_tool_info("open file failed\n")
