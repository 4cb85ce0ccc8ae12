"""Cluster mode through the real CLI: a detached controller on a running Ray, then submit/status/wait/cancel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ray


def farm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "farm.cli.main", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=180,
        env={**os.environ, "RAY_ADDRESS": "", "COLUMNS": "200"},  # tables unwrapped
    )
    if check and done.returncode != 0:
        raise AssertionError(f"farm {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def test_submit_status_wait_cancel_devices(tmp_path: Path, head: str) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(yaml.safe_dump({"devices": [{"id": "a", "kind": "host"}, {"id": "b", "kind": "host"}]}))
    job = tmp_path / "job.yaml"
    art = tmp_path / "payload.sh"
    art.write_text("echo value=$1\n")
    job_data = {
        "name": "clijob",
        "workload": "regex",
        "workload_options": {"patterns": {"value_ms": r"value=(\d+)"}},
        "artifacts": [{"src": "payload.sh", "dst": str(tmp_path / "remote") + "/{device.id}/"}],
        "command": ["sh", str(tmp_path / "remote") + "/{device.id}/payload.sh", "{i}"],
        "grid": {"i": [1, 2, 3]},
    }
    job.write_text(yaml.safe_dump(job_data))
    slow = tmp_path / "slow.yaml"
    slow.write_text(
        yaml.safe_dump(
            {
                **job_data,
                "name": "slowjob",
                "artifacts": [],
                "command": ["sh", "-c", "sleep 2; echo value={i}"],
                "grid": {"i": list(range(20))},
            }
        )
    )
    results = tmp_path / "res"
    out = farm("controller", "start", "--address", head, "--inventory", str(inv), "--results", str(results))
    assert "2 devices" in out.stdout
    try:
        job_id = farm("submit", str(job), "--address", head).stdout.strip().splitlines()[-1]
        assert job_id.startswith("clijob-")
        waited = farm("wait", job_id, "--address", head, "--results", str(results))
        assert "done: 6 ok" in waited.stdout
        assert job_id in farm("status", "--address", head).stdout

        # Refused by the controller (only it knows the farm's devices): the error crosses Ray intact → exit 2.
        nomatch = tmp_path / "nomatch.yaml"
        nomatch.write_text(yaml.safe_dump({**job_data, "name": "nomatch", "devices": {"kind": "android"}}))
        refused = farm("submit", str(nomatch), "--address", head, check=False)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.splitlines() == [f"{nomatch}: devices: matches no device of the farm"]

        slow_id = farm("submit", str(slow), "--address", head).stdout.strip().splitlines()[-1]
        devices = farm("devices", "--address", head).stdout
        assert "a" in devices and "host" in devices and "reason" in devices
        farm("cancel", slow_id, "--address", head)
        waited = farm("wait", slow_id, "--address", head, check=False)
        assert waited.returncode == 1 and "cancelled" in waited.stdout
        assert "not started" in farm("status", slow_id, "--address", head).stdout
    finally:
        farm("controller", "stop", "--address", head, check=False)
    rows = farm(
        "query",
        "SELECT job, status, count(*) AS n FROM runs GROUP BY ALL ORDER BY ALL",
        "--results",
        str(results),
        "--format",
        "csv",
    ).stdout
    assert "clijob,ok,6" in rows
    assert "slowjob,cancelled," in rows
    # 20 runs on each of the 2 devices; those that never started are counted once, in its cancellation record
    cancelled = farm("query", "SELECT job, total, finished + not_started AS n FROM cancellations", "--results",
                     str(results), "--format", "csv").stdout  # fmt: skip
    assert "slowjob,40,40" in cancelled
    assert (tmp_path / "remote" / "a" / "payload.sh").read_text() == "echo value=$1\n"
