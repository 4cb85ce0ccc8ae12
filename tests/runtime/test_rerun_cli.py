"""``farm rerun`` end to end on this host: a recorded run re-created from its row alone lands as its next attempt
with the same command line, env, workdir and artifact hashes, and the original row stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from farm.cli.main import main
from tests.runtime.helpers import rows

pytestmark = [pytest.mark.ray]

SAME = ("command", "argv", "env", "workdir", "artifacts", "settings", "p_n", "repeat", "device_id", "slot")


def test_rerun_of_a_row_reproduces_its_command_line_as_a_new_attempt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FARM_INVENTORY", raising=False)
    monkeypatch.delenv("FARM_RESULTS", raising=False)
    script = tmp_path / "bench.sh"
    script.write_text('echo "value=$(( $1 * SCALE ))"\n')
    placed = tmp_path / "device"
    job = {
        "name": "rerun-demo",
        "workload": "regex",
        "workload_options": {"patterns": {"value_ms": r"value=(\d+)"}},
        "artifacts": [{"src": str(script), "dst": f"{placed}/{{n}}/bench.sh", "mode": "0755"}],
        "workdir": str(tmp_path),
        "env": {"SCALE": "{n}0"},
        "command": ["sh", f"{placed}/{{n}}/bench.sh", "{n}"],
        "grid": {"n": [1, 2]},
        "repeat": 2,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    results = tmp_path / "res"
    assert main(["run", str(path), "--results", str(results), "--no-progress"]) == 0
    before = rows(results, "rerun-demo")
    assert len(before) == 4
    target = next(r for r in before if r["p_n"] == 2 and r["repeat"] == 1)
    assert target["value_ms"] == 40 and target["fp_sha256_bench_sh"]

    capsys.readouterr()
    assert main(["rerun", target["run_id"], "--results", str(results), "--print"]) == 0
    printed = capsys.readouterr().out
    assert f"cd {tmp_path} && env " in printed and "SCALE=20 " in printed
    assert printed.rstrip().endswith(f"sh {placed}/2/bench.sh 2") and f"run {target['run_id']}" in printed

    path.unlink()  # the row alone is enough
    assert main(["rerun", target["run_id"], "--results", str(results), "--no-progress"]) == 0
    assert f"run {target['run_id']} attempt 2 on {target['slot']}: ok" in capsys.readouterr().out
    after = rows(results, "rerun-demo")
    assert len(after) == 5
    new = next(r for r in after if r["run_id"] == target["run_id"] and r["attempt"] == 2)
    assert {c: new[c] for c in SAME} == {c: target[c] for c in SAME}
    assert new["fp_sha256_bench_sh"] == target["fp_sha256_bench_sh"]
    assert new["status"] == "ok" and new["value_ms"] == 40
    original = next(r for r in after if r["run_id"] == target["run_id"] and r["attempt"] == 1)
    assert original == target  # untouched
    assert main(["rerun", "no-such-run", "--results", str(results), "--print"]) == 2
