"""``farm plan JOB``: show the runs a job expands to — a table per device, or one JSON object per run."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.table import Table

from farm.cli.common import inventory_from, stdout
from farm.envvars import describe_env
from farm.plan import ANY_SLOT, RunSpec, check_job_on, count_runs, plan_runs, render, repeat_text
from farm.specs.inventory import Slot
from farm.specs.job import JobSpec, load_job
from farm.templates import as_text


def register(sub: Any) -> None:
    p = sub.add_parser("plan", help="show the runs a job expands to")
    p.add_argument("job", metavar="JOB", help="job YAML file")
    p.add_argument("--inventory", metavar="INV", help="inventory YAML (default: this host as one device)")
    p.add_argument("--json", action="store_true", help="one JSON object per run on stdout")
    p.add_argument("--rows", type=int, default=10, metavar="N", help="rows shown in the table (default 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    inv = inventory_from(args.inventory)
    slots = {s.slot_id: s for s in inv.slots()}
    check_job_on(job, list(slots.values()), args.job)
    counts = count_runs(job, list(slots.values()))
    runs = plan_runs(job, list(slots.values()))

    def slot_of(slot_id: str | None, candidates: tuple[str, ...]) -> Slot:
        return slots[slot_id] if slot_id is not None else slots[candidates[0]]

    if args.json:
        try:
            _write_json(job, runs, slot_of, args.job)
        except BrokenPipeError:
            # `farm plan --json | head`: the reader left; stop quietly like other Unix tools.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0

    console = stdout()
    total = sum(counts.values())
    most = count_runs(job, list(slots.values()), most=True)
    total_text = f"{total}..{sum(most.values())}" if job.adaptive else str(total)
    console.print(
        f"[bold]{job.name}[/]: workload {job.workload}, {job.grid_spec.count()} points, repeat {repeat_text(job)}, "
        f"warm-up {job.warmup}, order {job.order}, placement {job.devices.placement} → {total_text} runs"
    )
    per = Table(title="runs per device", show_edge=False)
    per.add_column("device")
    per.add_column("runs", justify="right")
    for slot_id, n in counts.items():
        runs_text = f"{n}..{most[slot_id]}" if job.adaptive else str(n)
        per.add_row("any matching device" if slot_id == ANY_SLOT else slot_id, runs_text)
    console.print(per)
    first = Table(title=f"first {args.rows} runs", show_edge=False)
    for col in ("run_id", "device", "repeat", "params", "command"):
        first.add_column(col, overflow="fold")
    for r in itertools.islice(runs, max(args.rows, 0)):
        rendered = render(job, r, slot_of(r.slot_id, r.candidates), args.job)
        params = " ".join(f"{k}={as_text(v)}" for k, v in r.params.items())  # whole: folded, never cut
        first.add_row(
            r.run_id,
            r.slot_id or ANY_SLOT,
            f"w{r.repeat}" if r.warmup else str(r.repeat),
            params,
            shlex.join(rendered.argv),
        )
    console.print(first)
    return 0


def _write_json(
    job: JobSpec, runs: Iterator[RunSpec], slot_of: Callable[[str | None, tuple[str, ...]], Slot], source: str
) -> None:
    out = sys.stdout
    for r in runs:
        rendered = render(job, r, slot_of(r.slot_id, r.candidates), source)
        obj = {
            "run_id": r.run_id,
            "slot": r.slot_id or ANY_SLOT,
            "params": dict(r.params),
            "repeat": r.repeat,
            "warmup": r.warmup,
            "command": rendered.argv,
            "env": describe_env(rendered.env),
        }
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")
    out.flush()
