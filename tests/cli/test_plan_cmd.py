"""``farm plan``: the JSON lines a job expands to, and the human summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm.cli.main import main
from farm.plan import run_id

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "deploy" / "inventory.example.yaml"


def plan_json(capsys: pytest.CaptureFixture[str], job: Path, *extra: str) -> list[dict[str, object]]:
    code = main(["plan", str(job), "--json", *extra])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    return [json.loads(line) for line in out.splitlines()]


def test_json_lines_carry_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    rows = plan_json(capsys, REPO / "jobs" / "ascend-llama-adapter.yaml", "--inventory", str(INVENTORY))
    assert len(rows) == 2 * 3 * 2  # points × repeats × NPUs
    assert set(rows[0]) == {"run_id", "slot", "params", "repeat", "warmup", "command", "env"}
    point = {"batch_size": 1, "infer_loop": 25}
    assert rows[0] == {
        "run_id": run_id("ascend-llama-adapter", "ascend-310p/npu0", point, 0, False),
        "slot": "ascend-310p/npu0",
        "params": point,
        "repeat": 0,
        "warmup": False,
        "command": ["python3", "demo_bsz_farm_b1_npu0.py"],
        "env": {"ASCEND_RT_VISIBLE_DEVICES": "0"},
    }
    assert rows[1]["slot"] == "ascend-310p/npu1"
    assert rows[1]["env"] == {"ASCEND_RT_VISIBLE_DEVICES": "1"}
    assert len({r["run_id"] for r in rows}) == len(rows)


def test_json_placement_any(capsys: pytest.CaptureFixture[str]) -> None:
    rows = plan_json(capsys, REPO / "jobs" / "lightcode-search.yaml", "--inventory", str(INVENTORY))
    assert len(rows) == 3 * 6 * 2
    assert {r["slot"] for r in rows} == {"*"}
    assert rows[0]["command"][:8] == ["farm-lightcode", "graph", "--model", "gpt2_prefill", "--optimization", "time",
                                      "--seq-len", "16"]  # fmt: skip


def test_default_inventory_is_this_host(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: j\nworkload: json\ncommand: [echo, '{n}', '{device.kind}']\ngrid: {n: [1, 2]}\n")
    rows = plan_json(capsys, job)
    assert [r["command"] for r in rows] == [["echo", "1", "host"], ["echo", "2", "host"]]


def test_table_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", str(REPO / "jobs" / "llm-tpu-qwen.yaml"), "--inventory", str(INVENTORY), "--rows", "2"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert out.splitlines()[0] == (
        "llm-tpu-qwen: workload sophgo_llm_tpu, 2 points, repeat 3, warm-up 0, order interleave, "
        "placement each → 12 runs"
    )
    assert "sophgo-box/chip1" in out


def test_no_matching_device_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    job = REPO / "jobs" / "llm-tpu-qwen.yaml"
    code = main(["plan", str(job)])  # default inventory: this host only, no Sophgo chip
    _, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines() == [f"{job}: devices: matches no device of the inventory"]


def test_render_error_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: j\nworkload: json\ncommand: [x, '--devid', '{device.chip}']\n")
    code = main(["plan", str(job), "--json"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"{job}: command[2]: '{{device.chip}}' has no value for this run")
