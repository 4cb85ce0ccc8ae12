"""farm-lightcode against the stand-in simulator package (farm/sim/lightcode), and without any simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STAND_IN = REPO / "farm" / "sim" / "lightcode"
HARDWARE = ["--cpu-clock-ghz", "3.208", "--phu-clock-ghz", "9.7", "--phu-multiplex", "20", "--gpu-clock-ghz", "1.98"]


def run(*args: str, simulator: bool = True) -> subprocess.CompletedProcess[str]:
    path = [str(REPO)] + ([str(STAND_IN)] if simulator else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([sys.executable, "-m", "farm.runners.lightcode_cli", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)  # fmt: skip


def last_json(text: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(text.strip().splitlines()[-1])
    return result


def test_graph_search_prints_makespan_energy_and_photonic_nodes() -> None:
    short = run("graph", "--optimization", "time", "--seq-len", "8", *HARDWARE)
    long = run("graph", "--optimization", "time", "--seq-len", "1024", *HARDWARE)
    assert short.returncode == 0, short.stderr
    a, b = last_json(short.stdout), last_json(long.stdout)
    assert a["moc_sequence_length"] == 8 and a["num_nodes"] == 108
    assert 0 < a["Makespan"] < b["Makespan"] and a["phu_nodes"] < b["phu_nodes"]  # type: ignore[operator]
    assert "farm-fp: fp_lightcode_path=" in short.stdout and "SYNTHETIC" in short.stdout


def test_threshold_search_reads_the_printed_set() -> None:
    time_ = last_json(run("thresholds", "--optimization", "time", *HARDWARE).stdout)
    energy = last_json(run("thresholds", "--optimization", "energy", *HARDWARE).stdout)
    assert time_["thresholds"] and time_["thresholds"] != energy["thresholds"]
    assert time_["threshold_count"] == len(time_["thresholds"])  # type: ignore[arg-type]


def test_missing_simulator_or_bad_input_is_exit_2_with_a_reason() -> None:
    missing = run("graph", "--optimization", "time", "--seq-len", "8", simulator=False)
    assert missing.returncode == 2 and missing.stdout == ""
    assert "the lightcode package is not installed on this host" in missing.stderr and "pip install" in missing.stderr
    unknown = run("graph", "--optimization", "time", "--seq-len", "8", "--model", "bert")
    assert unknown.returncode == 2 and "unknown --model 'bert'" in unknown.stderr and "gpt2_prefill" in unknown.stderr
    no_len = run("graph", "--optimization", "time")
    assert no_len.returncode == 2 and "--seq-len" in no_len.stderr
