"""The pure parts of the SSH device kinds: bmodel sizes and the shared-weights check, tool readings, the remote
fingerprint and memory parsers, and the status poller a box's slots share."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from actors.ascend import board_fingerprint, npu_readings, npu_smi_fingerprint, runtime_fingerprint
from actors.box import BoxMonitor, Reading
from actors.sophgo import (
    BmodelSize,
    bm_smi_fingerprint,
    bmodel_paths,
    bmodel_samples,
    bmodel_size,
    memory_split,
    shared_weight_problem,
    tpu_readings,
)
from actors.ssh_device import expand_home, host_fingerprint_script, parse_host_fingerprint
from actors.ssh_host import group_peak_mib, hottest_zone_c
from farm.errors import DeviceOfflineError
from farm.probes.bm_smi import parse_bm_smi
from farm.probes.model_tool_info import parse_model_tool_info
from farm.probes.npu_smi import parse_npu_smi
from tests.runtime.helpers import wait_until

DATA = Path(__file__).resolve().parents[1] / "data"
MIB = float(1 << 20)


# -- bmodels ----------------------------------------------------------------------------------------------------


def test_bmodel_paths_in_every_spelling() -> None:
    argv = ["python3", "pipeline.py", "-m", "a.bmodel,dir/b.bmodel", "--model_path=c.bmodel", "--devid", "0"]
    assert bmodel_paths(argv) == ["a.bmodel", "dir/b.bmodel", "c.bmodel"]
    assert bmodel_paths(["./x.bmodel", "x.bmodel"]) == ["x.bmodel"]  # the program itself is not an input
    assert bmodel_paths(["python3", "pipeline.py", "--prompt", "what is a .bmodel file?"]) == []


def test_whole_file_line_wins() -> None:
    info = parse_model_tool_info((DATA / "model_tool_info" / "llm_tpu_weight_share.txt").read_text())
    size = bmodel_size("q.bmodel", info)
    assert (size.device_bytes, size.weight_bytes, size.instruct_bytes, size.runtime_bytes) == (
        1680323988,
        1050832896,
        6612372,
        622878720,
    )


def test_nets_add_up_and_stages_of_a_net_share_weights() -> None:
    text = "\n".join(
        [
            "net 0: [embed]  static",
            "stage 0:",
            "device mem size: 1000 (weight: 800, instruct: 100, runtime: 100)",
            "net 1: [block]  dynamic",
            "stage 0:",
            "device mem size: 5000 (weight: 4000, instruct: 200, runtime: 800)",
            "stage 1:",
            "device mem size: 6000 (weight: 4000, instruct: 200, runtime: 1800)",
        ]
    )
    size = bmodel_size("m.bmodel", parse_model_tool_info(text))
    assert (size.device_bytes, size.weight_bytes, size.runtime_bytes) == (7000, 4800, 1900)


def _size(name: str, weight: int, runtime: int = 10 << 20) -> BmodelSize:
    return BmodelSize(name, weight + (1 << 20) + runtime, weight, 1 << 20, runtime)


def test_bmodels_loaded_together_count_shared_weights_once() -> None:
    a, b = _size("/w/a_seq512.bmodel", 900 << 20), _size("/w/a_seq2048.bmodel", 900 << 20, 40 << 20)
    assert shared_weight_problem([a, b]) is None
    s = bmodel_samples([a, b])
    assert s["bmodel_weight_mib"] == 900 and s["bmodel_runtime_mib"] == 50 and s["bmodel_instruct_mib"] == 2
    assert s["bmodel_device_mem_mib"] == 952 and s["bmodel_count"] == 2 and s["bmodel_weights_identical"] == 1
    assert s["bmodel_weight_bytes"] == 900 << 20  # exact bytes beside the rounded MiB
    single = bmodel_samples([a])
    assert single["bmodel_device_mem_mib"] == a.device_bytes / MIB and "bmodel_count" not in single


def test_different_weights_are_named_in_the_problem() -> None:
    a, b = _size("/w/qwen-1.5b.bmodel", 900 << 20), _size("/w/qwen-1.5b-int8.bmodel", 1700 << 20)
    problem = shared_weight_problem([a, b])
    assert problem is not None
    assert f"qwen-1.5b.bmodel weight {900 << 20} B" in problem and f"int8.bmodel weight {1700 << 20} B" in problem
    s = bmodel_samples([a, b])
    assert s["bmodel_weights_identical"] == 0 and s["bmodel_weight_mib"] == 2600  # no sharing possible


# -- tool readings and fingerprints -----------------------------------------------------------------------------


def test_bm_smi_readings_take_the_last_frame_per_chip() -> None:
    text = (DATA / "bm_smi" / "handmade_two_chips_ansi.txt").read_text()
    clocks = {"clock_mhz": 1000.0, "max_clock_mhz": 1000.0}  # Currclk, Maxclk
    assert tpu_readings(parse_bm_smi(text)) == {
        0: {"mem_used_mb": 6123.0, "util_pct": 87.0, "temp_c": 55.0, "power_w": 3.0, **clocks},
        1: {"mem_used_mb": 1024.0, "util_pct": 12.0, "temp_c": 47.0, "power_w": 3.2, **clocks},
    }
    assert bm_smi_fingerprint(text) == {
        "fp_tpu_chips": "2",
        "fp_tpu_sdk": "0.4.9",
        "fp_tpu_driver": "0.4.9",
        "fp_tpu_name": "1684X-SC7",
    }


def test_npu_readings_310p_and_910() -> None:
    p310 = parse_npu_smi((DATA / "npu_smi" / "info_310p3_two_cards.txt").read_text())
    assert npu_readings(p310) == {
        0: {"mem_used_mb": 1074.0, "aicore_pct": 0.0, "power_w": 15.8, "temp_c": 42.0},
        1: {"mem_used_mb": 1070.0, "aicore_pct": 0.0, "power_w": 15.4, "temp_c": 43.0},
    }
    text910 = (DATA / "npu_smi" / "info_910_two_chips_issue2534.txt").read_text()
    r910 = npu_readings(parse_npu_smi(text910))
    # NPU 0 holds two chips: slots follow the runtime's logical device ids (the Phy-ID column)
    assert sorted(r910) == [0, 1, 2]
    assert [r910[i]["hbm_used_mb"] for i in (0, 1, 2)] == [3416.0, 3195.0, 3415.0]
    assert npu_smi_fingerprint(text910) == {"fp_npu_count": "3", "fp_npu_name": "Ascend910"}


def test_npu_board_versions() -> None:
    board = "\n".join(
        [
            "        NPU ID                         : 0",
            "        Software Version               : 23.0.rc3",
            "        Firmware Version               : 7.0.0.5.242",
            "        Compatibility                  : OK",
        ]
    )
    assert board_fingerprint(board) == {"fp_npu_driver": "23.0.rc3", "fp_npu_firmware": "7.0.0.5.242"}
    assert board_fingerprint("DDR Capacity(MB) : 21534") == {}


def test_remote_host_fingerprint_sections() -> None:
    script = host_fingerprint_script()
    assert "uname -r" in script and "nproc" in script and "/proc/cpuinfo" in script
    text = "\n".join(
        [
            "__farm_section__fp_kernel",
            "5.15.0-105-generic",
            "__farm_section__fp_arch",
            "aarch64",
            "__farm_section__fp_cpu_count",
            "8",
            "__farm_section__fp_cpu_model",
            "Hardware\t: BM1684X",
            "__farm_section__fp_os",
            "__farm_section__fp_python",
            "Python 3.8.10",
        ]
    )
    assert parse_host_fingerprint(text) == {
        "fp_kernel": "5.15.0-105-generic",
        "fp_arch": "aarch64",
        "fp_cpu_count": "8",
        "fp_cpu_model": "BM1684X",
        "fp_python": "3.8.10",
    }


def test_home_expansion() -> None:
    assert expand_home("~/LLM-TPU/demo", "/home/lab") == "/home/lab/LLM-TPU/demo"
    assert expand_home("~", "/home/lab/") == "/home/lab/"
    assert expand_home("~other/x", "/home/lab") == "~other/x"
    assert expand_home("/data/~/x", "/home/lab") == "/data/~/x"


def test_group_memory_and_zones() -> None:
    sep = "__farm_proc__"
    out = f"VmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n{sep}\nVmHWM:\t 10240 kB\nVmRSS:\t  3072 kB\n{sep}\n{sep}\n"
    assert group_peak_mib(out) == 10.0  # one process's high-water mark beats the group's current sum (4 MiB)
    many = f"VmHWM: 3072 kB\nVmRSS: 3072 kB\n{sep}\nVmHWM: 3072 kB\nVmRSS: 3072 kB\n{sep}\n"
    assert group_peak_mib(many) == 6.0
    assert group_peak_mib(f"{sep}\n") is None
    assert hottest_zone_c("45000\n0\n51500\n-274000\n") == 51.5
    assert hottest_zone_c("") is None


# -- the shared poller ------------------------------------------------------------------------------------------


class _Box:
    """A status source whose chip 0 memory rises with every poll and which can fail on demand. The tests wait
    for its calls instead of sleeping fixed times, so they hold on a loaded machine."""

    def __init__(self, delay_s: float = 0.01) -> None:
        self.delay_s = delay_s
        self.calls = 0
        self.fail = False
        self.cond = threading.Condition()

    def read(self) -> dict[int, Reading]:
        with self.cond:
            self.calls += 1
            n, failing = self.calls, self.fail
            self.cond.notify_all()
        time.sleep(self.delay_s)  # bm-smi over a slow link: the chip is read early, the answer comes back late
        if failing:
            raise DeviceOfflineError("box unplugged")
        return {0: {"mem_used_mb": 100.0 * n, "util_pct": 50.0}, 1: {"mem_used_mb": 7.0, "temp_c": 40.0 + n}}

    def wait_calls(self, n: int, timeout: float = 20.0) -> float:
        """Block until the n-th poll has begun; the seconds waited."""
        t0 = time.monotonic()
        with self.cond:
            assert self.cond.wait_for(lambda: self.calls >= n, timeout), f"{self.calls} polls, wanted {n}"
        return time.monotonic() - t0


def test_monitor_serves_concurrent_runs_with_one_poll_each_time() -> None:
    box = _Box()
    mon = BoxMonitor(box.read, interval_s=0.2, label="t")
    cols = {"mem_used_mb": "tpu_mem_peak_mb", "util_pct": "tpu_util_max_pct", "temp_c": "temp_max_c"}
    a, b = mon.watch(0, cols), mon.watch(1, cols)
    a.start(101)
    b.start(102)
    box.wait_calls(4)
    sa, sb = a.stop(), b.stop()
    # both runs were watched by the same polls: the box saw one bm-smi per poll, not one per run
    assert sa["sampler_polls"] >= 3 and sb["sampler_polls"] >= 3
    assert box.calls == mon.polls < sa["sampler_polls"] + sb["sampler_polls"]
    assert 300.0 <= sa["tpu_mem_peak_mb"] <= 100.0 * box.calls
    assert "temp_max_c" not in sa and sb["tpu_mem_peak_mb"] == 7.0 and sb["temp_max_c"] > 41
    assert sa["sampler_poll_ms"] >= 10
    calls = box.calls
    wait_until(lambda: mon._thread is None, timeout=10)
    assert box.calls == mon.polls == calls  # nobody watching: no more polls


def test_monitor_polls_early_for_a_short_run_and_skips_failed_polls() -> None:
    box = _Box()
    mon = BoxMonitor(box.read, interval_s=30.0, label="t")
    w = mon.watch(0, {"mem_used_mb": "m"})
    w.start(1)
    assert box.wait_calls(1) < 10  # the first poll comes 0.2 s after the run starts, not after the 30 s interval
    box.fail = True
    box.wait_calls(2)  # the second 0.5 s later: it fails
    s = w.stop()
    assert s["sampler_polls"] == 1 and s["m"] == 100.0  # the failed poll was made, not counted as a reading
    assert box.calls == 2


def test_a_reading_taken_during_a_run_counts_when_it_arrives_after_the_run() -> None:
    box = _Box(delay_s=0.5)
    mon = BoxMonitor(box.read, interval_s=30.0)
    w = mon.watch(0, {"mem_used_mb": "m"})
    w.start(1)
    box.wait_calls(1)  # the run ends while its first poll is still on its way back
    t0 = time.monotonic()
    s = w.stop()
    assert s == {"m": 100.0, "sampler_polls": 1.0, "sampler_poll_ms": s["sampler_poll_ms"]}
    assert 0.1 < time.monotonic() - t0 < 5.0
    late = mon.watch(0, {"mem_used_mb": "m"})
    late.start(2)
    assert late.stop() == {"sampler_polls": 0.0}  # ended before any poll began: nothing to wait for


def test_monitor_current_reuses_a_fresh_poll() -> None:
    box = _Box()
    mon = BoxMonitor(box.read, interval_s=1.0)
    first = mon.current(max_age_s=5.0)
    assert mon.current(max_age_s=5.0) is first and box.calls == 1
    mon.current(max_age_s=0.0)
    assert box.calls == 2
    with pytest.raises(ValueError):
        BoxMonitor(box.read, interval_s=0)


def test_memory_split_from_memory_edit_print() -> None:
    summary = "Info: chip is bm1684x\nInfo: npu:7615 MiB vpu:3072 MiB vpp:4096 MiB\n"
    assert memory_split(summary) == {
        "fp_tpu_mem_npu_mib": "7615",
        "fp_tpu_mem_vpu_mib": "3072",
        "fp_tpu_mem_vpp_mib": "4096",
    }
    hexa = "heap npu size: 0x193e00000\nheap vpu size: 0x0\nheap vpp size = 0xfd200000\n"
    assert memory_split(hexa) == {"fp_tpu_mem_npu_mib": "6462", "fp_tpu_mem_vpu_mib": "0", "fp_tpu_mem_vpp_mib": "4050"}
    assert memory_split("usage: memory_edit.sh -p | -c") == {}


def test_cann_and_torch_npu_versions() -> None:
    text = "__farm_section__cann\npackage_name=Ascend-cann-toolkit\nversion=7.0.T3\n__farm_section__python\n"
    text += "torch 1.11.0\ntorch_npu 1.11.0.post4\n"
    assert runtime_fingerprint(text) == {"fp_cann": "7.0.T3", "fp_torch": "1.11.0", "fp_torch_npu": "1.11.0.post4"}
    assert runtime_fingerprint("__farm_section__cann\n__farm_section__python\n") == {}
