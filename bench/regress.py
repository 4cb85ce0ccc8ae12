"""Calibration of ``farm regress`` on virtual phones: is a 5 % slowdown caught, and how often does a build judged
against itself raise a false alarm?

The real farm (local Ray, the controller, the Phone device actors) drives the real adb server and virtual phones
(farm/sim) running the CoDL operator stand-in of the shipped job ``jobs/codl-op-latency.yaml`` (one CPU-only
Conv2D point; its artifacts stood in by ``farm sim artifacts``). Each trial is two submissions of that job under a
trial-specific job name, each with its own ``build:`` label, then :func:`farm.analysis.regress.regress` of the
second against the first, per phone:

- detection: the second build runs with ``FARM_SIM_SLOWDOWN=1.05`` (synthetic: the stand-in's CPU speed / 1.05,
  recorded as ``fp_sim_slowdown``); a trial counts as caught per phone when that phone's point is a regression;
- false alarms: both builds are the same (no slowdown); a trial is a false alarm when any phone's point is flagged.

Everything is synthetic (virtual phones); the rates say how the test and thresholds behave on the stand-in's
noise, thermal drift and the farm's run-to-run variation, not what a real phone does.

    .venv/bin/python bench/regress.py [--trials 10] [--null-trials 20] [--repeat 8] [--phones 2]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, print_machine
from farm.analysis.jobdata import load_job as load_job_data
from farm.analysis.regress import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, regress
from farm.cli.main import main as farm_main
from farm.client import ControllerOptions, FarmClient, JobState, start_ray, stop_ray
from farm.sim.adb_server import AdbServer
from farm.sim.phone import SimConfig, VirtualPhone, free_port
from farm.sim.standin_model import SLOWDOWN_ENV
from farm.specs.inventory import Inventory
from farm.specs.job import load_job

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "jobs" / "codl-op-latency.yaml"
#: As the tests' phones: scripted benchmarks sleep 0.1-0.6 s of wall time per run.
SIM = SimConfig(time_scale=0.02, min_wall_s=0.1, max_wall_s=0.6)
POINT = {"gpu_memory_type": 1, "part_ratio": 0.0, "cu_hint": 1, "num_threads": 4, "opencl_profiling": 0,
         "op_type": "Conv2D", "input_shape": "1,56,56,256", "weight_shape": "256,256,3,3", "strides": "1,1",
         "pooling_type": 1}  # fmt: skip


def job_file(folder: Path, name: str, build: str, repeat: int, slowdown: float | None) -> Path:
    """The shipped CoDL job narrowed to one CPU point, named ``name``, labelled ``build``."""
    data: dict[str, Any] = yaml.safe_load(SHIPPED.read_text())
    data.update(name=name, build=build, repeat=repeat, grid={k: [v] for k, v in POINT.items()})
    if slowdown is not None:
        data["env"] = {**data.get("env", {}), SLOWDOWN_ENV: f"{slowdown:g}"}
    path = folder / f"{name}-{build}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_trial(client: FarmClient, folder: Path, root: str, name: str, repeat: int, slowdown: float | None) -> list[str]:
    """Two builds of job ``name`` (the second slowed down by ``slowdown`` if given); the per-phone verdicts."""
    for build, slow in (("base", None), ("new", slowdown)):
        path = job_file(folder, name, build, repeat, slow)
        status = client.wait(client.submit(load_job(path), str(path), ship=False), 600)
        if status.state is not JobState.DONE or not status.all_ok:
            raise RuntimeError(f"{name} {build}: {status}")
    result = regress(load_job_data(root, name), "base", candidate="new")
    return [row.verdict for row in result.rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10, help="detection trials (5 %% slower build)")
    ap.add_argument("--null-trials", type=int, default=20, help="same build against itself")
    ap.add_argument("--repeat", type=int, default=8, help="runs per build per phone")
    ap.add_argument("--phones", type=int, default=2)
    ap.add_argument("--slowdown", type=float, default=1.05)
    args = ap.parse_args()
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="farm-regress-bench-"))
    folder = tmp / "jobs"
    folder.mkdir()
    probe = job_file(folder, "stand-ins", "x", 1, None)
    if farm_main(["sim", "artifacts", str(probe)]) != 0:  # labelled placeholders at the job's artifact paths
        return 1
    root = str(tmp / "results")
    server = AdbServer(free_port(), home=str(tmp / "adb-home")).start()
    phones = [VirtualPhone(f"vphone-{k}", seed=k, config=SIM).start() for k in range(args.phones)]
    started = time.monotonic()
    caught = flagged_null = points = 0
    try:
        for phone in phones:
            server.connect(phone.serial)
        server.wait_for([p.serial for p in phones], "device")
        inv = Inventory.model_validate(
            {"devices": [{**p.inventory_entry(server_port=server.port), "synthetic": False} for p in phones]}
        )
        start_ray()
        client = FarmClient.start(inv, root, options=ControllerOptions())
        try:
            for k in range(args.trials):
                verdicts = run_trial(client, folder, root, f"cal-slow-{k}", args.repeat, args.slowdown)
                caught += verdicts.count("regression")
                points += len(verdicts)
                print(f"slow trial {k}: {verdicts}", flush=True)
            for k in range(args.null_trials):
                verdicts = run_trial(client, folder, root, f"cal-null-{k}", args.repeat, None)
                flagged_null += any(v in ("regression", "improvement") for v in verdicts)
                print(f"null trial {k}: {verdicts}", flush=True)
        finally:
            client.shutdown(timeout=60)
            stop_ray()
    finally:
        for phone in phones:
            with contextlib.suppress(Exception):
                server.disconnect(phone.serial)
            phone.close()
        server.kill()
    elapsed = time.monotonic() - started
    print(f"\nfarm regress calibration (synthetic: virtual phones, CoDL stand-in, {args.phones} phones)")
    print(f"  thresholds        alpha={DEFAULT_ALPHA:g} (one-sided Mann-Whitney), min effect {DEFAULT_MIN_EFFECT:.0%}")
    print(f"  runs per build    {args.repeat} per phone")
    print(f"  detection         {caught}/{points} phone-points caught at {args.slowdown - 1:.0%} slower "
          f"({args.trials} trials)")  # fmt: skip
    print(f"  false alarms      {flagged_null}/{args.null_trials} same-build trials flagged (any phone)")
    print(f"  wall time         {elapsed:.0f} s")
    print_machine(info)
    return 0 if points and caught == points and flagged_null <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
