"""The spine on a real local Ray: failures, timeouts, controller restart — rows exact, never duplicated (cancel: see
test_guarantees.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from farm import runtime
from farm.client import DeviceStatus, FarmClient, JobStatus
from tests.runtime.helpers import hosts, rows, start, wait_until, write_job

pytestmark = pytest.mark.ray


@pytest.fixture
def controller_factory(local_ray: None) -> Iterator[list[FarmClient]]:
    clients: list[FarmClient] = []
    yield clients
    for c in clients:
        with contextlib.suppress(Exception):  # already dead in the crash test
            c.shutdown(timeout=30)
        c.kill()
    wait_until(lambda: runtime.find_controller() is None, timeout=30)


def _sleep_job(name: str, n: int, seconds: float, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "workload": "regex",
        "workload_options": {"patterns": {"value_ms": r"value=(\d+)"}},
        "command": ["sh", "-c", f"sleep {seconds}; echo value={{i}}"],
        "grid": {"i": list(range(n))},
        **extra,
    }


def test_every_run_lands_once_with_metrics(tmp_path: Path, controller_factory: list[FarmClient]) -> None:
    job, src = write_job(tmp_path, _sleep_job("lands", 4, 0.05, repeat=2))
    client = start(hosts("h1", "h2"), tmp_path / "res")
    controller_factory.append(client)
    job_id = client.submit(job, src, ship=False)
    st = client.wait(job_id, 120)
    assert st.state == "done" and st.statuses == {"ok": 16}
    # the client's status holds every field the controller sends, no more, no less
    assert set(ray.get(client.handle.status.remote(job_id))) == {f.name for f in dataclasses.fields(JobStatus)}
    (device,) = ray.get(client.handle.devices_status.remote())[:1]
    assert set(device) == {f.name for f in dataclasses.fields(DeviceStatus)}
    got = rows(tmp_path / "res", "lands")
    assert len(got) == 16 and len({(r["run_id"], r["attempt"]) for r in got}) == 16
    assert Counter(r["device_id"] for r in got) == {"h1": 8, "h2": 8}
    assert sorted(r["value_ms"] for r in got if r["device_id"] == "h1") == sorted([0, 1, 2, 3] * 2)
    assert all(r["peak_rss_mib"] > 0 and r["dispatch_latency_s"] >= 0 for r in got)
    assert all(f"--- stdout ---\nvalue={r['p_i']}\n" in Path(r["log_path"]).read_text() for r in got)


def test_killed_device_actor_is_retried_to_exactly_one_ok_row(
    tmp_path: Path, controller_factory: list[FarmClient]
) -> None:
    job, src = write_job(tmp_path, _sleep_job("killed", 3, 1.5, retries=2))
    client = start(hosts("victim"), tmp_path / "res")
    controller_factory.append(client)
    job_id = client.submit(job, src, ship=False)
    wait_until(lambda: client.status(job_id).running == 1)
    devices = client.devices()
    assert devices[0].current_run
    victim_run = devices[0].current_run.split(":")[1]
    actor = handle_of(client, "victim")
    os.kill(ray.get(actor.pid.remote()), signal.SIGKILL)
    st = client.wait(job_id, 120)
    assert st.state == "done" and st.statuses == {"ok": 3} and st.retries == 1
    got = rows(tmp_path / "res", "killed")
    ok = Counter(r["run_id"] for r in got if r["status"] == "ok")
    assert sorted(ok.values()) == [1, 1, 1]
    retried = [r for r in got if r["run_id"] == victim_run]
    assert sorted((r["attempt"], r["status"]) for r in retried) == [(1, "infra_error"), (2, "ok")]


def handle_of(client: FarmClient, device_id: str) -> Any:
    # The controller keeps its device actor handles; tests reach a device actor through the controller's state.
    return client.device_handles()[device_id]


def test_timeout_row_and_no_leftover_process(tmp_path: Path, controller_factory: list[FarmClient]) -> None:
    marker = f"{uuid.uuid4().int % 10_000 + 1000}.{os.getpid()}"
    job, src = write_job(
        tmp_path,
        {
            "name": "slow",
            "workload": "regex",
            "workload_options": {"patterns": {"value_ms": r"value=(\d+)"}},
            # a grandchild that would outlive a naive kill of the direct child
            "command": ["sh", "-c", f"sleep {marker} & sleep {marker}; echo value=1"],
            "timeout": "1s",
            "retries": 0,
        },
    )
    client = start(hosts("h"), tmp_path / "res")
    controller_factory.append(client)
    st = client.wait(client.submit(job, src, ship=False), 60)
    assert st.statuses == {"timeout": 1}
    (row,) = rows(tmp_path / "res", "slow")
    assert row["status"] == "timeout" and 0.9 <= row["duration_s"] < 10
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).endswith(marker)]
    assert leftovers == []


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_controller_restart_skips_done_runs(tmp_path: Path, controller_factory: list[FarmClient]) -> None:
    job, src = write_job(tmp_path, _sleep_job("restart", 8, 0.3))
    res = tmp_path / "res"
    client = start(hosts("h"), res, flush_rows=1)
    client.submit(job, src, ship=False)
    # Rows on disk, not the controller's count: a run is counted before the recorder thread has written its row.
    wait_until(lambda: len(rows(res, "restart")) >= 3)
    client.kill()  # a crash: no shutdown, no flush beyond what was already written
    wait_until(lambda: runtime.find_controller() is None, timeout=30)
    before = {r["run_id"] for r in rows(res, "restart") if r["status"] == "ok"}
    assert len(before) >= 3

    client = start(hosts("h"), res)
    controller_factory.append(client)
    st = client.wait(client.submit(job, src, ship=False), 120)
    assert st.state == "done" and st.skipped == len(before)
    got = rows(res, "restart")
    ok = Counter(r["run_id"] for r in got if r["status"] == "ok")
    assert len(ok) == 8 and set(ok.values()) == {1}
    assert len({(r["run_id"], r["attempt"]) for r in got}) == len(got)


def test_two_jobs_share_a_device_fairly(tmp_path: Path, controller_factory: list[FarmClient]) -> None:
    job_a, src_a = write_job(tmp_path, _sleep_job("fair-a", 8, 0.2), "a.yaml")
    job_b, src_b = write_job(tmp_path, _sleep_job("fair-b", 8, 0.2), "b.yaml")
    client = start(hosts("shared"), tmp_path / "res")
    controller_factory.append(client)
    id_a = client.submit(job_a, src_a, ship=False)
    id_b = client.submit(job_b, src_b, ship=False)
    for job_id in (id_a, id_b):
        assert client.wait(job_id, 60).statuses == {"ok": 8}
    got = rows(tmp_path / "res", "fair-a") + rows(tmp_path / "res", "fair-b")
    order = [r["job"] for r in sorted(got, key=lambda r: r["started_at"])]
    # the second job does not wait for the first to finish: they take turns, a call each (these 0.2-s runs go
    # four to a call once the first has been timed, farm.batching: a, a×4, b, a×3, b×4, b×3)
    turns = [job for job, _ in itertools.groupby(order)]
    assert len(turns) >= 3, order  # one job after the other would be two turns
