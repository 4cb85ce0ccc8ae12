"""Helpers shared by the orchestration benchmarks: the machine record, percentiles, a farm of N local hosts.

The benchmarks run the real farm (embedded Ray, the controller actor, one device actor per ``host`` device) on
this machine; nothing here fakes a part of it. ``host`` devices with distinct ids are exclusive slots of the
same machine, so N of them model N devices that each run one benchmark at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.client import ControllerOptions, FarmClient, JobState, JobStatus
from farm.specs.inventory import Inventory

if TYPE_CHECKING:
    from farm.sim.phone import VirtualPhone

# What every benchmarked run executes, on the farm and in every baseline: a process that sleeps, then prints
# one metric line the regex adapter parses (so a run is a full ``ok`` row, not a parse error).
METRIC_PATTERN = r"slept_s=(\S+)"


def sleep_argv(seconds: float) -> list[str]:
    return ["sh", "-c", f"sleep {seconds:g}; echo slept_s={seconds:g}"]


def machine() -> dict[str, str]:
    """What the figures were measured on; printed with every result so a number never travels without it."""
    import ray

    mem_kb = 0
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu_model": model,
        "memory_gib": f"{mem_kb / 2**20:.1f}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "loadavg_at_start": loadavg(),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
    }


def loadavg() -> str:
    """1- and 5-minute load averages: on a shared machine, how many others wanted the CPUs meanwhile."""
    load1, load5, _ = os.getloadavg()
    return f"{load1:.2f} {load5:.2f} (1 min, 5 min)"


def print_machine(info: dict[str, str]) -> None:
    for key, value in {**info, "loadavg_at_end": loadavg()}.items():
        print(f"  {key:<16} {value}")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def host_ids(n: int) -> list[str]:
    return [f"host-{i:02d}" for i in range(n)]


def host_inventory(n: int) -> Inventory:
    """N ``host`` devices on this machine with distinct ids: N exclusive slots."""
    return Inventory.model_validate({"devices": [{"id": d, "kind": "host"} for d in host_ids(n)]})


def sleep_job(name: str, runs_per_device: int, seconds: float) -> dict[str, Any]:
    """A job that runs the sleep command ``runs_per_device`` times on every selected device (placement each)."""
    return {
        "name": name,
        "workload": "regex",
        "workload_options": {"patterns": {"slept_s": METRIC_PATTERN}},
        "command": sleep_argv(seconds),
        "grid": {"i": list(range(runs_per_device))},
        "order": "grid",
        "retries": 0,
        "timeout": 60 + 10 * seconds,
    }


def init_local_ray(resources: dict[str, float] | None = None) -> None:
    """A private Ray instance for this benchmark, with the options of ``farm.runtime.init_ray``'s embedded mode.

    ``address="local"``: without it ``ray.init`` joins a cluster some other process started on this machine
    (``ray start``), and the figures would include its load and its nodes."""
    import ray

    from farm.controller import NAMESPACE

    ray.init(
        address="local",
        num_cpus=os.cpu_count() or 1,
        resources=resources,
        include_dashboard=False,
        namespace=NAMESPACE,
        log_to_driver=False,
        configure_logging=False,
    )


def start_farm(devices: int, results_root: Path, **opts: Any) -> FarmClient:
    """The controller with ``devices`` local hosts on the running Ray (see :func:`init_local_ray`); ``opts``: more
    :class:`ControllerOptions`."""
    # No Prometheus exporter and a slow health loop: the benchmark measures dispatch, not monitoring.
    options = ControllerOptions(**{"health_interval_s": 60.0, "metrics_port": None, **opts})
    return FarmClient.start(host_inventory(devices), str(results_root), options=options)


def stop_farm(client: FarmClient) -> None:
    try:
        client.shutdown(timeout=60)
    finally:
        client.kill()


def run_job(client: FarmClient, job: dict[str, Any], base_dir: Path, timeout_s: float) -> tuple[JobStatus, float]:
    """Submit ``job`` and wait until its last row is written; returns its final status and the wall time (s)
    from the submit call to the moment the controller reported the job done."""
    t0 = time.perf_counter()
    job_id = client.submit_data(job, f"<bench:{job['name']}>", str(base_dir), rerun=True)
    status = client.wait(job_id, timeout_s)
    wall = time.perf_counter() - t0
    if status.state is not JobState.DONE:
        raise RuntimeError(f"job {job['name']} did not finish in {timeout_s:.0f}s: {status}")
    others = [j.job for j in client.jobs() if j.job_id != job_id]
    if others:
        # `ray.init(address="auto")` elsewhere on this machine attaches to any running Ray, ours included.
        print(f"WARNING: other clients submitted jobs to this benchmark's controller: {others}; figures disturbed")
    return status, wall


def read_rows(results_root: Path, job: str) -> list[dict[str, Any]]:
    from farm.results import ResultsStore

    table = ResultsStore(str(results_root)).table(job)
    return table.to_pylist() if table is not None else []


def idle_gaps(runs: Iterable[tuple[str, float, float]]) -> list[float]:
    """Per device, the time between one run's command ending and the next run's command starting (s), from
    ``(device, start epoch s, duration s)`` of every run: what the orchestration costs a device between two
    back-to-back runs (returning the result, recording it, dispatching the next run)."""
    by_device: dict[str, list[tuple[float, float]]] = {}
    for device, start, duration in runs:
        by_device.setdefault(device, []).append((start, duration))
    gaps: list[float] = []
    for spans in by_device.values():
        spans.sort()
        for (start, duration), (next_start, _) in itertools.pairwise(spans):
            gaps.append(next_start - (start + duration))
    return gaps


def row_spans(rows: Iterable[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """``(slot, start, duration)`` of farm result rows, for :func:`idle_gaps`."""
    return [(r["slot"], r["started_at"].timestamp(), r["duration_s"]) for r in rows]


def refresh(path: Path, size: int) -> None:
    """Give an artifact new content (a fresh random first MiB) so no cache can skip a transfer."""
    if not path.exists() or path.stat().st_size != size:
        with path.open("wb") as fh:
            for _ in range(size >> 20):
                fh.write(os.urandom(1 << 20))
    with path.open("r+b") as fh:
        fh.write(os.urandom(1 << 20))


_PHONE = """
import sys
from pathlib import Path
from farm.sim.phone import VirtualPhone
phone = VirtualPhone("bench-phone", port=int(sys.argv[1]), root=Path(sys.argv[2])).start()
print("ready", flush=True)
sys.stdin.read()
phone.close()
"""


@dataclass(frozen=True)
class PhoneProcess:
    server: Any  # farm.sim.adb_server.AdbServer, on a private port
    serial: str
    pid: int  # the phone's own process: its CPU time is the phone's cost


@contextlib.contextmanager
def virtual_phone_process(root: Path) -> Iterator[PhoneProcess]:
    """One virtual phone in its own process (so the bench's CPU and the phone's stay apart) behind a private adb
    server, connected and in state ``device``; both are stopped on exit."""
    from farm.sim import free_port
    from farm.sim.adb_server import AdbServer

    server = AdbServer(free_port(), home=str(root / "home")).start()
    port = free_port()
    (root / "phone").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", _PHONE, str(port), str(root / "phone")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        serial = f"127.0.0.1:{port}"
        server.connect(serial)
        server.wait_for([serial])
        yield PhoneProcess(server, serial, proc.pid)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(30)
        server.kill()


@contextlib.contextmanager
def virtual_phone_farm(
    home: Path, phones: Sequence[VirtualPhone], root: str, *, entry: Mapping[str, Any] | None = None
) -> Iterator[FarmClient]:
    """A controller on a local Ray over started ``phones`` behind a private adb server (its state under ``home``),
    writing results under ``root``; ``entry`` is merged into each phone's inventory entry. Phones, server, controller
    and Ray are all stopped on exit."""
    from farm.client import start_ray, stop_ray
    from farm.sim import free_port
    from farm.sim.adb_server import AdbServer

    server = AdbServer(free_port(), home=str(home)).start()
    try:
        for phone in phones:
            server.connect(phone.serial)
        server.wait_for([p.serial for p in phones], "device")
        inv = Inventory.model_validate(
            {"devices": [{**p.inventory_entry(server_port=server.port), **(entry or {})} for p in phones]}
        )
        start_ray()
        client = FarmClient.start(inv, root, options=ControllerOptions())
        try:
            yield client
        finally:
            client.shutdown(timeout=60)
            stop_ray()
    finally:
        for phone in phones:
            with contextlib.suppress(Exception):
                server.disconnect(phone.serial)
            phone.close()
        server.kill()
