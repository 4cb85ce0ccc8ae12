"""``farm run JOB``: embedded mode — a private local Ray, a controller, the inventory's devices, one sweep."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from farm.cli.common import inventory_from, port_or_zero, results_root, stderr
from farm.cli.summary import print_summary
from farm.plan import check_job_on
from farm.specs.inventory import Inventory
from farm.specs.job import load_job


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run a job on a private local Ray (embedded mode)")
    p.add_argument("job", metavar="JOB", help="job YAML file")
    p.add_argument("--inventory", metavar="INV", help="inventory YAML (default: this host as one device)")
    p.add_argument("--results", metavar="DIR", help="results location (default ./farm-results or $FARM_RESULTS)")
    p.add_argument("--rerun", action="store_true", help="run again even the runs already recorded ok")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (plain log lines instead)")
    p.add_argument(
        "--metrics-port",
        type=port_or_zero,
        default=None,
        help="serve Prometheus metrics on loopback at this port (0: any)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    job = load_job(args.job, check_artifacts=True)  # bad input: exit 2 before anything starts
    inv = inventory_from(args.inventory)
    check_job_on(job, inv.slots(), args.job)
    root = results_root(args.results)

    def submit(handle: Any) -> str:
        from farm import runtime

        return runtime.submit(handle, job, args.job, ship=False, rerun=args.rerun)

    # One `farm run` of a job per results folder at a time: a second one is refused here, before Ray starts.
    from farm.results import ResultsStore

    lock = ResultsStore(root).job_lock(job.name, "run")
    try:
        status = embedded(inv, root, submit, not args.no_progress, args.metrics_port)
    finally:
        lock.release()
    if status["state"] == "cancelled":
        stderr().print(f"[yellow]{job.name}: cancelled; {status.get('not_started', 0)} runs not started[/]")
    print_summary(root, job.name, status)
    ok = status["statuses"].get("ok", 0)
    return 0 if status["state"] == "done" and ok + status["skipped"] == status["total"] else 1


def embedded(
    inv: Inventory, root: str, submit: Callable[[Any], str], bar: bool, metrics_port: int | None = None
) -> dict[str, Any]:
    """Start a private local Ray and a controller over ``inv``, ``submit(handle)`` one job, follow it (Ctrl-C
    cancels it, twice aborts), shut everything down; the job's final status."""
    err = stderr()
    err.print(f"[dim]starting local Ray and {len(inv.devices)} device(s)…[/]")
    from farm import runtime

    runtime.init_ray()
    import ray

    from farm.controller import ControllerOptions

    handle = runtime.start_controller(inv, root, options=ControllerOptions(metrics_port=metrics_port))
    try:
        if metrics_port is not None:
            host, port = ray.get(handle.start.remote())["metrics_address"]
            err.print(f"[dim]metrics: http://{host}:{port}/metrics[/]")
        job_id = submit(handle)
    except BaseException:
        ray.shutdown()
        raise
    interrupted = {"n": 0}

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupted["n"] += 1
        if interrupted["n"] > 1:
            raise KeyboardInterrupt
        err.print("[yellow]cancelling: running runs are stopped, the rest are not started (Ctrl-C again to abort)[/]")
        handle.cancel.remote(job_id)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return _follow(handle, job_id, bar)
    finally:
        signal.signal(signal.SIGINT, previous)
        try:
            ray.get(handle.shutdown.remote(), timeout=60)
        finally:
            ray.shutdown()


def _follow(handle: Any, job_id: str, bar: bool) -> dict[str, Any]:
    import ray

    status: dict[str, Any] = ray.get(handle.status.remote(job_id))
    if not bar:
        last = -1
        while status["state"] not in ("done", "cancelled"):
            status = ray.get(handle.wait.remote(job_id, 5.0))
            if status["finished"] != last:
                last = status["finished"]
                stderr().print(_line(status))
        return status
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr(), transient=False) as progress:
        task = progress.add_task(status["job"], total=status["total"], detail="")
        while True:
            done = status["finished"] + status["skipped"]
            progress.update(task, completed=done, detail=_detail(status))
            if status["state"] in ("done", "cancelled"):
                break
            status = ray.get(handle.wait.remote(job_id, 0.5))
    return status


def _detail(status: dict[str, Any]) -> str:
    parts = [f"{k} {v}" for k, v in sorted(status["statuses"].items())]
    if status["running"]:
        parts.append(f"running {status['running']}")
    if status["skipped"]:
        parts.append(f"skipped {status['skipped']} (done before)")
    if status["retries"]:
        parts.append(f"retries {status['retries']}")
    return ", ".join(parts)


def _line(status: dict[str, Any]) -> str:
    done = status["finished"] + status["skipped"]
    return f"{status['job']}: {done}/{status['total']} {_detail(status)}"
