"""``farm validate FILE…``: check job and inventory files; a one-line summary each, or every problem found."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from farm.errors import ConfigError
from farm.plan import check_job_on, count_runs, repeat_text
from farm.specs.inventory import Inventory, inventory_from_document, load_inventory
from farm.specs.job import JobSpec, job_from_document
from farm.specs.loading import read_document

# Keys only a job has: a file with ``devices`` and none of these is an inventory, whatever shape ``devices`` has.
_JOB_KEYS = frozenset(JobSpec.model_fields) - {"devices"}


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check job and inventory YAML files")
    p.add_argument("files", nargs="+", metavar="FILE", help="job or inventory YAML files")
    p.add_argument("--inventory", metavar="INV", help="also count runs per device against this inventory")
    p.add_argument("--check-artifacts", action="store_true", help="also require every artifact's src to exist")
    p.set_defaults(func=run)


def is_inventory(data: dict[str, Any]) -> bool:
    return "devices" in data and not _JOB_KEYS & set(data)


def run(args: argparse.Namespace) -> int:
    errors: list[str] = []
    inventory: Inventory | None = None
    if args.inventory:
        try:
            inventory = load_inventory(args.inventory)
        except ConfigError as exc:
            errors.extend(exc.lines())
    for name in args.files:
        try:
            print(_summary(Path(name), inventory, args.check_artifacts))
        except ConfigError as exc:
            errors.extend(exc.lines())
    for line in errors:
        print(line, file=sys.stderr)
    return 2 if errors else 0


def _summary(path: Path, inventory: Inventory | None, check_artifacts: bool) -> str:
    doc = read_document(path)
    if is_inventory(doc.data):
        inv = inventory_from_document(doc)
        kinds: dict[str, int] = {}
        for dev in inv.devices:
            kinds[dev.kind] = kinds.get(dev.kind, 0) + 1
        kind_text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return f"{path}: ok: inventory, {len(inv.devices)} devices ({kind_text}), {len(inv.slots())} slots"
    job = job_from_document(doc, path.resolve().parent, check_artifacts=check_artifacts)
    points = job.grid_spec.count()
    per_point = repeat_text(job, " repeats" if job.repeat_max != 1 else " repeat") + (
        f" + {job.warmup} warm-up" if job.warmup else ""
    )
    runs = f"{points * (job.repeat_min + job.warmup)}" + (
        f"..{points * (job.repeat_max + job.warmup)}" if job.adaptive else ""
    )
    text = f"{path}: ok: job {job.name!r}, {points} points × {per_point} = {runs} runs"
    if inventory is not None:
        check_job_on(job, inventory.slots(), str(path))
        counts = count_runs(job, inventory.slots())
        where = "any matching device" if "*" in counts else f"each of {len(counts)} devices"
        text += f" on {where} ({sum(counts.values())} in all)"
    else:
        text += f" per device ({job.devices.placement})"
    return text
