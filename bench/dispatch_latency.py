"""Dispatch latency: a run handed out by the controller → its process started on the device, at 20 and 1 devices.

The farm figure is ``RunResult.dispatch_latency_s``: the controller stamps ``RunRequest.dispatched_at`` when it
hands a run to the device actor; the device actor computes the latency in the transport's ``on_start``, i.e.
right after ``Popen`` returned. It covers the Ray actor call, the device actor's pre-run work (fingerprint,
temperature reading, sampler) and the process spawn.

Baseline, measured in the same run with the same concurrency: an async dispatcher actor (like the controller)
calls D bare threaded actors with the device actors' own Ray options; each call does only ``subprocess.Popen``
of the same command (same flags as the local transport) and reports sent → ``Popen`` returned, split into the Ray
call (sent → method running) and the spawn. So the farm figure sits next to what Ray and the OS cost anyway.

Also printed: the per-device idle gap between two back-to-back runs (command ended → next run's device-side
start), which is what the makespan overhead in ``bench/overhead.py`` is made of.

    PYTHONPATH=. .venv/bin/python bench/dispatch_latency.py [--devices 20,1] [--runs-per-device 25]
        [--seconds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    host_inventory,
    idle_gaps,
    init_local_ray,
    machine,
    percentile,
    print_machine,
    read_rows,
    row_spans,
    run_job,
    sleep_argv,
    sleep_job,
    start_farm,
    stop_farm,
)
from farm.placement import device_actor_options


class BarePopenActor:
    """The baseline device side: receive a call, spawn the command as the local transport does, wait for it."""

    def spawn(self, argv: list[str], sent_at: float) -> tuple[float, float]:
        received = time.time()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        started = time.time()
        proc.communicate()
        return received - sent_at, started - sent_at


class BaselineDispatcher:
    """The baseline controller side: one loop per device, each sending the next call as soon as one returns."""

    async def run(self, actors: list[Any], argv: list[str], per_device: int) -> list[tuple[float, float]]:
        async def device_loop(actor: Any) -> list[tuple[float, float]]:
            out = []
            for _ in range(per_device):
                out.append(await actor.spawn.remote(argv, time.time()))
            return out

        per_actor = await asyncio.gather(*(device_loop(a) for a in actors))
        return [x for xs in per_actor for x in xs]


def measure_farm(devices: int, per_device: int, seconds: float, workdir: Path) -> dict[str, list[float]]:
    client = start_farm(devices, workdir / "results")
    try:
        run_job(client, sleep_job("latency", per_device, seconds), workdir, timeout_s=600 + 10 * per_device * seconds)
        stats = client.stats()
    finally:
        stop_farm(client)
    rows = read_rows(workdir / "results", "latency")
    return {"latency": list(stats["dispatch_latencies_s"]), "gap": idle_gaps(row_spans(rows))}


def measure_baseline(devices: int, per_device: int, seconds: float) -> dict[str, list[float]]:
    specs = host_inventory(devices).devices
    remote_cls: Any = ray.remote(BarePopenActor)
    actors: list[Any] = [remote_cls.options(**device_actor_options(s)).remote() for s in specs]
    dispatcher: Any = ray.remote(BaselineDispatcher).options(num_cpus=0, max_concurrency=1000).remote()
    try:
        # Warm the actors up (process start, first call) so only steady-state calls are measured, as for the
        # farm, whose device actors are started before its clock runs.
        ray.get([a.spawn.remote(["true"], time.time()) for a in actors])
        pairs = ray.get(dispatcher.run.remote(actors, sleep_argv(seconds), per_device))
    finally:
        for actor in [*actors, dispatcher]:
            ray.kill(actor)
    return {"ray_call": [p[0] for p in pairs], "latency": [p[1] for p in pairs]}


def _fmt(values: list[float]) -> str:
    return (
        f"p50 {1000 * percentile(values, 50):7.2f} ms  p99 {1000 * percentile(values, 99):7.2f} ms  "
        f"max {1000 * max(values):7.2f} ms  (n={len(values)})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="20,1", help="comma list of device counts to measure at")
    ap.add_argument("--runs-per-device", type=int, default=25)
    ap.add_argument("--seconds", type=float, default=1.0, help="how long each run sleeps")
    args = ap.parse_args()
    counts = [int(c) for c in args.devices.split(",")]

    info = machine()
    init_local_ray()
    results: dict[int, dict[str, dict[str, list[float]]]] = {}
    try:
        for devices in counts:
            print(f"measuring at {devices} device(s): farm, then the bare baseline …", flush=True)
            with tempfile.TemporaryDirectory(prefix="farm-bench-latency-") as tmp:
                farm = measure_farm(devices, args.runs_per_device, args.seconds, Path(tmp))
            base = measure_baseline(devices, args.runs_per_device, args.seconds)
            results[devices] = {"farm": farm, "baseline": base}
    finally:
        ray.shutdown()

    print("\nmachine:")
    print_machine(info)
    print(f"\nworkload: {' '.join(sleep_argv(args.seconds))}, {args.runs_per_device} runs per device")
    for devices, res in results.items():
        farm, base = res["farm"], res["baseline"]
        print(f"\n{devices} device(s):")
        print(f"  baseline Ray call (sent → actor method running)  {_fmt(base['ray_call'])}")
        print(f"  baseline Ray call + Popen                        {_fmt(base['latency'])}")
        print(f"  farm idle gap between back-to-back runs          {_fmt(farm['gap'])}")
        print(f"  farm dispatch latency                            {_fmt(farm['latency'])}")
    print()
    for devices, res in results.items():
        lat, base_lat = res["farm"]["latency"], res["baseline"]["latency"]
        print(
            f"{devices:>2} device(s): farm dispatch latency p50 {1000 * percentile(lat, 50):.2f} ms "
            f"(target <= 20), p99 {1000 * percentile(lat, 99):.2f} ms (target <= 200); baseline p50 "
            f"{1000 * percentile(base_lat, 50):.2f} ms, p99 {1000 * percentile(base_lat, 99):.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
