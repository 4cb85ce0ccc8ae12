"""Cluster mode: a detached controller on a running Ray cluster, and the commands that talk to it.

``farm controller start|stop``, ``farm submit``, ``farm status``, ``farm wait``, ``farm cancel``, ``farm devices``
(``farm devices discover``: see :mod:`farm.discover`).
``--address`` defaults to ``$RAY_ADDRESS``, then ``auto`` (the cluster this machine belongs to).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from typing import TYPE_CHECKING, Any

from rich.table import Table

from farm.batching import WINDOW_S
from farm.cli.api_cmd import add_token_args, submit_over_api
from farm.cli.common import inventory_from, non_negative, port, port_or_zero, results_root, stderr, stdout
from farm.cli.progress import follow
from farm.cli.summary import print_summary

if TYPE_CHECKING:  # Ray and the controller are imported when a command needs them, not for `farm --help`
    from farm.client import FarmClient


def _address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", metavar="ADDR", help="Ray cluster address (default $RAY_ADDRESS or auto)")


def register(sub: Any) -> None:
    ctl = sub.add_parser("controller", help="start or stop the farm controller on a Ray cluster")
    ctl_sub = ctl.add_subparsers(dest="controller_action", metavar="ACTION", required=True)
    start = ctl_sub.add_parser("start", help="start a detached controller with the inventory's devices")
    _address(start)
    start.add_argument("--inventory", metavar="INV", help="inventory YAML (default: this host as one device)")
    start.add_argument("--results", metavar="URI", help="results location: a path on the head node or a URI")
    start.add_argument("--metrics-host", default="127.0.0.1", help="exporter bind address (default loopback)")
    start.add_argument("--metrics-port", type=port_or_zero, default=None, help="serve Prometheus metrics on this port")
    start.add_argument(
        "--batch-window",
        type=non_negative("--batch-window"),
        default=WINDOW_S,
        metavar="S",
        help="short runs share one call to their device, about S seconds of runs (default %(default)s; 0: off)",
    )
    start.set_defaults(func=controller_start)
    stop = ctl_sub.add_parser("stop", help="cancel running jobs, flush results and stop the controller")
    _address(stop)
    stop.set_defaults(func=controller_stop)

    p = sub.add_parser("submit", help="submit a job to the cluster's controller; prints the job id")
    p.add_argument("job", metavar="JOB")
    _address(p)
    p.add_argument("--rerun", action="store_true", help="run again even the runs already recorded ok")
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.add_argument("--api", metavar="URL", help="submit over the farm's HTTP API (farm api serve) instead of Ray")
    add_token_args(p)
    p.set_defaults(func=submit)

    p = sub.add_parser("status", help="state of one job or of all jobs")
    p.add_argument("job_id", nargs="?", metavar="JOB_ID")
    _address(p)
    p.set_defaults(func=status)

    p = sub.add_parser("wait", help="follow a job until it ends (exit 0 when every run is ok)")
    p.add_argument("job_id", metavar="JOB_ID")
    _address(p)
    p.add_argument("--results", metavar="DIR", help="results location for the summary table")
    p.set_defaults(func=wait)

    p = sub.add_parser("cancel", help="cancel a job: pending runs are recorded 'cancelled', running ones stopped")
    p.add_argument("job_id", metavar="JOB_ID")
    _address(p)
    p.set_defaults(func=cancel)

    p = sub.add_parser(
        "devices", help="devices of the farm (list), or phones adb sees, as inventory entries (discover)"
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("list", "discover"),
        default="list",
        help="list (default): the controller's devices and their state; discover: ready phones as inventory YAML",
    )
    _address(p)
    p.add_argument(
        "--adb-port",
        type=port,
        default=os.environ.get("ANDROID_ADB_SERVER_PORT", "5037"),  # argparse applies ``type`` to it when used
        help="discover: adb server port on each machine (default $ANDROID_ADB_SERVER_PORT or 5037)",
    )
    p.set_defaults(func=devices)


def _connect(args: argparse.Namespace) -> FarmClient:
    from farm.client import FarmClient

    return FarmClient.connect(args.address)


def controller_start(args: argparse.Namespace) -> int:
    from farm.client import ControllerOptions, FarmClient, cluster_address, start_ray

    inv = inventory_from(args.inventory)
    start_ray(cluster_address(args.address))
    opts = ControllerOptions(
        metrics_host=args.metrics_host, metrics_port=args.metrics_port, batch_window_s=args.batch_window
    )
    info = FarmClient.start(inv, results_root(args.results), detached=True, options=opts).info()
    where = f", metrics on {info.metrics_address[0]}:{info.metrics_address[1]}" if info.metrics_address else ""
    stdout().print(f"controller started: {info.devices} devices, {info.slots} slots{where}")
    return 0


def controller_stop(args: argparse.Namespace) -> int:
    client = _connect(args)
    client.shutdown()
    client.kill()
    stdout().print("controller stopped")
    return 0


def submit(args: argparse.Namespace) -> int:
    from farm.specs.job import load_job

    if args.api:
        return submit_over_api(args)

    job = load_job(args.job, check_artifacts=True)
    client = _connect(args)
    job_id = client.submit(job, args.job, ship=True, rerun=args.rerun)
    print(job_id)
    if args.wait:
        return _wait(client, job_id, None)
    return 0


def status(args: argparse.Namespace) -> int:
    client = _connect(args)
    rows = [client.status(args.job_id)] if args.job_id is not None else client.jobs()
    table = Table(show_edge=False)
    table.add_column("job id", no_wrap=True)
    for col in ("state", "done", "total", "running", "queued", "not started", "statuses"):
        table.add_column(col)
    table.add_column("submitted", no_wrap=True)
    for st in rows:
        table.add_row(
            st.job_id,
            st.state,
            str(st.done),
            str(st.total),
            str(st.running),
            str(st.queued),
            str(st.not_started),
            st.counts_text(),
            dt.datetime.fromtimestamp(st.submitted_at).strftime("%m-%d %H:%M:%S"),
        )
    stdout().print(table)
    return 0


def _wait(client: FarmClient, job_id: str, results: str | None) -> int:
    st = follow(client, job_id, bar=stderr().is_terminal)
    if results:
        print_summary(results, st.job, st)
    else:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(st.statuses.items()))
        stdout().print(f"{job_id}: {st.state}: {counts or 'no runs'}")
    return 0 if st.all_ok else 1


def wait(args: argparse.Namespace) -> int:
    return _wait(_connect(args), args.job_id, args.results)


def cancel(args: argparse.Namespace) -> int:
    st = _connect(args).cancel(args.job_id)
    stdout().print(f"{st.job_id}: {st.state}")
    return 0


def devices(args: argparse.Namespace) -> int:
    if args.action == "discover":
        from farm.discover import run_discover

        return run_discover(args)
    table = Table(show_edge=False)
    table.add_column("slot", no_wrap=True)
    for col in ("kind", "node", "state"):
        table.add_column(col)
    table.add_column("current run", overflow="fold")
    table.add_column("reason", overflow="fold")
    for d in _connect(args).devices():
        table.add_row(d.slot, d.kind, d.node, d.state, d.current_run, d.reason)
    stdout().print(table)
    return 0
