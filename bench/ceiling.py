"""Per-run cost ceiling: completions/s of no-op runs on D devices, farm against bare Ray actors, and CPU per run.

What a run costs the farm when the benchmark itself costs nothing. Every run executes the same no-op command,
``echo noop_count=1`` (one process spawn, one metric line), on ``--devices`` (default 20 and 50) ``host`` devices of
this machine, ``--runs-per-device`` times each (placement ``each``: every device runs its share back to back). Three
systems run one after the other in one private Ray instance (``--order`` rotates which goes first):

- **farm**: the real controller and one device actor per device (started before the clock), one job; wall = the
  ``submit`` call → the controller reports the job done (every row and log written). The controller sends short
  runs to a device several per call (``farm.batching``); the runs per call are printed;
- **farm, one run per call**: the same with batching off (``ControllerOptions(batch_window_s=0)``), which is what
  runs lasting longer than the batch window get;
- **bare call + spawn**: the baseline the targets are ratios against. D bare actors created with the device
  actors' own Ray options; one async dispatcher actor (the controller's shape) keeps every actor busy, each call
  spawning the command as the local transport does (``Popen`` in its own session, pipes drained) and returning its
  exit code, output and duration;
- **bare call**: the same without the spawn (the Ray floor).

For each: completions/s, and the CPU time (user + system, from ``/proc/<pid>/stat``; the spawned commands' own
time not included) per run of the controller side (the farm's controller actor / the dispatcher) and of the device
side (all device actors / all bare actors), read before and after the measured window. Figures last: farm ÷ bare
call + spawn for throughput and device CPU, and the controller's ms per run. Targets (issue "per-run cost"):
throughput ≥ 0.85×, controller ≤ 0.5 ms/run, device side ≤ 1.2× bare call + spawn.

    PYTHONPATH=. .venv/bin/python bench/ceiling.py [--devices 20,50] [--runs-per-device 100]
        [--order farm,farm1,spawn,call]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import host_inventory, init_local_ray, machine, print_machine, run_job, start_farm, stop_farm
from farm.client import RunStatus
from farm.placement import device_actor_options

NOOP_ARGV = ["echo", "noop_count=1"]
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` itself (not its reaped children), from ``/proc/<pid>/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime (fields 14 and 15 of proc(5))


def total_cpu(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


class BareActor:
    """The baseline device side: a call that spawns the command as the local transport does, or only returns."""

    def pid(self) -> int:
        return os.getpid()

    def spawn(self, argv: list[str]) -> tuple[int, bytes, bytes, float]:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        out, err = proc.communicate()
        return proc.returncode, out, err, time.monotonic() - t0

    def call(self, argv: list[str]) -> tuple[int, bytes, bytes, float]:
        return 0, b"", b"", 0.0


class BareDispatcher:
    """The baseline controller side: one loop per actor, each sending the next call as soon as one returns."""

    def pid(self) -> int:
        return os.getpid()

    async def run(self, actors: list[Any], method: str, argv: list[str], per_actor: int) -> int:
        async def loop(actor: Any) -> int:
            done = 0
            for _ in range(per_actor):
                code, *_ = await getattr(actor, method).remote(argv)
                done += code == 0
            return done

        return sum(await asyncio.gather(*(loop(a) for a in actors)))


@dataclass(frozen=True)
class Outcome:
    system: str
    devices: int
    runs: int
    ok: int
    wall_s: float
    controller_cpu_s: float
    device_cpu_s: float
    calls: int = 0  # Ray calls to the device side

    @property
    def per_call(self) -> float:
        return self.runs / self.calls if self.calls else 1.0

    @property
    def per_s(self) -> float:
        return self.runs / self.wall_s

    def controller_ms(self) -> float:
        return 1000 * self.controller_cpu_s / self.runs

    def device_ms(self) -> float:
        return 1000 * self.device_cpu_s / self.runs


def noop_job(runs_per_device: int) -> dict[str, Any]:
    return {
        "name": "ceiling",
        "workload": "regex",
        "workload_options": {"patterns": {"noop_count": r"noop_count=(\S+)"}},
        "command": NOOP_ARGV,
        "grid": {"i": list(range(runs_per_device))},
        "order": "grid",
        "retries": 0,
        "timeout": 60,
    }


def measure_farm(devices: int, per_device: int, workdir: Path, window_s: float | None) -> Outcome:
    """``window_s``: the controller's batch window (None: its default; 0: one run per call)."""
    client = start_farm(devices, workdir / "results", **({} if window_s is None else {"batch_window_s": window_s}))
    try:
        handles = list(client.device_handles().values())
        device_pids = ray.get([h.pid.remote() for h in handles])
        controller_pid = int(client.stats()["pid"])
        run_job(client, noop_job(2), workdir, timeout_s=600)  # warm-up: first spawn, first Parquet flush, imports
        calls0 = int(client.stats()["calls"])
        cpu0 = (cpu_seconds(controller_pid), total_cpu(device_pids))
        status, wall = run_job(client, noop_job(per_device), workdir, timeout_s=600 + per_device)
        cpu1 = (cpu_seconds(controller_pid), total_cpu(device_pids))
        calls = int(client.stats()["calls"]) - calls0
    finally:
        stop_farm(client)
    name = "farm, 1 run/call" if window_s == 0 else "farm"
    ok = status.count(RunStatus.OK)
    return Outcome(name, devices, status.total, ok, wall, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], calls)


