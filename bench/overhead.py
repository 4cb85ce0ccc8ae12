"""Orchestration overhead: makespan / ideal for N one-second runs on D exclusive devices, farm against Ray Tune.

The grid: ``--runs`` runs (default 1,000) of ``sh -c 'sleep 1; echo slept_s=1'`` spread evenly over ``--devices``
(default 20) ``host`` devices of this machine, each device running one run at a time, so ``runs / devices`` runs
back to back per device.

- **farm**: the real controller + one device actor per device (embedded Ray), a regex-adapter job with placement
  ``each``; makespan = submit call → the controller reports the job done (every row written to Parquet).
- **Ray Tune**: the same grid as ``tune.grid_search`` over (device, i). One custom Ray resource per device
  (``ray.init(resources={"bench-dev-00": 1, ...})``) and ``tune.with_resources`` mapping each trial to the
  resource of its device make each device exclusive and let Tune run exactly D trials at a time. The trainable
  runs the same command with ``subprocess.run`` and reports the parsed metric. Tune gets its fast settings:
  ``reuse_actors=True``, no checkpoints, ``verbose=0``. Makespan = ``Tuner.fit()`` call → return.

Both run on one Ray instance (the farm first by default, ``--order`` to swap). Two ideals are printed:

- ``ideal_own`` = sum of the runs' own durations (command start → exit, as each system timed it) / devices: the
  headline, since it charges a system only for what happens *between* commands (orchestration);
- ``ideal_nominal`` = runs × seconds / devices, which also charges the ~1–3 % the OS needs to start
  ``sh`` + ``sleep`` and that no orchestrator can remove.

Also printed: each device's idle gap between two back-to-back runs (command exit → next command start), for both
systems. Figures last: the ratios and farm/Tune.

    PYTHONPATH=. .venv/bin/python bench/overhead.py [--runs 1000] [--devices 20] [--seconds 1]
        [--systems farm,tune] [--order farm,tune]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    METRIC_PATTERN,
    host_ids,
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
from farm.client import RunStatus

RESOURCE_PREFIX = "bench-dev-"


@dataclass
class Outcome:
    system: str
    runs: int
    ok: int
    makespan_s: float
    spans: list[tuple[str, float, float]]  # (device, start epoch s, own duration s) of each run
    setup_s: float  # what happened before the clock started (controller + device actors / nothing for Tune)
    clock: tuple[float, float]  # epoch s when the makespan clock started and stopped

    def head_tail_s(self) -> tuple[float, float]:
        """Clock start → first command start, and last command exit → clock stop."""
        first = min(start for _, start, _ in self.spans)
        last = max(start + duration for _, start, duration in self.spans)
        return first - self.clock[0], self.clock[1] - last

    @property
    def durations_s(self) -> list[float]:
        return [span[2] for span in self.spans]

    def ideal_own_s(self, devices: int) -> float:
        return sum(self.durations_s) / devices

    def busiest_device_s(self) -> float:
        """The largest sum of own run durations on one device: with runs bound to devices (placement ``each``)
        no orchestrator can finish sooner, so makespan / ideal_own above 1 is partly this imbalance."""
        per_device: dict[str, float] = {}
        for device, _, duration in self.spans:
            per_device[device] = per_device.get(device, 0.0) + duration
        return max(per_device.values())


def run_farm(devices: int, per_device: int, seconds: float, workdir: Path) -> Outcome:
    t0 = time.perf_counter()
    client = start_farm(devices, workdir / "farm-results")
    setup = time.perf_counter() - t0
    try:
        job = sleep_job("overhead", per_device, seconds)
        began = time.time()
        status, wall = run_job(client, job, workdir, timeout_s=600 + 10 * per_device * seconds)
        clock = (began, time.time())
    finally:
        stop_farm(client)
    rows = read_rows(workdir / "farm-results", "overhead")
    return Outcome(
        system="farm",
        runs=len(rows),
        ok=status.count(RunStatus.OK),
        makespan_s=wall,
        spans=row_spans(rows),
        setup_s=setup,
        clock=clock,
    )


def _tune_trainable(config: dict[str, Any]) -> None:
    """One Tune trial: run the benchmark command, report its metric and duration (what the farm records)."""
    from ray import tune

    started_at = time.time()
    t0 = time.monotonic()
    proc = subprocess.run(config["argv"], capture_output=True, text=True, check=False)
    duration = time.monotonic() - t0
    match = re.search(config["pattern"], proc.stdout)
    tune.report(
        {
            "slept_s": float(match.group(1)) if match else float("nan"),
            "exit_code": proc.returncode,
            "run_started_at": started_at,
            "run_duration_s": duration,
        }
    )


def run_tune(devices: int, per_device: int, seconds: float, workdir: Path) -> Outcome:
    from ray import tune
    from ray.tune import PlacementGroupFactory

    def resources(config: dict[str, Any]) -> PlacementGroupFactory:
        # The trial's device, exclusively: its resource has capacity 1. No CPU, like the farm's device actors.
        return PlacementGroupFactory([{"CPU": 0, RESOURCE_PREFIX + config["device"]: 1}])

    tuner = tune.Tuner(
        tune.with_resources(_tune_trainable, resources),
        param_space={
            "device": tune.grid_search(host_ids(devices)),
            "i": tune.grid_search(list(range(per_device))),
            "argv": sleep_argv(seconds),
            "pattern": METRIC_PATTERN,
        },
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            name="overhead",
            storage_path=str(workdir / "tune-results"),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
        ),
    )
    began = time.time()
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    clock = (began, time.time())
    # (device, metrics) of every trial that reported; a failed trial reports nothing.
    reported = [
        (str((r.config or {}).get("device")), r.metrics) for r in (grid[i] for i in range(len(grid))) if r.metrics
    ]
    return Outcome(
        system="tune",
        runs=len(grid),
        ok=sum(m.get("exit_code") == 0 for _, m in reported),
        makespan_s=wall,
        spans=[(d, float(m["run_started_at"]), float(m["run_duration_s"])) for d, m in reported],
        setup_s=0.0,
        clock=clock,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000, help="total runs (a multiple of --devices)")
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=1.0, help="how long each run sleeps")
    ap.add_argument("--systems", default="farm,tune", help="comma list of farm, tune")
    ap.add_argument("--order", default="farm,tune", help="which system runs first (warm caches favour the second)")
    ap.add_argument("--keep", action="store_true", help="keep the results folders")
    args = ap.parse_args()
    if args.runs % args.devices:
        ap.error(f"--runs {args.runs} is not a multiple of --devices {args.devices}")
    systems = [s for s in args.order.split(",") if s in args.systems.split(",")]
    per_device = args.runs // args.devices
    ideal = args.runs * args.seconds / args.devices

    info = machine()
    # One Ray instance for both systems; the per-device resources are only used by Tune.
    init_local_ray(resources={RESOURCE_PREFIX + d: 1 for d in host_ids(args.devices)})
    workdir = Path(tempfile.mkdtemp(prefix="farm-bench-overhead-"))
    outcomes: list[Outcome] = []
    try:
        for system in systems:
            runner = run_farm if system == "farm" else run_tune
            print(f"running {system}: {args.runs} runs x {args.seconds:g}s on {args.devices} devices …", flush=True)
            outcomes.append(runner(args.devices, per_device, args.seconds, workdir / system))
    finally:
        ray.shutdown()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print("\nmachine:")
    print_machine(info)
    print(
        f"\nideal_nominal = runs x seconds / devices = {args.runs} x {args.seconds:g} / {args.devices} = {ideal:.2f}s"
    )
    for o in outcomes:
        gaps = idle_gaps(o.spans)
        head, tail = o.head_tail_s()
        print(
            f"{o.system:>5}: {o.ok}/{args.runs} ok; makespan {o.makespan_s:.2f}s (setup before the clock "
            f"{o.setup_s:.2f}s); ideal_own {o.ideal_own_s(args.devices):.2f}s; busiest device's own run time "
            f"{o.busiest_device_s():.2f}s; run duration p50 "
            f"{percentile(o.durations_s, 50):.4f}s p99 {percentile(o.durations_s, 99):.4f}s; idle gap between runs "
            f"p50 {1000 * percentile(gaps, 50):.1f} ms, mean {1000 * sum(gaps) / max(1, len(gaps)):.1f} ms, "
            f"p99 {1000 * percentile(gaps, 99):.1f} ms; clock start → first command {head:.2f}s, last command "
            f"exit → clock stop {tail:.2f}s"
        )
    print()
    for o in outcomes:
        print(
            f"{o.system:>5} makespan/ideal_own = {o.makespan_s / o.ideal_own_s(args.devices):.4f} (target <= 1.02), "
            f"makespan/ideal_nominal = {o.makespan_s / ideal:.4f}"
        )
    by = {o.system: o for o in outcomes}
    if "farm" in by and "tune" in by:
        farm, tune = by["farm"], by["tune"]
        print(
            f"farm/tune makespan = {farm.makespan_s / tune.makespan_s:.4f} (< 1: farm ahead); with the farm's "
            f"setup (controller + device actors) counted too: {(farm.setup_s + farm.makespan_s) / tune.makespan_s:.4f}"
        )
    return 0 if all(o.ok == args.runs for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
