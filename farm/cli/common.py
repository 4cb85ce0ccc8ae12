"""Helpers shared by CLI commands: loading a job or inventory from the command line, output consoles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from farm.specs.inventory import Inventory, load_inventory, local_inventory

DEFAULT_RESULTS = "./farm-results"


def stdout() -> Console:
    return Console(soft_wrap=True, highlight=False)


def stderr() -> Console:
    return Console(file=sys.stderr, soft_wrap=True, highlight=False)


def inventory_from(path: str | None) -> Inventory:
    """The inventory named on the command line, ``$FARM_INVENTORY``, or this host as one device."""
    chosen = path or os.environ.get("FARM_INVENTORY")
    return load_inventory(Path(chosen)) if chosen else local_inventory()


def results_root(arg: str | None) -> str:
    return arg or os.environ.get("FARM_RESULTS") or DEFAULT_RESULTS
