"""Guarantees outside the happy path, on a real local Ray: cancelling a huge sweep, what a device actor's errors
count as, and where the private Ray listens."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from farm import runtime
from farm.client import FarmClient, RunStatus
from farm.controller import _failed_call
from farm.results import ResultsStore, query
from farm.rows import classify
from farm.workloads import make_adapter
from tests.runtime.helpers import hosts, rows, start, wait_until, write_job

pytestmark = pytest.mark.ray
MILLION = {"a": {"start": 0, "stop": 999}, "b": {"start": 0, "stop": 999}}  # 1000 x 1000 points


@pytest.fixture
def controllers(local_ray: None) -> Iterator[list[FarmClient]]:
    clients: list[FarmClient] = []
    yield clients
    for c in clients:
        with contextlib.suppress(Exception):
            c.shutdown(timeout=30)
        c.kill()
    wait_until(lambda: runtime.find_controller() is None, timeout=30)


def test_cancelling_a_million_run_sweep_is_quick_and_writes_rows_for_started_runs_only(
    tmp_path: Path, controllers: list[FarmClient]
) -> None:
    job, src = write_job(
        tmp_path,
        {
            "name": "million",
            "workload": "regex",
            "workload_options": {"patterns": {"value_count": r"value=(\d+)"}},
            "command": ["sh", "-c", "sleep 0.2; echo value={a}"],
            "grid": MILLION,
            "devices": {"placement": "any"},  # a million runs shared by the two devices
        },
    )
    res = tmp_path / "res"
    client = start(hosts("cancel-h1", "cancel-h2"), res)
    controllers.append(client)
    job_id = client.submit(job, src, ship=False)
    assert client.status(job_id).total == 1_000_000
    wait_until(lambda: client.status(job_id).count(RunStatus.OK) >= 3, timeout=120)
    t0 = time.monotonic()
    client.cancel(job_id)
    st = client.wait(job_id, 60)
    elapsed = time.monotonic() - t0
    assert st.state == "cancelled" and elapsed <= 2.0, (elapsed, st)

    got = rows(res, "million")
    statuses = Counter(r["status"] for r in got)
    # a row per run that reached a device: the ok ones and at most one killed per slot; none for the others
    assert statuses["ok"] >= 3 and statuses["cancelled"] <= 2 and set(statuses) <= {"ok", "cancelled"}
    assert dict(statuses) == st.statuses and len({(r["run_id"], r["attempt"]) for r in got}) == len(got)
    store = ResultsStore(str(res))
    assert len(store.part_files("million")) <= 2  # a handful of rows, not a file per 2,000 cancelled runs
    assert len(list((res / "logs" / "million").iterdir())) == len(got)
    # the runs that never started are counted once, in the job's cancellation record
    assert st.not_started == 1_000_000 - len(got) and st.queued == 0
    (record,) = store.job_records("million")
    assert record["job_id"] == job_id and record["not_started"] == st.not_started and record["total"] == 1_000_000
    assert query(store, "SELECT not_started FROM cancellations").to_pylist() == [{"not_started": st.not_started}]


def test_cancel_mid_sweep_records_started_runs_and_counts_the_rest(
    tmp_path: Path, controllers: list[FarmClient]
) -> None:
    job, src = write_job(
        tmp_path,
        {
            "name": "cancelme",
            "workload": "regex",
            "workload_options": {"patterns": {"value_count": r"value=(\d+)"}},
            "command": ["sh", "-c", "sleep 0.4; echo value={i}"],
            "grid": {"i": list(range(10))},
        },
    )
    client = start(hosts("cancel-h"), tmp_path / "res")
    controllers.append(client)
    job_id = client.submit(job, src, ship=False)
    wait_until(lambda: client.status(job_id).count(RunStatus.OK) >= 2)
    client.cancel(job_id)
    st = client.wait(job_id, 60)
    got = rows(tmp_path / "res", "cancelme")
    statuses = Counter(r["status"] for r in got)
    assert st.state == "cancelled" and statuses["ok"] >= 2 and statuses["cancelled"] <= 1
    assert len(got) + st.not_started == 10 and st.not_started >= 1


@ray.remote
class _Raiser:
    def boom(self) -> None:
        raise ValueError("bad core list 'big'")

    def pid(self) -> int:
        import os

        return os.getpid()


def _error_once_dead(actor: Any, deadline_s: float = 60.0) -> ray.exceptions.RayActorError:
    """The error a call to ``actor`` raises once it is dead. ``ray.kill`` is asynchronous: a call made right after
    it may still be served, so call until one fails (or the deadline says the kill never landed)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            ray.get(actor.pid.remote(), timeout=deadline_s)
        except ray.exceptions.RayActorError as exc:
            return exc
        time.sleep(0.05)
    raise AssertionError(f"the actor still answers {deadline_s} s after ray.kill")


