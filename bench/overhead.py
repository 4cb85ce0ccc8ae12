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

Both run on one Ray instance (the farm first by default, ``--order`` to swap). Ideal = runs × seconds / devices
(the nominal run time; the runs' own measured durations are printed as well, as a second ideal that excludes
process start-up). Prints per-system figures, then last the ratios and farm/Tune.

    PYTHONPATH=. .venv/bin/python bench/overhead.py [--runs 1000] [--devices 20] [--seconds 1]
        [--systems farm,tune] [--order farm,tune]
"""

from __future__ import annotations

import argparse
import os
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
    machine,
    percentile,
    print_machine,
    run_job,
    sleep_argv,
    sleep_job,
    start_farm,
    stop_farm,
)
from farm.controller import NAMESPACE
from farm.results import ResultsStore

RESOURCE_PREFIX = "bench-dev-"


@dataclass
class Outcome:
    system: str
    runs: int
    ok: int
    makespan_s: float
    durations_s: list[float]  # each run's own duration as the system measured it
    setup_s: float  # what happened before the clock started (controller + device actors / nothing for Tune)

    def ratio(self, ideal_s: float) -> float:
        return self.makespan_s / ideal_s


def run_farm(devices: int, per_device: int, seconds: float, workdir: Path) -> Outcome:
    t0 = time.perf_counter()
    handle = start_farm(devices, workdir / "farm-results")
    setup = time.perf_counter() - t0
    try:
        job = sleep_job("overhead", per_device, seconds)
        status, wall = run_job(handle, job, workdir, timeout_s=600 + 10 * per_device * seconds)
    finally:
        stop_farm(handle)
    table = ResultsStore(str(workdir / "farm-results")).table("overhead")
    rows = table.to_pylist() if table is not None else []
    return Outcome(
        system="farm",
        runs=len(rows),
        ok=status["statuses"].get("ok", 0),
        makespan_s=wall,
        durations_s=[r["duration_s"] for r in rows],
        setup_s=setup,
    )


def _tune_trainable(config: dict[str, Any]) -> None:
    """One Tune trial: run the benchmark command, report its metric and duration (what the farm records)."""
    from ray import tune

    t0 = time.monotonic()
    proc = subprocess.run(config["argv"], capture_output=True, text=True, check=False)
    duration = time.monotonic() - t0
    match = re.search(config["pattern"], proc.stdout)
    tune.report(
        {
            "slept_s": float(match.group(1)) if match else float("nan"),
            "exit_code": proc.returncode,
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
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    results = [r for r in grid if r.metrics]
    ok = sum(1 for r in results if r.error is None and r.metrics.get("exit_code") == 0)
    return Outcome(
        system="tune",
        runs=len(grid),
        ok=ok,
        makespan_s=wall,
        durations_s=[float(r.metrics["run_duration_s"]) for r in results if "run_duration_s" in r.metrics],
        setup_s=0.0,
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
    ray.init(
        num_cpus=os.cpu_count(),
        resources={RESOURCE_PREFIX + d: 1 for d in host_ids(args.devices)},
        include_dashboard=False,
        namespace=NAMESPACE,
        log_to_driver=False,
        configure_logging=False,
    )
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
        f"\nideal = runs x {args.seconds:g}s / devices = {args.runs} x {args.seconds:g} / {args.devices} "
        f"= {ideal:.2f}s (nominal run time)"
    )
    for o in outcomes:
        own = sum(o.durations_s) / args.devices
        print(
            f"{o.system:>5}: {o.ok}/{args.runs} ok, makespan {o.makespan_s:.2f}s, setup before the clock "
            f"{o.setup_s:.2f}s; run duration p50 {percentile(o.durations_s, 50):.4f}s "
            f"p99 {percentile(o.durations_s, 99):.4f}s; makespan / (sum of own durations / devices = {own:.2f}s) "
            f"= {o.makespan_s / own if own else float('nan'):.4f}"
        )
    print()
    for o in outcomes:
        print(f"{o.system} makespan/ideal = {o.ratio(ideal):.4f}  (target <= 1.02)")
    by = {o.system: o for o in outcomes}
    if "farm" in by and "tune" in by:
        print(f"farm/tune makespan = {by['farm'].makespan_s / by['tune'].makespan_s:.4f}  (< 1: farm ahead)")
    return 0 if all(o.ok == args.runs for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
