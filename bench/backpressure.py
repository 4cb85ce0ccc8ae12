"""Backpressure: the controller's memory while a 100,000-point sweep is queued, against a plan held as a list.

The farm is real: embedded Ray, the controller actor, D ``host`` devices (default 4) on this machine. A small
warm-up job runs to completion first (so one-time costs — imports, the first Parquet flush, the log
directory — are paid before the baseline reading). Then the sweep: a 100 x 100 x 10 grid (100,000 points,
placement ``any``, one repeat: 100,000 runs) whose command is one short process (``echo``), so the devices keep
dispatching for the whole sampling window. Every ``--every`` seconds for ``--seconds`` seconds the script
records, read on the controller's own event loop (``__ray_call__``):

- the controller process's resident memory (``VmRSS`` of its pid);
- runs pulled from the plan iterator so far, runs queued in the scheduler's memory, runs in flight (Ray tasks
  the controller awaits), runs finished, rows buffered in the results writer.

Then it cancels the sweep and follows the cancel from outside the actor (its RSS, the run logs written) for at
most ``--cancel-seconds``; a cancel still running then is reported with its rate, and the farm is killed.

Baseline, in the same run: a fresh Python process builds the same job spec and slots and holds
``list(plan_runs(spec, slots))`` — what a controller that expands its plan up front keeps for the whole
sweep — and reports its RSS growth and the bytes ``tracemalloc`` attributes to the list. The figure is the
ratio of the controller's RSS growth from submitting the sweep (reading right after the submit minus the reading
after the warm-up) to that baseline growth; the growth over the whole window is printed beside it. ``--trace``
also runs ``tracemalloc`` inside the controller over the window and prints the allocation sites that grew most
(it slows dispatch: use it to find a leak, not for rates).

    PYTHONPATH=. .venv/bin/python bench/backpressure.py [--devices 4] [--seconds 60] [--every 2]
        [--axes 100,100,10] [--cancel-seconds 45] [--trace]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import init_local_ray, machine, print_machine, start_farm
from farm.client import JobState

JOB = "backpressure"


def sweep_job(name: str, axes: list[int]) -> dict[str, Any]:
    """A product grid of ``axes`` sizes; each run is one ``echo`` whose line the regex adapter parses."""
    return {
        "name": name,
        "workload": "regex",
        "workload_options": {"patterns": {"point_count": r"point_count=(\S+)"}},
        "command": ["echo", "point_count={a0}"],
        "grid": {f"a{i}": list(range(n)) for i, n in enumerate(axes)},
        "devices": {"kind": "host", "placement": "any"},
        "order": "grid",
        "retries": 0,
        "timeout": 60,
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _controller_state(controller: Any, job_id: str) -> dict[str, Any]:
    """Runs on the controller's event loop: a consistent view of what it holds for ``job_id``."""
    rec = controller.jobs[job_id]
    progress = controller.scheduler.progress(job_id) if job_id in controller.scheduler.jobs() else {}
    return {
        "pid": os.getpid(),
        "state": rec.state,
        "pulled": progress.get("planned_so_far", 0),
        "queued_in_memory": progress.get("queued", 0),
        "in_flight": len(controller.inflight),  # calls to devices (a batch of short runs is one)
        "running": progress.get("running", 0),  # runs leased to devices
        "finished": sum(rec.statuses.values()),
        "writer_pending": rec.writer.pending,
        "low_water": controller.scheduler.low_water,
        "batch_max": controller.options.batch_max,
        "slots": len(controller.slots),
    }


def _trace_start(controller: Any) -> None:
    import tracemalloc

    tracemalloc.start(8)
    controller._bench_snapshot = tracemalloc.take_snapshot()


def _trace_top(controller: Any, limit: int) -> list[str]:
    import tracemalloc

    diff = tracemalloc.take_snapshot().compare_to(controller._bench_snapshot, "lineno")
    tracemalloc.stop()
    return [str(stat) for stat in diff[:limit]]


def call(handle: Any, fn: Any, *args: Any, timeout: float = 60) -> Any:
    return ray.get(handle.__ray_call__.remote(fn, *args), timeout=timeout)


def count_logs(results: Path, job: str) -> int:
    try:
        return sum(1 for _ in os.scandir(results / "logs" / job))
    except FileNotFoundError:
        return 0