def test_an_actor_method_raising_is_a_failed_run_and_a_dead_actor_an_infra_error(local_ray: None) -> None:
    adapter = make_adapter("regex", {"patterns": {"x_count": r"x=(\d+)"}})
    actor = _Raiser.remote()  # type: ignore[attr-defined]
    with pytest.raises(ray.exceptions.RayTaskError) as raised:
        ray.get(actor.boom.remote())
    status, error, _ = classify(_failed_call(raised.value), adapter)
    assert status == "failed" and error is not None and "ValueError: bad core list 'big'" in error
    ray.kill(actor)
    status, error, _ = classify(_failed_call(_error_once_dead(actor)), adapter)
    assert status == "infra_error" and error is not None and "device actor failed" in error


def _listening(pid: int) -> list[str]:
    """Local addresses (hex ``ADDR:PORT`` of /proc/net/tcp*) on which ``pid`` has a listening TCP socket."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = fd.readlink().name
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    out: list[str] = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:  # the process has just exited (a worker): it listens on nothing
            return []
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                out.append(fields[1])
    return out


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in task.read_text().split()]
    return out


def _ray_listening() -> dict[str, list[str]]:
    """``{"<name> <pid>": [listening addresses]}`` for every process of this driver's Ray node and their children
    (the agents the raylet starts)."""
    from ray._private import worker

    node = worker._global_node
    assert node is not None
    todo = [(name, info.process.pid) for name, infos in node.all_processes.items() for info in infos if info.process]
    seen: dict[str, list[str]] = {}
    while todo:
        name, pid = todo.pop()
        seen[f"{name} {pid}"] = _listening(pid)
        todo += [(f"{name}/child", child) for child in _children(pid)]
    return seen


def test_the_private_ray_listens_on_loopback_only(local_ray: None) -> None:
    from ray._private import worker

    assert worker._global_node is not None and worker._global_node.node_ip_address == "127.0.0.1"
    listening = _ray_listening()
    addresses = [a for addrs in listening.values() for a in addrs]
    assert len(addresses) >= 3, listening  # the GCS and the raylet (2) do listen
    # 127.0.0.1 as /proc/net/tcp shows it, and as tcp6 shows it (IPv4-mapped ::ffff:127.0.0.1), and ::1
    loopback = ("0100007F:", "0000000000000000FFFF00000100007F:", "00000000000000000000000001000000:")
    assert [a for a in addresses if not a.startswith(loopback)] == [], listening


@pytest.mark.ssh
def test_stopping_the_controller_closes_the_devices_connections(tmp_path: Path, controllers: list[FarmClient]) -> None:
    from farm.specs.inventory import Inventory
    from tests.fixtures.ssh import make_sshd_box

    box = make_sshd_box(tmp_path / "box")  # its own sshd: its connections are this test's only
    try:
        c = box.config
        ssh = {"host": c.host, "port": c.port, "user": c.user, "key_file": c.key_file, "known_hosts": c.known_hosts}
        inv = Inventory.model_validate({"devices": [{"id": "closing-srv", "kind": "host", "ssh": ssh}]})
        client = start(inv, tmp_path / "res")
        controllers.append(client)
        assert box.connections() >= 1  # the health check at start connected
        client.shutdown(timeout=60)
        wait_until(lambda: box.connections() == 0, timeout=30)
    finally:
        box.stop()


# ----- short runs share a call to their device (farm.batching) ---------------------------------------------------
def _short_job(tmp_path: Path, name: str, n: int, command: str = "echo value={i}", **extra: Any) -> tuple[Any, str]:
    data = {
        "name": name,
        "workload": "regex",
        "workload_options": {"patterns": {"value_count": r"value=(\d+)"}},
        "command": ["sh", "-c", command],
        "grid": {"i": {"start": 0, "stop": n - 1}},
        **extra,
    }
    return write_job(tmp_path, data)


def test_short_runs_share_calls_and_each_lands_once(tmp_path: Path, controllers: list[FarmClient]) -> None:
    job, src = _short_job(tmp_path, "short", 300)
    client = start(hosts("short-h1", "short-h2"), tmp_path / "res")
    controllers.append(client)
    st = client.wait(client.submit(job, src, ship=False), 300)
    assert st.state == "done" and st.statuses == {"ok": 600}
    got = rows(tmp_path / "res", "short")
    assert len(got) == 600 and len({(r["run_id"], r["attempt"]) for r in got}) == 600
    assert sorted(r["value_count"] for r in got if r["device_id"] == "short-h1") == list(range(300))
    assert all(Path(r["log_path"]).is_file() and r["dispatch_latency_s"] >= 0 for r in got)
    stats = client.stats()
    assert stats["runs_sent"] == 600 and stats["calls"] <= 300, stats  # most calls carried several runs


def test_cancelling_batched_runs_counts_each_run_once(tmp_path: Path, controllers: list[FarmClient]) -> None:
    job, src = _short_job(tmp_path, "short-cancel", 3000, "sleep 0.01; echo value={i}")
    client = start(hosts("short-cancel-h"), tmp_path / "res")
    controllers.append(client)
    job_id = client.submit(job, src, ship=False)
    wait_until(lambda: client.status(job_id).count(RunStatus.OK) >= 100, timeout=120)
    client.cancel(job_id)
    st = client.wait(job_id, 60)
    assert st.state == "cancelled"
    got = rows(tmp_path / "res", "short-cancel")
    assert len({r["run_id"] for r in got}) == len(got) and dict(Counter(r["status"] for r in got)) == st.statuses
    assert st.count(RunStatus.CANCELLED) <= 1  # only the run that was running is killed
    assert len(got) + st.not_started == 3000 and st.queued == 0 and st.running == 0


def test_a_device_actor_lost_mid_batch_runs_every_run_to_one_ok_row(
    tmp_path: Path, controllers: list[FarmClient]
) -> None:
    job, src = _short_job(tmp_path, "short-lost", 400, "sleep 0.005; echo value={i}", retries=2)
    client = start(hosts("short-lost-h"), tmp_path / "res")
    controllers.append(client)
    job_id = client.submit(job, src, ship=False)
    wait_until(lambda: client.status(job_id).count(RunStatus.OK) >= 50, timeout=120)
    actor = client.device_handles()["short-lost-h"]
    os.kill(ray.get(actor.pid.remote()), signal.SIGKILL)
    st = client.wait(job_id, 300)
    assert st.state == "done" and st.count(RunStatus.OK) == 400, st
    got = rows(tmp_path / "res", "short-lost")
    ok = Counter(r["run_id"] for r in got if r["status"] == "ok")
    assert len(ok) == 400 and set(ok.values()) == {1}
    # the call the actor died in: its first run has an infra_error row and was retried; the others were run again
    assert {r["status"] for r in got} <= {"ok", "infra_error"}
    assert sum(r["status"] == "infra_error" for r in got) == st.retries
