"""Calibration of ``farm regress`` on virtual phones: is a 5 % slowdown caught, and how often does a build judged
against itself raise a false alarm?

The real farm (local Ray, the controller, the Phone device actors) drives the real adb server and virtual phones
(farm/sim) running the stand-in of a shipped phone job narrowed to one point (:data:`JOBS`; its artifacts stood
in by ``farm sim artifacts``). Each trial is two submissions of that job under a
trial-specific job name, each with its own ``build:`` label, then :func:`farm.analysis.regress.regress` of the
second against the first, per phone:

- detection: the second build runs with ``FARM_SIM_SLOWDOWN=1.05`` (synthetic: the stand-in's CPU speed / 1.05,
  recorded as ``fp_sim_slowdown``); a trial counts as caught per phone when that phone's point is a regression;
- false alarms: both builds are the same (no slowdown); a trial is a false alarm when any phone's point is flagged.

Everything is synthetic (virtual phones); the rates say how the test and thresholds behave on the stand-in's
noise, thermal drift and the farm's run-to-run variation, not what a real phone does.

    .venv/bin/python bench/regress.py [--job codl|llama] [--trials 10] [--null-trials 20] [--repeat 8] [--phones 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, print_machine, virtual_phone_farm
from farm.analysis.jobdata import load_job_data
from farm.analysis.regress import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, RegressRow, regress
from farm.cli.main import main as farm_main
from farm.client import FarmClient, JobState
from farm.sim.phone import SimConfig, VirtualPhone
from farm.sim.standin_model import SLOWDOWN_ENV
from farm.specs.job import load_job

REPO = Path(__file__).resolve().parents[1]
#: The shipped phone jobs a calibration can use, each narrowed to one grid point: ``codl`` (CoDL's operator latency,
#: CPU-only Conv2D; each run reports the mean of 10 rounds, so it is quiet) and ``llama`` (the elastic-infer
#: llama.cpp baseline at 4 threads, decode tokens/s: one noisy figure per run, behind the job's thermal gate).
JOBS: dict[str, tuple[Path, dict[str, object]]] = {
    "codl": (
        REPO / "jobs" / "codl-op-latency.yaml",
        {"gpu_memory_type": 1, "part_ratio": 0.0, "cu_hint": 1, "num_threads": 4, "opencl_profiling": 0,
         "op_type": "Conv2D", "input_shape": "1,56,56,256", "weight_shape": "256,256,3,3", "strides": "1,1",
         "pooling_type": 1},
    ),
    "llama": (REPO / "jobs" / "elastic-infer-baseline.yaml", {"threads": 4, "compute_cores": "4,5,6,7"}),
}  # fmt: skip
#: As the tests' phones: scripted benchmarks sleep 0.1-0.6 s of wall time per run.
SIM = SimConfig(time_scale=0.02, min_wall_s=0.1, max_wall_s=0.6)


def job_file(folder: Path, kind: str, name: str, build: str, repeat: int, slowdown: float | None) -> Path:
    """The shipped job ``kind`` narrowed to its one point, named ``name``, labelled ``build``."""
    shipped, point = JOBS[kind]
    data: dict[str, Any] = yaml.safe_load(shipped.read_text())
    data.update(name=name, build=build, repeat=repeat, grid={k: [v] for k, v in point.items()})
    if slowdown is not None:
        data["env"] = {**data.get("env", {}), SLOWDOWN_ENV: f"{slowdown:g}"}
    path = folder / f"{name}-{build}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_trial(
    client: FarmClient, folder: Path, root: str, kind: str, name: str, repeat: int, slowdown: float | None
) -> list[RegressRow]:
    """Two builds of job ``name`` (the second slowed down by ``slowdown`` if given); the per-phone outcome."""
    for build, slow in (("base", None), ("new", slowdown)):
        path = job_file(folder, kind, name, build, repeat, slow)
        status = client.wait(client.submit(load_job(path), str(path), ship=False), 900)
        if status.state is not JobState.DONE or not status.all_ok:
            raise RuntimeError(f"{name} {build}: {status}")
    return regress(load_job_data(root, name), "base", candidate="new").rows


def _spread(values: list[float]) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    return f"median {ordered[len(ordered) // 2]:+.2%}, range {ordered[0]:+.2%} … {ordered[-1]:+.2%}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10, help="detection trials (5 %% slower build)")
    ap.add_argument("--null-trials", type=int, default=20, help="same build against itself")
    ap.add_argument("--repeat", type=int, default=8, help="runs per build per phone")
    ap.add_argument("--phones", type=int, default=2)
    ap.add_argument("--slowdown", type=float, default=1.05)
    ap.add_argument("--job", choices=sorted(JOBS), default="codl", help="which shipped phone job (default: codl)")
    args = ap.parse_args()
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="farm-regress-bench-"))
    folder = tmp / "jobs"
    folder.mkdir()
    probe = job_file(folder, args.job, "stand-ins", "x", 1, None)
    if farm_main(["sim", "artifacts", str(probe)]) != 0:  # labelled placeholders at the job's artifact paths
        return 1
    root = str(tmp / "results")
    phones = [VirtualPhone(f"vphone-{k}", seed=k, config=SIM).start() for k in range(args.phones)]
    started = time.monotonic()
    slow_rows: list[RegressRow] = []
    null_trials: list[list[RegressRow]] = []
    with virtual_phone_farm(tmp / "adb-home", phones, root, entry={"synthetic": False}) as client:
        for k in range(args.trials):
            slow_rows += run_trial(client, folder, root, args.job, f"cal-slow-{k}", args.repeat, args.slowdown)
            print(f"slow trial {k}: {[r.verdict for r in slow_rows[-args.phones :]]}", flush=True)
        for k in range(args.null_trials):
            null_trials.append(run_trial(client, folder, root, args.job, f"cal-null-{k}", args.repeat, None))
            print(f"null trial {k}: {[r.verdict for r in null_trials[-1]]}", flush=True)
    elapsed = time.monotonic() - started
    caught = sum(r.verdict == "regression" for r in slow_rows)
    alarms = sum(any(r.verdict in ("regression", "improvement") for r in rows) for rows in null_trials)
    null_rows = [r for rows in null_trials for r in rows]
    significant = sum(r.p_value is not None and (r.p_value < DEFAULT_ALPHA or r.p_value > 1 - DEFAULT_ALPHA)
                      for r in null_rows)  # fmt: skip
    print(f"\nfarm regress calibration (synthetic: virtual phones, {args.job} stand-in, {args.phones} phones)")
    print(f"  thresholds        alpha={DEFAULT_ALPHA:g} (one-sided Mann-Whitney), min effect {DEFAULT_MIN_EFFECT:.0%}")
    print(f"  runs per build    {args.repeat} per phone")
    print(
        f"  detection         {caught}/{len(slow_rows)} phone-points caught at {args.slowdown - 1:.0%} slower "
        f"({args.trials} trials); measured change {_spread([r.worse_by for r in slow_rows if r.worse_by is not None])}"
    )
    print(
        f"  false alarms      {alarms}/{len(null_trials)} same-build trials flagged (any phone); "
        f"change {_spread([r.worse_by for r in null_rows if r.worse_by is not None])}"
    )
    print(f"  without min effect {significant}/{len(null_rows)} same-build phone-points had p < alpha either way")
    print(f"  wall time         {elapsed:.0f} s")
    print_machine(info)
    return 0 if slow_rows and caught == len(slow_rows) and alarms <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
