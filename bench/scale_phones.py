"""Scale: 100 virtual phones behind one adb server — time until all 100 device actors are ready, their memory.

Everything is the real farm: a real adb server (Debian ``adb``) on a private port, N virtual phones served from
this process (one asyncio thread each, :class:`farm.sim.phone.VirtualPhone`, with a fast ``SimConfig``),
embedded Ray started by :func:`farm.runtime.init_ray`, the controller started by
:func:`farm.runtime.start_controller`. Three measurements in one Ray session:

1. **Baseline** — N bare actors (``__init__`` stores its argument; ``info``/``health``/``pid`` return at once)
   created with the device actors' own options (:func:`farm.placement.device_actor_options` of the same phone
   specs), the same sequence as ``Controller.start``: create all, await every ``info()``, then one ``health()``
   per actor in turn. Then killed, and their processes waited for, before step 2.
2. **Farm** — ``start_controller`` returns when ``Controller.start`` has created one device actor per phone,
   awaited every ``info()`` and done its first health check (each phone asked through the adb server). The time
   is taken around that call, so it includes creating the controller actor itself.
3. **Job** — one llama run per phone (the scripted ``mymain`` stand-in and a small model file, both pushed by
   the farm) to show all N phones answer; rows are read back from the results store. Output is synthetic.

Memory of every actor process (by its pid): ``VmRSS`` from ``/proc/<pid>/status``, and ``Pss`` and USS
(``Private_Clean + Private_Dirty``) from ``/proc/<pid>/smaps_rollup`` — Ray workers share the pages of the
interpreter and of Ray's own library, which RSS counts in full in every process. CPU seconds (user + system)
of the actor processes from ``/proc/<pid>/stat`` are shown beside wall times: on a shared machine wall time
includes waiting for a CPU, CPU time does not.

Figures are printed last, with the machine they were measured on.

    .venv/bin/python bench/scale_phones.py [--phones 100] [--skip-job]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, print_machine, read_rows
from farm import runtime
from farm.client import ControllerOptions, FarmClient, JobStatus
from farm.placement import device_actor_options
from farm.sim import SimConfig, VirtualPhone, free_port
from farm.sim.adb_server import AdbServer
from farm.specs.inventory import Inventory
from farm.specs.job import load_job

# Scripted benchmarks run 0.1-0.6 s of wall time (as in the phone tests): the job shows the phones work, it is
# not a speed measurement.
FAST_SIM = SimConfig(time_scale=0.02, min_wall_s=0.1, max_wall_s=0.6)
JOB = "scale-phones-llama"
MODEL = "tinyllama-1.1b.Q4_0.gguf"  # the scripted llama reads the parameter count from the name
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcMemory:
    rss_kib: int
    pss_kib: int
    uss_kib: int


def proc_memory(pid: int) -> ProcMemory:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    rollup: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            rollup[key] = int(rest.split()[0])
    return ProcMemory(rss, rollup.get("Pss", 0), rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def started_at(pid: int) -> float:
    """When ``pid`` started, on the ``CLOCK_BOOTTIME`` scale (``time.clock_gettime(time.CLOCK_BOOTTIME)``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / CLK_TCK


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def idle_cpu_share(pids: Sequence[int], seconds: float) -> float:
    """CPU the processes use together while nothing is asked of them, as a share of one core."""
    before, t0 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
    time.sleep(seconds)
    return (sum(cpu_seconds(p) for p in pids) - before) / (time.perf_counter() - t0)


def threads_of_this_process() -> int:
    return len(os.listdir("/proc/self/task"))


class NoopActor:
    """The baseline: a Ray actor that does nothing but answer the calls ``Controller.start`` makes."""

    def __init__(self, spec_data: dict[str, Any]) -> None:
        self.spec_data = spec_data

    def info(self) -> dict[str, Any]:
        return {"device_id": self.spec_data["id"], "pid": os.getpid()}

    def health(self) -> dict[str, str]:
        return {}

    def pid(self) -> int:
        return os.getpid()


@dataclass
class Phones:
    server: AdbServer
    phones: list[VirtualPhone]
    start_s: float  # VirtualPhone() + start() for all
    connect_s: float  # adb connect for all + wait until the server lists every phone as `device`
    threads_added: int
    rss_added_kib: int
    idle_cpu_share: float  # this process's CPU over a 3 s idle window, as a share of one core


def start_phones(n: int, home: Path) -> Phones:
    server = AdbServer(free_port(), home=str(home)).start()
    threads0, rss0 = threads_of_this_process(), proc_memory(os.getpid()).rss_kib
    t0 = time.perf_counter()
    phones = [VirtualPhone(f"vphone-{k:03d}", seed=k, config=FAST_SIM).start() for k in range(n)]
    start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for phone in phones:
        server.connect(phone.serial)
    server.wait_for([p.serial for p in phones], "device", timeout=60)
    connect_s = time.perf_counter() - t0
    # N idle event loops: what they cost while nothing talks to them (each should sleep in epoll).
    cpu0, w0 = cpu_seconds(os.getpid()), time.perf_counter()
    time.sleep(3.0)
    idle = (cpu_seconds(os.getpid()) - cpu0) / (time.perf_counter() - w0)
    return Phones(
        server,
        phones,
        start_s,
        connect_s,
        threads_of_this_process() - threads0,
        proc_memory(os.getpid()).rss_kib - rss0,
        idle,
    )


def stop_phones(ph: Phones) -> None:
    for phone in ph.phones:
        phone.close()
    ph.server.kill()


@dataclass
class ActorFleet:
    label: str
    ready_s: float  # create → every info() answered → one health() each
    info_s: float  # create → every info() answered
    pids: list[int]
    memory: list[ProcMemory]
    cpu_s: list[float]  # CPU seconds of each actor process when all were ready
    spawned_s: list[float]  # when each actor's process started, seconds after the create call (< 0: prestarted)
    idle_share: float = float("nan")  # CPU of all actor processes (+ controller) once ready, share of one core
    controller_pid: int | None = None
    controller_memory: ProcMemory | None = None
    health_again_s: float = float("nan")  # a second Controller.check_health, timed from outside


def baseline_fleet(inventory: Inventory) -> ActorFleet:
    import ray

    remote_cls: Any = ray.remote(NoopActor)
    b0, t0 = boottime(), time.perf_counter()
    handles = [
        remote_cls.options(**device_actor_options(dev)).remote(dev.model_dump(mode="json")) for dev in inventory.devices
    ]
    infos = ray.get([h.info.remote() for h in handles])
    info_s = time.perf_counter() - t0
    for h in handles:  # Controller.check_health asks the devices one after the other
        ray.get(h.health.remote())
    ready_s = time.perf_counter() - t0
    pids = [int(i["pid"]) for i in infos]
    fleet = ActorFleet(
        "bare actors",
        ready_s,
        info_s,
        pids,
        [proc_memory(p) for p in pids],
        [cpu_seconds(p) for p in pids],
        [started_at(p) - b0 for p in pids],
    )
    fleet.idle_share = idle_cpu_share(pids, 5.0)
    for h in handles:
        ray.kill(h)
    wait_gone(pids, 60.0)
    return fleet


def farm_fleet(inventory: Inventory, results: Path) -> tuple[FarmClient, ActorFleet]:
    import ray

    options = ControllerOptions(health_interval_s=300.0, metrics_port=None)
    b0, t0 = boottime(), time.perf_counter()
    client = FarmClient.start(inventory, str(results), options=options)
    ready_s = time.perf_counter() - t0
    devices = client.device_handles()
    pids = ray.get([h.pid.remote() for h in devices.values()])
    ctl_pid = int(ray.get(client.handle.__ray_call__.remote(lambda _c: os.getpid())))
    fleet = ActorFleet(
        "device actors",
        ready_s,
        float("nan"),
        pids,
        [proc_memory(p) for p in pids],
        [cpu_seconds(p) for p in pids],
        [started_at(p) - b0 for p in pids],
        controller_pid=ctl_pid,
        controller_memory=proc_memory(ctl_pid),
    )
    fleet.idle_share = idle_cpu_share([*pids, ctl_pid], 5.0)
    t0 = time.perf_counter()
    client.check_health()
    fleet.health_again_s = time.perf_counter() - t0
    return client, fleet


def wait_gone(pids: Sequence[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)


def write_job(work: Path) -> Path:
    arts = work / "artifacts"
    arts.mkdir(parents=True)
    (arts / "mymain").write_bytes(b"\x7fELF scripted on the virtual phone\n")
    (arts / MODEL).write_bytes(os.urandom(64 << 10))
    job = {
        "name": JOB,
        "description": "one scripted llama run per virtual phone (synthetic)",
        "workload": "llama_cpp",
        "devices": {"kind": "android", "placement": "each"},
        "artifacts": [
            {"src": "artifacts/mymain", "dst": "/data/local/tmp/scale/", "mode": "0755"},
            {"src": f"artifacts/{MODEL}", "dst": "/data/local/tmp/scale/"},
        ],
        "workdir": "/data/local/tmp/scale",
        "command": ["./mymain", "-m", MODEL, "-p", "Hello", "-n", "16", "-t", "4"],
        "timeout": "5m",
    }
    path = work / f"{JOB}.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


@dataclass
class JobRun:
    status: JobStatus
    wall_s: float
    rows: list[dict[str, Any]]
    phones_cpu_s: float  # CPU of this process (the N virtual phones) while the job ran


def run_job(client: FarmClient, path: Path, results: Path) -> JobRun:
    cpu0, t0 = cpu_seconds(os.getpid()), time.perf_counter()
    job_id = client.submit(load_job(path), str(path), ship=False)
    status = client.wait(job_id, 600)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(os.getpid()) - cpu0
    return JobRun(status, wall, read_rows(results, JOB), cpu)


def mib(kib: float) -> str:
    return f"{kib / 1024:6.1f}"


def fleet_lines(f: ActorFleet) -> list[str]:
    def stats(values: list[float]) -> str:
        return f"median {mib(statistics.median(values))}  max {mib(max(values))}  sum {mib(sum(values)):>7}"

    n = len(f.pids)
    lines = [
        f"{f.label}: {n} ready in {f.ready_s:6.2f} s wall"
        + (f" (info() of all after {f.info_s:.2f} s)" if f.info_s == f.info_s else "")
        + f"; actor CPU {sum(f.cpu_s):6.1f} s in all, median {statistics.median(f.cpu_s):.2f} s per actor",
        f"  RSS MiB  {stats([float(m.rss_kib) for m in f.memory])}",
        f"  PSS MiB  {stats([float(m.pss_kib) for m in f.memory])}",
        f"  USS MiB  {stats([float(m.uss_kib) for m in f.memory])}",
        f"  actor processes started {min(f.spawned_s):.2f} .. {max(f.spawned_s):.2f} s after the first create call; "
        f"idle once ready: {100 * f.idle_share:.1f} % of a core for all of them"
        + (" and the controller" if f.controller_pid else ""),
    ]
    if f.health_again_s == f.health_again_s:
        lines.append(f"  Controller.check_health of all {n} again (one after the other): {f.health_again_s:.2f} s")
    if f.controller_memory is not None:
        m = f.controller_memory
        lines.append(f"  controller process: RSS {mib(m.rss_kib)} MiB, PSS {mib(m.pss_kib)}, USS {mib(m.uss_kib)}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phones", type=int, default=100, help="virtual phones, one device actor each (default 100)")
    ap.add_argument("--skip-job", action="store_true", help="do not run the one-llama-run-per-phone job")
    ap.add_argument("--skip-baseline", action="store_true", help="do not start the bare-actor baseline")
    args = ap.parse_args()
    import ray

    work = Path(tempfile.mkdtemp(prefix="farm-scale-phones-"))
    results = work / "results"
    ph = start_phones(args.phones, work / "adb-home")
    client: FarmClient | None = None
    base: ActorFleet | None = None
    job: JobRun | None = None
    try:
        inventory = Inventory.model_validate(
            {"devices": [p.inventory_entry(ph.server.host, ph.server.port) for p in ph.phones]}
        )
        t0 = time.perf_counter()
        runtime.init_ray()
        ray_init_s = time.perf_counter() - t0
        info = machine()
        if not args.skip_baseline:
            base = baseline_fleet(inventory)
        client, farm = farm_fleet(inventory, results)
        if not args.skip_job:
            job = run_job(client, write_job(work), results)
    finally:
        if client is not None:
            try:
                client.shutdown(timeout=60)
            finally:
                client.kill()
        ray.shutdown()
        stop_phones(ph)

    print()
    print(f"== scale: {args.phones} virtual phones behind one adb server, one device actor each (real farm) ==")
    print_machine(info)
    print(
        f"phones (this process, one asyncio thread each): started in {ph.start_s:.2f} s, adb connect + listed as "
        f"`device` in {ph.connect_s:.2f} s; +{ph.threads_added} threads, +{mib(ph.rss_added_kib).strip()} MiB RSS; "
        f"idle CPU {100 * ph.idle_cpu_share:.1f} % of a core; adb server :{ph.server.port}"
    )
    print(f"ray.init (embedded, farm.runtime.init_ray): {ray_init_s:.2f} s")
    if base is not None:
        print("\n".join(fleet_lines(base)))
    print("\n".join(fleet_lines(farm)))
    if base is not None:
        ratio_t = farm.ready_s / base.ready_s
        ratio_cpu = sum(farm.cpu_s) / sum(base.cpu_s)
        ratio_rss = statistics.median(m.rss_kib for m in farm.memory) / statistics.median(
            m.rss_kib for m in base.memory
        )
        ratio_uss = statistics.median(m.uss_kib for m in farm.memory) / statistics.median(
            m.uss_kib for m in base.memory
        )
        print(
            f"farm / bare: time to ready {ratio_t:.2f}x, actor CPU {ratio_cpu:.2f}x, median RSS {ratio_rss:.2f}x, "
            f"median USS {ratio_uss:.2f}x"
        )
    if job is not None:
        rows = job.rows
        by_status = Counter(r["status"] for r in rows)
        devices = {r["device_id"] for r in rows if r["status"] == "ok"}
        tps = [r["decode_tokens_per_s"] for r in rows if r.get("decode_tokens_per_s")]
        synthetic = all(r["synthetic"] for r in rows)
        print(
            f"job {JOB} (synthetic): {job.status.state} in {job.wall_s:.1f} s; rows {dict(by_status)}; "
            f"{len(devices)} of {args.phones} phones with an ok row; all rows synthetic: {synthetic}; "
            f"decode tokens/s (scripted) median {statistics.median(tps) if tps else float('nan'):.1f}; "
            f"bytes pushed {int(sum(r['bytes_pushed'] or 0 for r in rows)):,}"
        )
        starts = sorted(r["started_at"].timestamp() for r in rows)
        durations = [float(r["duration_s"]) for r in rows]
        print(
            f"  runs started within {starts[-1] - starts[0]:.1f} s of each other; run duration_s median "
            f"{statistics.median(durations):.2f}, max {max(durations):.2f}; the {args.phones} phones' process used "
            f"{job.phones_cpu_s:.1f} s CPU meanwhile"
        )
    target_t = "met" if farm.ready_s <= 60 else "MISSED"
    worst_rss_mb = max(m.rss_kib for m in farm.memory) * 1024 / 1e6
    target_m = "met" if worst_rss_mb <= 100 else "MISSED"
    print(
        f"targets: ready <= 60 s: {target_t} ({farm.ready_s:.1f} s); RSS per device actor <= 100 MB: {target_m} "
        f"(largest {worst_rss_mb:.1f} MB)"
    )
    print(f"threads alive in this process at the end: {threading.active_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
