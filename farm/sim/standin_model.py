"""What the scripted benchmark stand-ins of :mod:`farm.sim.workloads` share: cores, speed, run time, noise."""

from __future__ import annotations

import asyncio
import math
import random
import re

from farm.sim.shell_io import CommandContext

#: A command's environment variable on a virtual phone: a synthetic slowdown factor (``1.05``: 5 % slower) that the
#: llama.cpp and CoDL stand-ins divide their modelled CPU speed by, to rehearse regression detection
#: (``bench/regress.py``). A run that sets it prints ``farm-fp: fp_sim_slowdown=<factor>``, so its row says so.
SLOWDOWN_ENV = "FARM_SIM_SLOWDOWN"


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
    return sum(soc.core_speed(c) for c in set(cores)) / slowdown(ctx)


def slowdown(ctx: CommandContext) -> float:
    """The factor :data:`SLOWDOWN_ENV` asks for; 1 when unset or not a number in (0, 100]."""
    try:
        value = float(ctx.env.get(SLOWDOWN_ENV, "") or 1.0)
    except ValueError:
        return 1.0
    return value if 0.0 < value <= 100.0 else 1.0


def slowdown_line(ctx: CommandContext) -> str:
    """The fingerprint line a slowed-down run prints (empty when the stand-in runs at its modelled speed)."""
    factor = slowdown(ctx)
    return "" if factor == 1.0 else f"farm-fp: fp_sim_slowdown={factor:g}\n"


async def sleep_in_steps(ctx: CommandContext, seconds: float, steps: int, rss_from: int, rss_to: int) -> None:
    for k in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        ctx.proc.set_rss(rss_from + (rss_to - rss_from) * k // steps)


def noisy(rng: random.Random, value: float, sd: float) -> float:
    return value * math.exp(rng.gauss(0.0, sd))
