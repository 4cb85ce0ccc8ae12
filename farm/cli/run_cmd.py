"""``farm run JOB``: embedded mode — a private local Ray, a controller, the inventory's devices, one sweep."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from farm.cli.common import inventory_from, port_or_zero, results_root, stderr
from farm.cli.progress import follow
from farm.cli.summary import print_summary
from farm.plan import check_job_on
from farm.specs.inventory import Inventory
from farm.specs.job import load_job

if TYPE_CHECKING:  # Ray and the controller are imported when a command needs them, not for `farm --help`
    from farm.client import FarmClient, JobStatus


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

    def submit(client: FarmClient) -> str:
        return client.submit(job, args.job, ship=False, rerun=args.rerun)

    # One `farm run` of a job per results folder at a time: a second one is refused here, before Ray starts.
    from farm.results import ResultsStore

    lock = ResultsStore(root).job_lock(job.name, "run")
    try:
        status = embedded(inv, root, submit, not args.no_progress, args.metrics_port)
    finally:
        lock.release()
    print_summary(root, job.name, status)
    return 0 if status.all_ok else 1


def embedded(
    inv: Inventory, root: str, submit: Callable[[FarmClient], str], bar: bool, metrics_port: int | None = None
) -> JobStatus:
    """Start a private local Ray and a controller over ``inv``, ``submit(client)`` one job, follow it (Ctrl-C
    cancels it, twice aborts), shut everything down; the job's final status."""
    err = stderr()
    err.print(f"[dim]starting local Ray and {len(inv.devices)} device(s)…[/]")
    from farm.client import ControllerOptions, FarmClient, JobState, start_ray, stop_ray

    start_ray()
    client = FarmClient.start(inv, root, options=ControllerOptions(metrics_port=metrics_port))
    try:
        if metrics_port is not None:
            address = client.info().metrics_address
            if address is not None:
                err.print(f"[dim]metrics: http://{address[0]}:{address[1]}/metrics[/]")
        job_id = submit(client)
    except BaseException:
        stop_ray()
        raise
    interrupted = {"n": 0}

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupted["n"] += 1
        if interrupted["n"] > 1:
            raise KeyboardInterrupt
        err.print("[yellow]cancelling: running runs are stopped, the rest are not started (Ctrl-C again to abort)[/]")
        client.cancel_nowait(job_id)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        status = follow(client, job_id, bar)
        if status.state is JobState.CANCELLED:  # said at once, before Ray is stopped
            err.print(f"[yellow]{status.job}: cancelled; {status.not_started} runs not started[/]")
        return status
    finally:
        signal.signal(signal.SIGINT, previous)
        try:
            client.shutdown(timeout=60)
        finally:
            stop_ray()
