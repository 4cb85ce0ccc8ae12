"""Adaptive repeats end to end on a real local Ray and a host device: a command prints a scripted sequence of
numbers per point; a stable sequence stops at ``min``, a noisy one runs to ``max``."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm import runtime
from farm.client import FarmClient
from tests.runtime.helpers import hosts, rows, start, wait_until, write_job

pytestmark = pytest.mark.ray

SCRIPT = """\
import json, pathlib, sys
seqs = json.loads(pathlib.Path(sys.argv[1]).read_text())
counter = pathlib.Path(sys.argv[1]).with_name("count_" + sys.argv[2])
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
print(f"tok/s={seqs[sys.argv[2]][n]}")
"""
SEQUENCES = {
    "stable": [100.0, 100.3, 99.8, 100.1, 99.9, 100.2],
    "noisy": [100.0, 150.0, 60.0, 130.0, 70.0, 120.0],
}


@pytest.fixture
def client(local_ray: None, tmp_path: Path) -> Iterator[FarmClient]:
    c = start(hosts("h1"), tmp_path / "res")
    yield c
    with contextlib.suppress(Exception):
        c.shutdown(timeout=30)
    c.kill()
    wait_until(lambda: runtime.find_controller() is None, timeout=30)


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_stable_point_stops_at_min_noisy_point_goes_to_max(client: FarmClient, tmp_path: Path, method: str) -> None:
    (tmp_path / "seq.json").write_text(json.dumps(SEQUENCES))
    (tmp_path / "emit.py").write_text(SCRIPT)
    data = {
        "name": f"adaptive-{method}",
        "workload": "regex",
        "workload_options": {"patterns": {"tok_s": r"tok/s=(\S+)"}},
        "command": [sys.executable, str(tmp_path / "emit.py"), str(tmp_path / "seq.json"), "{mode}"],
        "grid": {"mode": ["stable", "noisy"]},
        "repeat": {"min": 3, "max": 6, "ci": "2%", "method": method},
        "order": "interleave",
        "retries": 0,
    }
    job, src = write_job(tmp_path, data)
    status = client.wait(client.submit(job, src, ship=False), 240)
    assert status.state == "done" and status.statuses == {"ok": 9} and status.total == 9, status
    got = rows(tmp_path / "res", data["name"])
    by_mode = {m: sorted((r for r in got if r["p_mode"] == m), key=lambda r: r["repeat"]) for m in SEQUENCES}
    assert [r["repeat"] for r in by_mode["stable"]] == [0, 1, 2]
    assert [r["repeat"] for r in by_mode["noisy"]] == [0, 1, 2, 3, 4, 5]
    assert [r["tok_s"] for r in by_mode["noisy"]] == SEQUENCES["noisy"]
    for mode, count in (("stable", 3), ("noisy", 6)):
        closing = [r for r in by_mode[mode] if r.get("repeat_count") is not None]
        assert len(closing) == 1 and closing[0]["repeat_count"] == count and closing[0]["ci_method"] == method
        assert closing[0]["ci_low"] <= closing[0]["ci_high"]
    (stable,) = [r for r in by_mode["stable"] if r.get("repeat_count") is not None]
    (noisy,) = [r for r in by_mode["noisy"] if r.get("repeat_count") is not None]
    assert stable["ci_rel_pct"] <= 2.0 < noisy["ci_rel_pct"]
    # Resubmitted, the job reads back the values done before: the stable point stays closed, nothing runs again.
    again = client.wait(client.submit(job, src, ship=False), 240)
    assert again.state == "done" and again.statuses == {} and again.skipped == 6, again  # the planned min runs
