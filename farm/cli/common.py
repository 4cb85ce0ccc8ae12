"""Helpers shared by CLI commands: loading a job or inventory from the command line, output consoles."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
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
    """The results root from ``--results``, ``$FARM_RESULTS`` or the default; a URI carrying a credential is
    refused (exit 2) before anything runs."""
    from farm.results.location import refuse_credentials

    return refuse_credentials(arg or os.environ.get("FARM_RESULTS") or DEFAULT_RESULTS)


def port(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535 (a bad value is a usage error, exit 2, not a failure later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port (1-65535), got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (1-65535), got {value}")
    return value


def non_negative(name: str, below: float | None = None) -> Callable[[str], float]:
    """An argparse type for option ``name``: a finite number >= 0, and under ``below`` if given (a bad value is a
    usage error, exit 2)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if below is not None and not 0 <= value < below:
            raise argparse.ArgumentTypeError(f"{name} must be in [0, {below:g}), got {text!r}")
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{name} must be a finite number >= 0, got {text!r}")
        return value

    return parse


def port_or_zero(text: str) -> int:
    """Like :func:`port`, with 0 meaning "any free port"."""
    return 0 if text.strip() == "0" else port(text)