def measure_bare(method: str, devices: int, per_device: int) -> Outcome:
    specs = host_inventory(devices).devices
    remote_cls: Any = ray.remote(BareActor)
    actors: list[Any] = [remote_cls.options(**device_actor_options(s)).remote() for s in specs]
    dispatcher: Any = ray.remote(BareDispatcher).options(num_cpus=0, max_concurrency=1000).remote()
    try:
        actor_pids = ray.get([a.pid.remote() for a in actors])
        dispatcher_pid = ray.get(dispatcher.pid.remote())
        ray.get(dispatcher.run.remote(actors, method, NOOP_ARGV, 2))  # warm-up, as for the farm
        cpu0 = (cpu_seconds(dispatcher_pid), total_cpu(actor_pids))
        t0 = time.perf_counter()
        ok = ray.get(dispatcher.run.remote(actors, method, NOOP_ARGV, per_device))
        wall = time.perf_counter() - t0
        cpu1 = (cpu_seconds(dispatcher_pid), total_cpu(actor_pids))
    finally:
        for actor in [*actors, dispatcher]:
            ray.kill(actor)
    name = "bare call + spawn" if method == "spawn" else "bare call"
    runs = devices * per_device
    return Outcome(name, devices, runs, ok, wall, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="20,50", help="comma list of device counts")
    ap.add_argument("--runs-per-device", type=int, default=100)
    ap.add_argument("--batch-window", type=float, default=None, help="the farm's batch window, s (default: its own)")
    ap.add_argument(
        "--order", default="farm,farm1,spawn,call", help="the systems, in the order they run at each device count"
    )
    args = ap.parse_args()
    counts = [int(c) for c in args.devices.split(",")]
    order = args.order.split(",")

    info = machine()
    init_local_ray()
    results: dict[int, dict[str, Outcome]] = {}
    try:
        for devices in counts:
            results[devices] = {}
            for system in order:
                print(f"{devices} devices: {system} …", flush=True)
                if system in ("farm", "farm1"):
                    with tempfile.TemporaryDirectory(prefix="farm-bench-ceiling-") as tmp:
                        window = args.batch_window if system == "farm" else 0.0
                        outcome = measure_farm(devices, args.runs_per_device, Path(tmp), window)
                        results[devices][system] = outcome
                else:
                    results[devices][system] = measure_bare(system, devices, args.runs_per_device)
    finally:
        ray.shutdown()

    print("\nmachine:")
    print_machine(info)
    print(f"\nworkload: {' '.join(NOOP_ARGV)}, {args.runs_per_device} runs per device\n")
    print(f"{'devices':>7}  {'system':<18} {'runs':>6} {'ok':>6} {'runs/call':>9} {'wall s':>7} {'runs/s':>7} "
          f"{'ctrl ms/run':>11} {'device ms/run':>13}")  # fmt: skip
    for devices, by_system in results.items():
        for out in by_system.values():
            print(f"{devices:>7}  {out.system:<18} {out.runs:>6} {out.ok:>6} {out.per_call:>9.1f} {out.wall_s:>7.2f} "
                  f"{out.per_s:>7.1f} {out.controller_ms():>11.3f} {out.device_ms():>13.3f}")  # fmt: skip
    print()
    for devices, by_system in results.items():
        farm, spawn = by_system.get("farm"), by_system.get("spawn")
        if farm is None or spawn is None:
            continue
        call = by_system.get("call")
        floor = f"; farm / bare call {farm.per_s / call.per_s:.3f}" if call is not None else ""
        print(
            f"{devices:>2} devices: throughput farm / bare call + spawn {farm.per_s / spawn.per_s:.3f} (target >= "
            f"0.85){floor}; controller {farm.controller_ms():.3f} ms/run (target <= 0.5); device side "
            f"{farm.device_ms() / spawn.device_ms():.3f}x bare call + spawn (target <= 1.2)"
        )
        if (one := by_system.get("farm1")) is not None:
            print(
                f"{'':>2}          one run per call: throughput {one.per_s / spawn.per_s:.3f}; controller "
                f"{one.controller_ms():.3f} ms/run; device side {one.device_ms() / spawn.device_ms():.3f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
