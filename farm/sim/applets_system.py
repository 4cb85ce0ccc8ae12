"""Toybox-like applets of the virtual phone about the system and its processes; each runs as a child process.

``getprop sleep taskset uname nproc id env date ps timeout dumpsys cmd``, each with the options toybox users
reach for first (see the handlers), not every option toybox has.
"""

from __future__ import annotations

import asyncio
import time

from farm.sim.applets_files import split_flags
from farm.sim.processes import SIGNALS
from farm.sim.shell_builtins import parse_signal
from farm.sim.shell_io import CommandContext, Handler


async def _getprop(ctx: CommandContext) -> int:
    props = ctx.state.props
    args = ctx.argv[1:]
    if not args:
        await ctx.out("".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items())))
    else:
        await ctx.out(props.get(args[0], args[1] if len(args) > 1 else "") + "\n")
    return 0


async def _sleep(ctx: CommandContext) -> int:
    try:
        seconds = float(ctx.argv[1]) if len(ctx.argv) > 1 else -1
    except ValueError:
        seconds = -1
    if seconds < 0:
        await ctx.err("sleep: bad duration\n")
        return 1
    await asyncio.sleep(seconds)
    return 0


async def _taskset(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    if args and args[0] == "-p":
        if len(args) == 2:
            proc = ctx.state.procs.get(int(args[1]))
            if proc is None:
                await ctx.err(f"taskset: pid {args[1]}: No such process\n")
                return 1
            await ctx.out(f"pid {proc.pid}'s affinity mask: {proc.cpus_allowed:x}\n")
            return 0
        if len(args) == 3:
            proc = ctx.state.procs.get(int(args[2]))
            if proc is None:
                await ctx.err(f"taskset: pid {args[2]}: No such process\n")
                return 1
            proc.cpus_allowed = int(args[1], 16)
            return 0
    if len(args) < 2:
        await ctx.err("usage: taskset [-ap] [mask] [PID | cmd [args...]]\n")
        return 1
    try:
        mask = int(args[0], 16)
    except ValueError:
        await ctx.err(f"taskset: bad mask '{args[0]}'\n")
        return 1
    valid = sum(1 << c for c in ctx.state.soc.cpus)
    if not mask & valid:
        await ctx.err("taskset: sched_setaffinity: Invalid argument\n")
        return 1
    # taskset execs its command: same pid, new affinity.
    ctx.proc.cpus_allowed = mask & valid
    return await ctx.session.execute(args[1:], ctx.env, ctx.stdin, ctx.stdout, ctx.stderr, as_proc=ctx.proc)


async def _uname(ctx: CommandContext) -> int:
    flags, _ = split_flags(ctx.argv[1:], "asnrvm")
    soc = ctx.state.soc
    fields = {"s": "Linux", "n": "localhost", "r": soc.kernel, "v": "#1 SMP PREEMPT", "m": "aarch64"}
    order = "snrvm" if "a" in flags else ("".join(f for f in "snrvm" if f in flags) or "s")
    await ctx.out(" ".join(fields[f] for f in order) + "\n")
    return 0


async def _nproc(ctx: CommandContext) -> int:
    await ctx.out(f"{bin(ctx.proc.cpus_allowed & sum(1 << c for c in ctx.state.soc.cpus)).count('1')}\n")
    return 0


async def _id(ctx: CommandContext) -> int:
    if ctx.argv[1:] == ["-u"]:
        await ctx.out(f"{ctx.proc.uid}\n")
    elif ctx.proc.uid == 0:
        await ctx.out("uid=0(root) gid=0(root) groups=0(root)\n")
    else:
        await ctx.out("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),3003(inet)\n")
    return 0


async def _env(ctx: CommandContext) -> int:
    if len(ctx.argv) > 1:
        env = dict(ctx.env)
        args = ctx.argv[1:]
        while args and "=" in args[0]:
            k, _, v = args.pop(0).partition("=")
            env[k] = v
        if args:
            return await ctx.session.execute(args, env, ctx.stdin, ctx.stdout, ctx.stderr, as_proc=ctx.proc)
        ctx.env = env
    await ctx.out("".join(f"{k}={v}\n" for k, v in sorted(ctx.env.items())))
    return 0


async def _ps(ctx: CommandContext) -> int:
    """toybox ``ps`` (``-A`` accepted; ``-p PID`` filters): the phone's own processes only."""
    args = ctx.argv[1:]
    wanted = (
        {int(p) for a in args[args.index("-p") + 1 : args.index("-p") + 2] for p in a.split(",")}
        if "-p" in args
        else None
    )
    lines = ["USER            PID   PPID     VSZ    RSS WCHAN            ADDR S NAME"]
    for p in sorted(ctx.state.procs.running(), key=lambda p: p.pid):
        if wanted is None or p.pid in wanted:
            lines.append(
                f"shell {p.pid:>13} {p.ppid:>6} {p.vm_size_kb:>7} {p.vm_rss_kb:>6} 0                   0 "
                f"{p.state[0]} {p.name}"
            )
    await ctx.out("\n".join(lines) + "\n")
    return 0 if wanted is None or len(lines) > 1 else 1


async def _timeout(ctx: CommandContext) -> int:
    """toybox ``timeout [-s SIG] DURATION COMMAND…``: 124 when the command had to be signalled."""
    args = ctx.argv[1:]
    sig = SIGNALS["TERM"]
    if args[:1] == ["-s"] and len(args) > 1:
        parsed = parse_signal(args[1])
        if parsed is None:
            await ctx.err(f"timeout: unknown signal {args[1]}\n")
            return 125
        sig, args = parsed, args[2:]
    try:
        seconds = float(args[0].rstrip("s")) if args else -1.0
    except ValueError:
        seconds = -1.0
    if seconds < 0 or len(args) < 2:
        await ctx.err("usage: timeout [-s SIG] DURATION COMMAND...\n")
        return 125
    child = asyncio.get_running_loop().create_task(
        ctx.session.execute(args[1:], ctx.env, ctx.stdin, ctx.stdout, ctx.stderr, parent=ctx.proc)
    )
    done, _ = await asyncio.wait({child}, timeout=seconds or None)
    if done:
        return child.result()
    for proc in ctx.state.procs.running():
        if proc.ppid == ctx.proc.pid:
            ctx.state.procs.signal(proc.pid, sig)
    await asyncio.wait({child})
    return 124


_THERMAL_TYPES = {"cpu": 0, "gpu": 1, "battery": 2, "xo-therm": 3}


async def _dumpsys(ctx: CommandContext) -> int:
    """``dumpsys thermalservice`` (the HAL temperature list); other services are reported as missing."""
    service = ctx.argv[1] if len(ctx.argv) > 1 else ""
    if service != "thermalservice":
        await ctx.err(f"Can't find service: {service}\n")
        return 1
    thermal = ctx.state.thermal
    lines = ["IsStatusOverride: false", "ThermalEventListeners:", "Thermal Status: 0", "Current temperatures from HAL:"]
    for zone, temp in zip(thermal.zones, thermal.temperatures_c(), strict=True):
        kind = next((v for k, v in _THERMAL_TYPES.items() if zone.type.startswith(k)), 3)
        lines.append(f"\tTemperature{{mValue={temp:.1f}, mType={kind}, mName={zone.type}, mStatus=0}}")
    await ctx.out("\n".join(lines) + "\n")
    return 0


async def _date(ctx: CommandContext) -> int:
    if len(ctx.argv) > 1 and ctx.argv[1].startswith("+"):
        fmt = ctx.argv[1][1:]
        now = time.time()
        text = fmt.replace("%s", str(int(now))).replace("%N", f"{int(now % 1 * 1e9):09d}")
        await ctx.out(time.strftime(text, time.localtime(now)) + "\n")
    else:
        await ctx.out(time.strftime("%a %b %d %H:%M:%S %Z %Y") + "\n")
    return 0


async def _cmd(ctx: CommandContext) -> int:
    """``cmd package install -S N``: what ``adb install`` runs when the phone advertises ``cmd``."""
    args = ctx.argv[1:]
    if args[:2] == ["package", "install"] and "-S" in args:
        size = int(args[args.index("-S") + 1])
        data = await ctx.stdin.read_exactly(size)
        if len(data) != size:
            await ctx.out("Failure [INSTALL_FAILED_INVALID_APK: short read]\n")
            return 1
        await ctx.out("Success\n")
        return 0
    await ctx.err(f"cmd: Can't find service: {args[0] if args else ''}\n")
    return 20


SYSTEM_APPLETS: dict[str, Handler] = {
    "getprop": _getprop,
    "sleep": _sleep,
    "taskset": _taskset,
    "uname": _uname,
    "nproc": _nproc,
    "id": _id,
    "env": _env,
    "date": _date,
    "cmd": _cmd,
    "ps": _ps,
    "timeout": _timeout,
    "dumpsys": _dumpsys,
}
