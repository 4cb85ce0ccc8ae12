"""Toybox-like applets of the virtual phone that read and write its files; each runs as a child process.

``cat ls mkdir rm chmod mv cp touch sha256sum md5sum head grep stat``, each with the options toybox users reach
for first (see the handlers), not every option toybox has.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import posixpath
import re
import stat
import time

from farm.sim.filesystem import FsError
from farm.sim.shell_io import CommandContext, Handler
from farm.sim.state import PhoneState


def split_flags(argv: list[str], known: str) -> tuple[set[str], list[str]]:
    """Split combined short flags (``-rf``) from operands; stops at ``--``."""
    flags: set[str] = set()
    rest: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--":
            rest.extend(it)
            break
        if a.startswith("-") and len(a) > 1 and all(ch in known for ch in a[1:]):
            flags.update(a[1:])
        else:
            rest.append(a)
    return flags, rest


async def _cat(ctx: CommandContext) -> int:
    status = 0
    files = ctx.argv[1:]
    if not files:
        while chunk := await ctx.stdin.read():
            await ctx.out(chunk)
        return 0
    for f in files:
        try:
            await ctx.out(ctx.state.fs.read_bytes(ctx.path(f)))
        except FsError as exc:
            await ctx.err(f"cat: {f}: {exc.reason}\n")
            status = 1
    return status


def _mode_string(mode: int) -> str:
    kind = "d" if stat.S_ISDIR(mode) else "-"
    bits = "".join(ch if mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
    return kind + bits


async def _ls(ctx: CommandContext) -> int:
    flags, paths = split_flags(ctx.argv[1:], "laA1dhR")
    paths = paths or ["."]
    status = 0
    lines: list[str] = []

    def entry(name: str, full: str) -> str:
        if "l" not in flags:
            return name
        st = ctx.state.fs.stat(full)
        if st is None:
            return name
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(st.mtime))
        return f"{_mode_string(st.mode)} {st.nlink} shell shell {st.size:>8} {when} {name}"

    for p in paths:
        full = ctx.path(p)
        st = ctx.state.fs.stat(full)
        if st is None:
            await ctx.err(f"ls: {p}: No such file or directory\n")
            status = 1
            continue
        if st.is_dir and "d" not in flags:
            names = ctx.state.fs.listdir(full)
            if "a" in flags:
                names = [".", "..", *names]
            elif "A" not in flags:
                names = [n for n in names if not n.startswith(".")]
            if len(paths) > 1:
                lines.append(f"{p}:")
            lines.extend(entry(n, posixpath.join(full, n)) for n in names)
        else:
            lines.append(entry(p, full))
    if lines:
        await ctx.out("\n".join(lines) + "\n")
    return status


async def _mkdir(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    mode: int | None = None
    if "-m" in args:
        k = args.index("-m")
        mode = int(args[k + 1], 8)
        del args[k : k + 2]
    flags, dirs = split_flags(args, "p")
    status = 0
    for d in dirs:
        try:
            ctx.state.fs.mkdir(ctx.path(d), parents="p" in flags)
            if mode is not None:
                ctx.state.fs.chmod(ctx.path(d), mode)
        except FsError as exc:
            await ctx.err(f"mkdir: '{d}': {exc.reason}\n")
            status = 1
    return status


async def _rm(ctx: CommandContext) -> int:
    flags, paths = split_flags(ctx.argv[1:], "rRfv")
    status = 0
    for p in paths:
        try:
            ctx.state.fs.remove(ctx.path(p), recursive=bool(flags & {"r", "R"}))
        except FsError as exc:
            if "f" in flags and exc.errno == 2:
                continue
            await ctx.err(f"rm: {p}: {exc.reason}\n")
            status = 1
    return status


def _apply_symbolic(mode: int, spec: str) -> int | None:
    m = re.fullmatch(r"([ugoa]*)([+-=])([rwx]+)", spec)
    if not m:
        return None
    who = m[1] or "a"
    shifts = {"u": [6], "g": [3], "o": [0], "a": [6, 3, 0]}
    bits = sum({"r": 4, "w": 2, "x": 1}[c] for c in m[3])
    mask = sum(bits << s for w in who for s in shifts[w])
    if m[2] == "+":
        return mode | mask
    if m[2] == "-":
        return mode & ~mask
    return mask


async def _chmod(ctx: CommandContext) -> int:
    _, args = split_flags(ctx.argv[1:], "R")
    if len(args) < 2:
        await ctx.err("chmod: Need 2 arguments\n")
        return 1
    spec, files = args[0], args[1:]
    status = 0
    for f in files:
        st = ctx.state.fs.stat(ctx.path(f))
        if st is None:
            await ctx.err(f"chmod: {f}: No such file or directory\n")
            status = 1
            continue
        mode = int(spec, 8) if re.fullmatch(r"[0-7]{1,4}", spec) else _apply_symbolic(st.mode & 0o7777, spec)
        if mode is None:
            await ctx.err(f"chmod: {spec}: bad mode\n")
            return 1
        try:
            ctx.state.fs.chmod(ctx.path(f), mode)
        except FsError as exc:
            await ctx.err(f"chmod: {f}: {exc.reason}\n")
            status = 1
    return status


async def _mv(ctx: CommandContext) -> int:
    _, args = split_flags(ctx.argv[1:], "fin")
    if len(args) != 2:
        await ctx.err("mv: Need 2 arguments\n")
        return 1
    try:
        ctx.state.fs.rename(ctx.path(args[0]), ctx.path(args[1]))
    except (FsError, OSError) as exc:
        reason = exc.reason if isinstance(exc, FsError) else str(exc)
        await ctx.err(f"mv: {args[0]}: {reason}\n")
        return 1
    return 0


async def _cp(ctx: CommandContext) -> int:
    _, args = split_flags(ctx.argv[1:], "fp")
    if len(args) != 2:
        await ctx.err("cp: Need 2 arguments\n")
        return 1
    src, dst = ctx.path(args[0]), ctx.path(args[1])
    if ctx.state.fs.is_dir(dst):
        dst = posixpath.join(dst, posixpath.basename(src))
    try:
        ctx.state.fs.write_bytes(dst, ctx.state.fs.read_bytes(src))
    except FsError as exc:
        await ctx.err(f"cp: {exc.path}: {exc.reason}\n")
        return 1
    return 0


async def _touch(ctx: CommandContext) -> int:
    for f in ctx.argv[1:]:
        path = ctx.path(f)
        if not ctx.state.fs.exists(path):
            try:
                ctx.state.fs.write_bytes(path, b"")
            except FsError as exc:
                await ctx.err(f"touch: {f}: {exc.reason}\n")
                return 1
    return 0


def _digest_file(state: PhoneState, path: str, algo: str) -> str:
    h = hashlib.new(algo)
    if path.startswith(("/proc", "/sys")):
        h.update(state.fs.read_bytes(path))
        return h.hexdigest()
    host = state.fs.host_path(path)
    if host.is_dir():
        raise FsError(path, "Is a directory", 21)
    try:
        with host.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except FileNotFoundError as exc:
        raise FsError(path, "No such file or directory", 2) from exc
    return h.hexdigest()


def _digest_command(algo: str) -> Handler:
    async def digest(ctx: CommandContext) -> int:
        _, files = split_flags(ctx.argv[1:], "b")
        status = 0
        if not files:
            h = hashlib.new(algo, await ctx.stdin.read_all())
            await ctx.out(f"{h.hexdigest()}  -\n")
            return 0
        for f in files:
            try:
                # Hashing a 100 MB model takes a while: keep the phone's event loop serving other streams.
                hexdigest = await asyncio.to_thread(_digest_file, ctx.state, ctx.path(f), algo)
            except FsError as exc:
                await ctx.err(f"{ctx.argv[0]}: {f}: {exc.reason}\n")
                status = 1
                continue
            await ctx.out(f"{hexdigest}  {f}\n")
        return status

    return digest


async def _head(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    n = 10
    if args and args[0] == "-n" and len(args) > 1:
        n, args = int(args[1]), args[2:]
    elif args and re.fullmatch(r"-\d+", args[0]):
        n, args = int(args[0][1:]), args[1:]
    data = ctx.state.fs.read_bytes(ctx.path(args[0])) if args else await ctx.stdin.read_all()
    await ctx.out(b"".join(data.splitlines(keepends=True)[:n]))
    return 0


async def _grep(ctx: CommandContext) -> int:
    flags, args = split_flags(ctx.argv[1:], "EFvqic")
    if not args:
        await ctx.err("usage: grep [-EFvqic] PATTERN [FILE...]\n")
        return 2
    pattern = args[0] if "F" not in flags else re.escape(args[0])
    if "E" not in flags and "F" not in flags:
        pattern = pattern.replace(r"\|", "|")  # basic regex alternation as GNU/toybox accept it
    regex = re.compile(pattern, re.IGNORECASE if "i" in flags else 0)
    sources = args[1:]
    texts: list[bytes] = []
    if sources:
        for s in sources:
            try:
                texts.append(ctx.state.fs.read_bytes(ctx.path(s)))
            except FsError as exc:
                await ctx.err(f"grep: {s}: {exc.reason}\n")
    else:
        texts.append(await ctx.stdin.read_all())
    hits = [
        line
        for text in texts
        for line in text.decode(errors="replace").splitlines()
        if bool(regex.search(line)) != ("v" in flags)
    ]
    if "q" not in flags:
        await ctx.out(f"{len(hits)}\n" if "c" in flags else "".join(h + "\n" for h in hits))
    return 0 if hits else 1


async def _stat(ctx: CommandContext) -> int:
    args = ctx.argv[1:]
    fmt = None
    if len(args) >= 2 and args[0] == "-c":
        fmt, args = args[1], args[2:]
    status = 0
    for f in args:
        st = ctx.state.fs.stat(ctx.path(f))
        if st is None:
            await ctx.err(f"stat: '{f}': No such file or directory\n")
            status = 1
            continue
        if fmt is None:
            await ctx.out(f"  File: {f}\n  Size: {st.size}\n Mode: ({st.mode & 0o7777:04o}/{_mode_string(st.mode)})\n")
            continue
        values = {
            "s": str(st.size),
            "n": f,
            "Y": str(st.mtime),
            "a": f"{st.mode & 0o7777:o}",
            "A": _mode_string(st.mode),
            "F": "directory" if st.is_dir else "regular file",
        }
        await ctx.out(re.sub(r"%([snYaAF])", functools.partial(_format_field, values), fmt) + "\n")
    return status


def _format_field(values: dict[str, str], m: re.Match[str]) -> str:
    return values[m[1]]


FILE_APPLETS: dict[str, Handler] = {
    "cat": _cat,
    "ls": _ls,
    "mkdir": _mkdir,
    "rm": _rm,
    "chmod": _chmod,
    "mv": _mv,
    "cp": _cp,
    "touch": _touch,
    "sha256sum": _digest_command("sha256"),
    "md5sum": _digest_command("md5"),
    "head": _head,
    "grep": _grep,
    "stat": _stat,
}