BASELINE = """
import json, sys, tracemalloc
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from bench.common import host_inventory
from farm.plan import plan_runs
from farm.specs.job import job_from_dict

def rss_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

job = json.loads(sys.argv[2])
spec = job_from_dict(job, "<bench>", Path.cwd())
slots = [s for d in host_inventory(int(sys.argv[3])).devices for s in d.slots()]
before = rss_kib()
tracemalloc.start()
runs = list(plan_runs(spec, slots))
traced, _ = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({"runs": len(runs), "rss_growth_kib": rss_kib() - before, "traced_bytes": traced}))
"""


def naive_baseline(job: dict[str, Any], devices: int) -> dict[str, Any]:
    """RSS growth of a fresh process holding the whole plan as a list (tracemalloc runs after the RSS base)."""
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", BASELINE, root, json.dumps(job), str(devices)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=4, help="host devices (slots) serving the sweep")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to sample while the sweep runs")
    parser.add_argument("--every", type=float, default=2.0, help="sampling period (s)")
    parser.add_argument("--axes", default="100,100,10", help="grid axis sizes; their product is the point count")
    parser.add_argument("--warmup-points", type=int, default=200, help="points of the warm-up job (run to the end)")
    parser.add_argument("--cancel-seconds", type=float, default=45.0, help="how long to follow the cancel (s)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the controller over the window")
    args = parser.parse_args()
    axes = [int(a) for a in args.axes.split(",")]
    points = math.prod(axes)
    job = sweep_job(JOB, axes)

    work = Path(tempfile.mkdtemp(prefix="farm-backpressure-"))
    results = work / "results"
    init_local_ray()
    info = machine()
    client = start_farm(args.devices, results)
    handle = client.handle  # the figures below are read inside the controller (`__ray_call__`)
    samples: list[tuple[float, int, dict[str, Any]]] = []
    cancel_samples: list[tuple[float, int, int]] = []
    top: list[str] = []
    try:
        warm_id = client.submit_data(sweep_job("warmup", [args.warmup_points]), "<bench>", str(work))
        warm = client.wait(warm_id, 300)
        if warm.state is not JobState.DONE:
            raise RuntimeError(f"warm-up job did not finish: {warm}")
        pid = call(handle, lambda c: os.getpid())
        rss_warm = rss_kib(pid)
        if args.trace:
            call(handle, _trace_start)
        t0 = time.perf_counter()
        job_id = client.submit_data(job, "<bench:backpressure>", str(work), rerun=True)
        submit_s = time.perf_counter() - t0
        rss_submit = rss_kib(pid)
        first = call(handle, _controller_state, job_id)
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < args.seconds:
            samples.append((elapsed, rss_kib(pid), call(handle, _controller_state, job_id)))
            time.sleep(max(0.0, args.every - (time.perf_counter() - start - elapsed)))
        if args.trace:
            top = call(handle, _trace_top, 12, timeout=300)
        before_cancel = call(handle, _controller_state, job_id)
        logs_before = count_logs(results, JOB)
        # The cancel runs on the controller's event loop: follow it from outside (RSS, log files written).
        cancel_ref = handle.cancel.remote(job_id)
        t0 = time.perf_counter()
        cancel_done_s: float | None = None
        while (elapsed := time.perf_counter() - t0) < args.cancel_seconds:
            ready, _ = ray.wait([cancel_ref], timeout=min(args.every, args.cancel_seconds - elapsed))
            cancel_samples.append((time.perf_counter() - t0, rss_kib(pid), count_logs(results, JOB) - logs_before))
            if ready:
                cancel_done_s = time.perf_counter() - t0
                break
    finally:
        # Not Controller.shutdown: it would cancel (and so record) every remaining run of the sweep first.
        client.kill()
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)  # tens of thousands of run logs
    naive = naive_baseline(job, args.devices)

    print(f"{'t_s':>6} {'rss_mib':>8} {'pulled':>8} {'queued':>7} {'in_flight':>9} {'finished':>9} {'writer':>7}")
    for elapsed, sample_rss, st in samples:
        print(
            f"{elapsed:6.1f} {sample_rss / 1024:8.1f} {st['pulled']:8d} {st['queued_in_memory']:7d} "
            f"{st['in_flight']:9d} {st['finished']:9d} {st['writer_pending']:7d}"
        )
    print(f"cancel: {'t_s':>6} {'rss_mib':>8} {'runs_recorded':>13}")
    for elapsed, sample_rss, recorded in cancel_samples:
        print(f"        {elapsed:6.1f} {sample_rss / 1024:8.1f} {recorded:13d}")
    for line in top:
        print(f"tracemalloc growth: {line}")

    rss = [r for _, r, _ in samples]
    finished = [st["finished"] for _, _, st in samples]
    span = samples[-1][0] - samples[0][0]
    runs_per_s = (finished[-1] - finished[0]) / span if span > 0 else math.nan
    growth = max(rss) - rss_warm
    half = len(samples) // 2
    done_2nd = finished[-1] - finished[half]
    slope = (rss[-1] - rss[half]) / done_2nd * 1000 if done_2nd > 0 else math.nan
    queued_max = max(st["queued_in_memory"] for _, _, st in samples)
    inflight_max = max(st["in_flight"] for _, _, st in samples)
    bound = max(first["low_water"], first["batch_max"]) * first["slots"]
    remaining = points - before_cancel["finished"] - before_cancel["running"]
    print()
    print("== backpressure: controller memory with a large sweep queued (real farm, synthetic echo runs) ==")
    print_machine(info)
    print(
        f"sweep: {points:,} grid points (axes {args.axes}), placement any, {args.devices} host devices; "
        f"submit call {submit_s:.2f} s; sampled every {args.every:g} s for {args.seconds:g} s"
        + (" with tracemalloc on" if args.trace else "")
    )
    print(
        f"runs: {finished[-1]:,} finished ({runs_per_s:.1f} runs/s); pulled from the plan {before_cancel['pulled']:,}"
        f" of {points:,}; queued in the scheduler's memory max {queued_max} (bound: max(low_water "
        f"{first['low_water']}, batch {first['batch_max']}) x {first['slots']} slots = {bound}); in flight max "
        f"{inflight_max} calls"
    )
    queued_growth = rss_submit - rss_warm
    print(
        f"queueing: controller RSS {rss_warm / 1024:.1f} MiB before the submit, {rss_submit / 1024:.1f} MiB right "
        f"after it ({queued_growth / 1024:+.1f} MiB for {points:,} runs); the plan as a list "
        f"({naive['runs']:,} RunSpecs, a fresh process): {naive['rss_growth_kib'] / 1024:+.1f} MiB RSS "
        f"(tracemalloc {naive['traced_bytes'] / 2**20:.1f} MiB); "
        f"ratio {queued_growth / max(1, naive['rss_growth_kib']):.3f}"
    )
    print(
        f"running: controller RSS {rss_warm / 1024:.1f} MiB after the warm-up job, max {max(rss) / 1024:.1f} MiB "
        f"while the sweep was queued (growth {growth / 1024:.1f} MiB), median {statistics.median(rss) / 1024:.1f} MiB; "
        f"second-half slope {slope:.0f} KiB per 1,000 finished runs"
    )
    print(
        f"ratio: controller RSS growth over the window, {remaining:,} runs still pending at its end / list "
        f"baseline growth = {growth / max(1, naive['rss_growth_kib']):.3f} (the growth follows finished runs, see "
        "docs/benchmarks.md, Scale)"
    )
    last_t, last_rss, recorded = cancel_samples[-1] if cancel_samples else (0.0, 0, 0)
    peak = max((r for _, r, _ in cancel_samples), default=0)
    if cancel_done_s is not None:
        print(f"cancel of {remaining:,} pending runs: done in {cancel_done_s:.1f} s; RSS peak {peak / 1024:.1f} MiB")
    else:
        rate = recorded / last_t if last_t > 0 else math.nan
        projected = remaining / rate if rate > 0 else math.nan
        print(
            f"cancel of {remaining:,} pending runs: not done after {last_t:.0f} s — {recorded:,} recorded "
            f"({rate:.0f} runs/s, ~{projected:.0f} s for all, the controller's event loop blocked meanwhile); "
            f"RSS {last_rss / 1024:.1f} MiB (peak {peak / 1024:.1f}, +{(peak - max(rss)) / 1024:.1f} MiB over the "
            "sweep's max); farm killed"
        )


if __name__ == "__main__":
    main()
