"""The builtins of the virtual phone's ``sh``; they run inside the shell process itself.

``cd``, ``export``, ``unset``, ``exec``, ``exit``, ``sh -c``, ``kill``, ``echo``, ``pwd``, ``true``, ``false``,
``:``, ``test``/``[``.
"""

from __future__ import annotations

from farm.sim.processes import SIGNALS
from farm.sim.shell_io import SH, CommandContext, Handler


class ShellExit(Exception):
    """``exit`` or ``exec``: the shell stops with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status


async def _cd(ctx: CommandContext) -> int:
    target = ctx.path(ctx.argv[1] if len(ctx.argv) > 1 else "/")
    if not ctx.state.fs.is_dir(target):
        await ctx.err(f"{SH}: cd: {ctx.argv[1]}: No such file or directory\n")
        return 2
    ctx.session.cwd = target
    return 0


async def _export(ctx: CommandContext) -> int:
    for arg in ctx.argv[1:]:
        name, eq, value = arg.partition("=")
        if eq:
            ctx.session.vars[name] = value
        ctx.session.exported.add(name)
    return 0


async def _unset(ctx: CommandContext) -> int:
    for name in ctx.argv[1:]:
        ctx.session.vars.pop(name, None)
        ctx.session.exported.discard(name)
    return 0


async def _exec(ctx: CommandContext) -> int:
    if len(ctx.argv) == 1:
        return 0
    status = await ctx.session.execute(ctx.argv[1:], ctx.env, ctx.stdin, ctx.stdout, ctx.stderr, as_proc=ctx.proc)
    raise ShellExit(status)


async def _exit(ctx: CommandContext) -> int:
    raise ShellExit(int(ctx.argv[1]) if len(ctx.argv) > 1 and ctx.argv[1].isdigit() else ctx.session.status)


async def _true(ctx: CommandContext) -> int:
    return 0


async def _false(ctx: CommandContext) -> int:
    return 1


async def _echo(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    newline = True
    if args and args[0] == "-n":
        newline, args = False, args[1:]
    await ctx.out(" ".join(args) + ("\n" if newline else ""))
    return 0


async def _pwd(ctx: CommandContext) -> int:
    await ctx.out(ctx.session.cwd + "\n")
    return 0


def parse_signal(spec: str) -> int | None:
    spec = spec.upper().removeprefix("SIG")
    if spec.isdigit():
        return int(spec)
    return SIGNALS.get(spec)


async def _kill(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    sig = SIGNALS["TERM"]
    if args[:1] == ["-l"]:
        await ctx.out(" ".join(SIGNALS) + "\n")
        return 0
    spec: str | None = None
    if args[:1] == ["-s"] and len(args) > 1:
        spec, args = args[1], args[2:]
    elif args and args[0].startswith("-") and args[0] != "--" and len(args) > 1:
        # "kill -9 1234", "kill -KILL -1234": the first word is the signal, a later "-N" is a process group.
        spec, args = args[0][1:], args[1:]
    if spec is not None:
        parsed = parse_signal(spec)
        if parsed is None:
            await ctx.err(f"kill: unknown signal {spec}\n")
            return 1
        sig = parsed
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        await ctx.err("usage: kill [-s signame | -signum | -signame] { job | pid | pgrp } ...\n")
        return 1
    status = 0
    for target in args:
        try:
            pid = int(target)
        except ValueError:
            await ctx.err(f"kill: {target}: arguments must be process or job IDs\n")
            status = 1
            continue
        if not ctx.state.procs.signal(pid, sig):
            await ctx.err(f"kill: {target}: No such process\n")
            status = 1
    return status


async def _sh(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    if not args or args[0] != "-c" or len(args) < 2:
        await ctx.err(f"{SH}: only 'sh -c SCRIPT [ARG…]' is supported by the farm virtual phone\n")
        return 2
    proc = ctx.state.procs.spawn([SH, "-c", args[1]], ctx.proc)
    session = ctx.session.subshell(proc, ctx.env)
    session.args = args[3:]
    return await ctx.state.procs.run(proc, session.run_script(args[1], ctx.stdin, ctx.stdout, ctx.stderr))


async def _test(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    if ctx.argv[0] == "[":
        if not args or args[-1] != "]":
            await ctx.err("[: missing ]\n")
            return 2
        args = args[:-1]
    negate = bool(args) and args[0] == "!"
    if negate:
        args = args[1:]
    result: bool
    if len(args) == 1:
        result = args[0] != ""
    elif len(args) == 2:
        op, operand = args
        st = ctx.state.fs.stat(ctx.path(operand)) if op in ("-e", "-f", "-d", "-x", "-s", "-r") else None
        result = {
            "-e": st is not None,
            "-f": st is not None and not st.is_dir,
            "-d": st is not None and st.is_dir,
            "-x": st is not None and bool(st.mode & 0o111),
            "-s": st is not None and st.size > 0,
            "-r": st is not None,
            "-n": operand != "",
            "-z": operand == "",
        }.get(op, False)
    elif len(args) == 3:
        a, op, b = args
        try:
            num = {
                "-eq": int(a) == int(b),
                "-ne": int(a) != int(b),
                "-lt": int(a) < int(b),
                "-gt": int(a) > int(b),
                "-le": int(a) <= int(b),
                "-ge": int(a) >= int(b),
            }
        except ValueError:
            num = {}
        result = {"=": a == b, "==": a == b, "!=": a != b, **num}.get(op, False)
    else:
        result = False
    return 0 if result != negate else 1


BUILTINS: dict[str, Handler] = {
    "cd": _cd,
    "export": _export,
    "unset": _unset,
    "exec": _exec,
    "exit": _exit,
    "true": _true,
    ":": _true,
    "false": _false,
    "echo": _echo,
    "pwd": _pwd,
    "kill": _kill,
    "sh": _sh,
    "test": _test,
    "[": _test,
}
