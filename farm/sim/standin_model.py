"""What the scripted benchmark stand-ins of :mod:`farm.sim.workloads` share: cores, speed, run time, noise."""

from __future__ import annotations

import asyncio
import math
import random
import re

from farm.sim.shell_io import CommandContext


def cores_for(ctx: CommandContext, threads: int, core_ids: str | None) -> list[int]:
    """The cores ``threads`` threads run on: pinned ids if given, else the big cores first within the mask."""
    soc = ctx.state.soc
    if core_ids:
        pinned = [int(c) for c in re.split(r"[,\s]+", core_ids.strip()) if c.isdigit() and int(c) in soc.cpus]
        if pinned:
            return [pinned[k % len(pinned)] for k in range(threads)]
    allowed = [c for c in sorted(soc.big, reverse=True) + sorted(soc.little) if ctx.proc.cpus_allowed >> c & 1]
    allowed = allowed or list(soc.cpus)
    return [allowed[k % len(allowed)] for k in range(threads)]


def effective_speed(ctx: CommandContext, cores: list[int]) -> float:
    """Σ core speed, where threads sharing one core share its speed (oversubscription gains nothing)."""
    soc = ctx.state.soc
    return sum(soc.core_speed(c) for c in set(cores))


async def sleep_in_steps(ctx: CommandContext, seconds: float, steps: int, rss_from: int, rss_to: int) -> None:
    for k in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        ctx.proc.set_rss(rss_from + (rss_to - rss_from) * k // steps)


def noisy(rng: random.Random, value: float, sd: float) -> float:
    return value * math.exp(rng.gauss(0.0, sd))
