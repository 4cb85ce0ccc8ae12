"""``farm validate FILE…``: check job and inventory files; a one-line summary each, or every problem found."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from farm.errors import ConfigError
from farm.plan import count_runs
from farm.specs.inventory import Inventory, load_inventory
from farm.specs.job import load_job
from farm.specs.loading import read_yaml


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check job and inventory YAML files")
    p.add_argument("files", nargs="+", metavar="FILE", help="job or inventory YAML files")
    p.add_argument("--inventory", metavar="INV", help="also count runs per device against this inventory")
    p.add_argument("--check-artifacts", action="store_true", help="also require every artifact's src to exist")
    p.set_defaults(func=run)


def _is_inventory(data: dict[str, Any]) -> bool:
    return "devices" in data and isinstance(data["devices"], list) and "command" not in data


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
    data = read_yaml(path)
    if _is_inventory(data):
        inv = load_inventory(path)
        kinds: dict[str, int] = {}
        for dev in inv.devices:
            kinds[dev.kind] = kinds.get(dev.kind, 0) + 1
        kind_text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return f"{path}: ok: inventory, {len(inv.devices)} devices ({kind_text}), {len(inv.slots())} slots"
    job = load_job(path, check_artifacts=check_artifacts)
    points = job.grid_spec.count()
    per_point = f"{job.repeat} repeat{'s' if job.repeat != 1 else ''}" + (
        f" + {job.warmup} warm-up" if job.warmup else ""
    )
    text = f"{path}: ok: job {job.name!r}, {points} points × {per_point} = {points * (job.repeat + job.warmup)} runs"
    if inventory is not None:
        counts = count_runs(job, inventory.slots())
        if not counts:
            raise ConfigError.single(str(path), "devices", "matches no device of the inventory")
        where = "any matching device" if "*" in counts else f"each of {len(counts)} devices"
        text += f" on {where} ({sum(counts.values())} in all)"
    else:
        text += f" per device ({job.devices.placement})"
    return text
