"""Benchmark of planning: a 100,000-point grid through ``plan_runs`` + ``render`` for one device, and ``farm plan``.

Planning must be fast (target ≤ 5 s for 100k runs) and lazy: peak memory must not grow with the grid size.
Measured in one process, on the same 5-axis grid (10 values per axis; the 10k case fixes the last axis):

- farm: ``plan_runs`` (validation done, run ids hashed, order applied) + ``render`` (argv, env) of every run,
  each run dropped once rendered, for orders ``interleave`` and ``shuffle``;
- baseline: a bare ``itertools.product`` over the same axes building the same param dicts and the same argv/env
  with ``str.format`` — no run ids, no order, no checks: the floor any planner pays;
- peak memory: tracemalloc peak during a second, traced pass (timings come from the untraced pass);
- ``farm plan --json`` on the same job as a subprocess, stdout to /dev/null (start-up included).

Usage: ``.venv/bin/python bench/plan_grid.py [--points 100000]``
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from farm.plan import plan_runs, render
from farm.specs.inventory import HostDevice, Inventory
from farm.specs.job import JobSpec, job_from_dict

AXES = ("threads", "batch", "ctx", "sparsity", "prompt")
COMMAND = ["bench", "-t", "{threads}", "-b", "{batch}", "-c", "{ctx}", "--sp", "{sparsity}", "-p", "{prompt}"]
ENV = {"OMP_NUM_THREADS": "{threads}", "DEV": "{device.id}"}


def axes_for(points: int) -> dict[str, Any]:
    """Five axes of ten values each; the last axes shrink to 1 value to reach 10k, 1k, ... points."""
    sizes = [10, 10, 10, 10, 10]
    while 10 ** sum(1 for s in sizes if s > 1) > points:
        sizes[sizes.index(1) - 1 if 1 in sizes else -1] = 1
    if points == 1:
        sizes = [1, 1, 1, 1, 1]
    return {
        "threads": list(range(1, sizes[0] + 1)),
        "batch": [2**i for i in range(sizes[1])],
        "ctx": [128 * (i + 1) for i in range(sizes[2])],
        "sparsity": {"start": 0.0, "stop": round(0.1 * (sizes[3] - 1), 1), "step": 0.1},
        "prompt": [f"prompt-{i}" for i in range(sizes[4])],
    }


def job_dict(points: int, order: str) -> dict[str, Any]:
    return {
        "name": f"bench-plan-{points}",
        "workload": "json",
        "command": COMMAND,
        "env": ENV,
        "grid": axes_for(points),
        "order": order,
        "seed": 1,
    }


def farm_pass(job: JobSpec, inv: Inventory) -> int:
    slot = inv.slots()[0]
    n = 0
    for run in plan_runs(job, [slot]):
        rendered = render(job, run, slot)
        n += len(rendered.argv) + len(rendered.env)
    return n


def baseline_pass(job: JobSpec, inv: Inventory) -> int:
    grid = axes_for_product(job)
    device_id = inv.slots()[0].device_id
    n = 0
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        text = {k: str(v) for k, v in params.items()}
        argv = [a.format(**text) if "{" in a else a for a in COMMAND]
        env = {"OMP_NUM_THREADS": text["threads"], "DEV": device_id}
        n += len(argv) + len(env)
    return n


def axes_for_product(job: JobSpec) -> dict[str, list[Any]]:
    # The same values the farm's grid holds, as plain lists.
    return {keys[0]: [row[0] for row in rows] for keys, rows in job.grid_spec.dims}


def timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(wall s, CPU s of this process, result); CPU time tells the cost apart from waiting on a busy machine."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def traced_peak_mib(fn: Callable[[], int]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def farm_plan_cli(points: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.yaml"
        path.write_text(yaml.safe_dump(job_dict(points, "interleave"), sort_keys=False))
        start = time.perf_counter()
        # The child's CPU time is not ours: wall time only (start-up measured separately on a 1-point grid).
        proc = subprocess.run(
            [sys.executable, "-m", "farm.cli.main", "plan", "--json", str(path)],
            capture_output=True,
            check=True,
            env={**os.environ, "FARM_INVENTORY": ""},
        )
        elapsed = time.perf_counter() - start
    return elapsed, proc.stdout.count(b"\n")


def machine() -> dict[str, str]:
    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load1, _, _ = os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{model} ({os.cpu_count()} cpus, load {load1:.2f})",
        "python": platform.python_version(),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--points", type=int, default=100_000, help="grid size, a power of 10 up to 100000")
    args = parser.parse_args()
    inv = Inventory(devices=[HostDevice(kind="host", id="bench-host")])
    sizes = sorted({min(10_000, args.points), args.points})
    rows: list[tuple[str, ...]] = []
    for points in sizes:
        for order in ("interleave", "shuffle"):
            job = job_from_dict(job_dict(points, order))
            assert job.grid_spec.count() == points, job.grid_spec.count()
            farm, base = partial(farm_pass, job, inv), partial(baseline_pass, job, inv)
            farm_s, farm_cpu, farm_n = timed(farm)
            base_s, base_cpu, base_n = timed(base)
            assert farm_n == base_n, (farm_n, base_n)  # both built the same number of argv words + env entries
            farm_peak, base_peak = traced_peak_mib(farm), traced_peak_mib(base)
            rows.append(
                (
                    f"{points:,}",
                    order,
                    f"{farm_s:.2f}",
                    f"{farm_cpu:.2f}",
                    f"{points / farm_s:,.0f}",
                    f"{farm_peak:.2f}",
                    f"{base_s:.2f}",
                    f"{base_cpu:.2f}",
                    f"{base_peak:.2f}",
                    f"{farm_cpu / base_cpu:.1f}×",
                )
            )
    cli_s, cli_lines = farm_plan_cli(args.points)
    startup_s, _ = farm_plan_cli(1)  # the same command on a 1-point grid: interpreter + imports + one run

    print("machine:")
    for key, value in machine().items():
        print(f"  {key:<8} {value}")
    header = (
        "points",
        "order",
        "farm s",
        "farm cpu s",
        "runs/s",
        "farm peak MiB",
        "base s",
        "base cpu s",
        "base peak MiB",
        "farm/base cpu",
    )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("plan_runs + render, one device (runs dropped once rendered):")
    print("  " + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print(
        f"farm plan --json, {args.points:,} points, this host: {cli_s:.2f} s wall, {cli_lines:,} lines "
        f"(the same on 1 point: {startup_s:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
