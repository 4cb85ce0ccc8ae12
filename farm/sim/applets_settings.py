"""Applets of the virtual phone that read and change its tunable state (:mod:`farm.sim.device_settings`).

``settings``, ``input keyevent``, ``cmd power`` / ``cmd connectivity`` (over the stock ``cmd``), ``dumpsys power``
(over the stock ``dumpsys``) and, on a rooted phone only, ``su``.
"""

from __future__ import annotations

from farm.sim.device_settings import ROOT_UID
from farm.sim.shell_builtins import BUILTINS
from farm.sim.shell_io import CommandContext, CommandTable, Handler


async def _settings(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    store = ctx.state.device.settings
    if len(args) >= 3 and args[0] in ("get", "put", "delete") and args[1] in store:
        table = store[args[1]]
        if args[0] == "get":
            await ctx.out(table.get(args[2], "null") + "\n")
        elif args[0] == "delete":
            await ctx.out(f"Deleted {int(table.pop(args[2], None) is not None)} rows\n")
        elif len(args) >= 4:
            table[args[2]] = args[3]
        else:
            await ctx.err("settings: put needs a value\n")
            return 1
        return 0
    await ctx.err("usage:  settings [--user <USER_ID> | current] get|put|delete namespace key [value]\n")
    return 1


async def _input(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    if args[:1] != ["keyevent"] or len(args) < 2:
        await ctx.err("Usage: input [<source>] keyevent <key code number or name> ...\n")
        return 1
    device = ctx.state.device
    for key in args[1:]:
        if key in ("KEYCODE_SLEEP", "223"):
            device.awake = False
        elif key in ("KEYCODE_WAKEUP", "224"):
            device.awake = True
        elif key in ("KEYCODE_POWER", "26"):
            device.awake = not device.awake
    return 0


def wrap_cmd(original: Handler) -> Handler:
    """``cmd power …`` and ``cmd connectivity airplane-mode …`` on top of the stock ``cmd`` (package install)."""

    async def cmd(ctx: CommandContext) -> int:
        args = ctx.argv[1:]
        device = ctx.state.device
        if args[:2] == ["power", "set-fixed-performance-mode-enabled"] and len(args) == 3:
            if args[2] not in ("true", "false"):
                await ctx.err(f"Error: unknown value {args[2]}\n")
                return 255
            device.fixed_performance = args[2] == "true"
            return 0
        if args[:2] == ["connectivity", "airplane-mode"]:
            table = device.settings["global"]
            if len(args) == 2:
                await ctx.out("enabled\n" if table.get("airplane_mode_on") == "1" else "disabled\n")
                return 0
            if args[2] in ("enable", "disable"):
                table["airplane_mode_on"] = "1" if args[2] == "enable" else "0"
                return 0
            await ctx.err(f"Invalid argument: {args[2]}\n")
            return 255
        return await original(ctx)

    return cmd


def wrap_dumpsys(original: Handler) -> Handler:
    """``dumpsys power`` (the wakefulness line and the plug state) on top of the stock ``dumpsys``."""

    async def dumpsys(ctx: CommandContext) -> int:
        if ctx.argv[1:2] != ["power"]:
            return await original(ctx)
        device = ctx.state.device
        wake = "Awake" if device.awake else "Asleep"
        stay = device.settings["global"].get("stay_on_while_plugged_in", "0")
        await ctx.out(
            "POWER MANAGER (dumpsys power)\n\nPower Manager State:\n"
            f"  mWakefulness={wake}\n  mIsPowered={'true' if device.charging_enabled else 'false'}\n"
            f"  mStayOnWhilePluggedInSetting={stay}\n"
        )
        return 0

    return dumpsys


async def _su(ctx: CommandContext) -> int:
    """``su -c SCRIPT`` (Magisk and most su binaries) or ``su 0 COMMAND…`` (AOSP userdebug): run as root."""
    args = ctx.argv[1:]
    if args[:1] == ["-c"] and len(args) >= 2:
        argv = ["sh", "-c", args[1]]
    elif args[:1] in (["0"], ["root"]) and len(args) >= 2:
        argv = args[1:]
    else:
        await ctx.err("usage: su [-c SCRIPT | 0 COMMAND...]\n")
        return 1
    ctx.proc.uid = ROOT_UID
    if argv[0] == "sh":
        return await BUILTINS["sh"](CommandContext(ctx.state, ctx.proc, argv, ctx.env, ctx.cwd, ctx.stdin, ctx.stdout,
                                        ctx.stderr, ctx.session))  # fmt: skip
    return await ctx.session.execute(argv, ctx.env, ctx.stdin, ctx.stdout, ctx.stderr, as_proc=ctx.proc)


def register_settings_commands(table: CommandTable, *, rooted: bool) -> None:
    """Add the settings commands to a phone's table (and ``su`` when the phone is rooted)."""
    table.register("settings", _settings)
    table.register("input", _input)
    table.register("cmd", wrap_cmd(table.commands["cmd"]))
    table.register("dumpsys", wrap_dumpsys(table.commands["dumpsys"]))
    if rooted:
        table.register("su", _su)
