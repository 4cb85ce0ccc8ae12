"""The virtual phone's shell: a tiny ``sh`` interpreter and the programmable table of Python command handlers.

Nothing here runs a host program. Supported syntax (enough for what the farm sends): words with ``'…'``,
``"…"`` and ``\\`` quoting; ``$VAR``, ``${VAR}``, ``${VAR:+word}``, ``${VAR:-word}`` (and without the colon),
``$$``, ``$?``; ``NAME=value`` prefixes and bare
assignments; ``;``, ``&&``, ``||``, newlines; ``|`` (stages run one after another, the output of one fed to
the next); redirections ``>``, ``>>``, ``<``, ``2>``, ``2>>``, ``2>&1``, ``>&2``; globs (``*``, ``?``,
``[…]``) on unquoted words; the builtins ``cd``, ``export``, ``unset``, ``exec``, ``exit``, ``sh -c``,
``kill``, ``echo``, ``true``, ``false``, ``test``/``[``. Anything else (``if``, ``for``, ``$(…)``,
backgrounding with ``&``, subshells) is refused with exit status 2 and a message on stderr, rather than
misinterpreted.

A command word without ``/`` is looked up in :class:`CommandTable`; an unknown one ends with status 127 and
``/system/bin/sh: NAME: inaccessible or not found`` like Android's mksh. A word with ``/`` must name an
executable file on the phone; the scripted benchmark stand-ins (see :mod:`farm.sim.workloads`) are chosen by
its basename. Table commands of a stock phone (:func:`default_table`): ``cat ls mkdir rm chmod mv cp touch
sha256sum md5sum getprop sleep taskset uname nproc id env head grep stat date ps timeout dumpsys cmd``, each
with the options toybox users reach for first (see the handlers), not every option toybox has.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import hashlib
import logging
import posixpath
import re
import stat
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from farm.sim.filesystem import FsError, normalize
from farm.sim.processes import SIGNALS, Process
from farm.sim.state import PhoneState

logger = logging.getLogger(__name__)

SH = "/system/bin/sh"


# ---------------------------------------------------------------------------------------------------------
# I/O plumbing
# ---------------------------------------------------------------------------------------------------------
class Sink(Protocol):
    """Where a command's stdout or stderr goes."""

    async def write(self, data: bytes) -> None: ...


class BufferSink:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data


class NullSink:
    async def write(self, data: bytes) -> None:
        return None


class FileSink:
    """Appends to a phone file (the target of ``>`` / ``>>``)."""

    def __init__(self, state: PhoneState, path: str, append: bool) -> None:
        self._host = state.fs.open_for_write(path, append=append)
        self._host.touch()

    async def write(self, data: bytes) -> None:
        with self._host.open("ab") as f:
            f.write(data)


class InputPipe:
    """A command's stdin: bytes fed by the stream or a previous pipeline stage, then EOF."""

    def __init__(self, data: bytes | None = None) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        if data is not None:
            if data:
                self._queue.put_nowait(data)
            self._queue.put_nowait(b"")

    def feed(self, data: bytes) -> None:
        if data:
            self._queue.put_nowait(data)

    def close(self) -> None:
        self._queue.put_nowait(b"")

    async def read(self) -> bytes:
        """The next piece of input, ``b""`` at EOF (and on every later call)."""
        data = await self._queue.get()
        if not data:
            self._queue.put_nowait(b"")
        return data

    async def read_all(self) -> bytes:
        out = bytearray()
        while chunk := await self.read():
            out += chunk
        return bytes(out)

    async def read_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = await self.read()
            if not chunk:
                break
            out += chunk
        return bytes(out)


@dataclass
class CommandContext:
    """What a handler gets: its arguments, environment, I/O and the phone."""

    state: PhoneState
    proc: Process
    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdin: InputPipe
    stdout: Sink
    stderr: Sink
    session: ShellSession

    async def out(self, text: str | bytes) -> None:
        await self.stdout.write(text.encode() if isinstance(text, str) else text)

    async def err(self, text: str | bytes) -> None:
        await self.stderr.write(text.encode() if isinstance(text, str) else text)

    def path(self, p: str) -> str:
        return normalize(p, self.cwd)


Handler = Callable[[CommandContext], Coroutine[Any, Any, int]]


@dataclass
class CommandTable:
    """Command name → handler, plus basename-prefix matches for scripted binaries pushed to the phone."""

    commands: dict[str, Handler] = field(default_factory=dict)
    binaries: list[tuple[str, Handler]] = field(default_factory=list)

    def register(self, name: str, handler: Handler) -> None:
        """Make ``name`` (no ``/``) a command, like a toybox applet on ``PATH``."""
        self.commands[name] = handler

    def register_binary(self, basename_prefix: str, handler: Handler) -> None:
        """Run ``handler`` for any pushed executable whose basename starts with ``basename_prefix``."""
        self.binaries.insert(0, (basename_prefix, handler))

    def binary_for(self, path: str) -> Handler | None:
        base = posixpath.basename(path)
        for prefix, handler in self.binaries:
            if base.startswith(prefix):
                return handler
        return None


# ---------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------
class ShellSyntaxError(Exception):
    pass


# A word is a list of (text, kind) segments; kind is "lit" (unquoted), "dq" (double quoted) or "sq".
Word = list[tuple[str, str]]


@dataclass
class Redirect:
    fd: int  # 0, 1 or 2
    op: str  # "<", ">", ">>", ">&"
    target: Word | int


@dataclass
class SimpleCommand:
    assigns: list[tuple[str, Word]] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)


Pipeline = list[SimpleCommand]
_OPS = ("&&", "||", ";;", ";", "|", "&", "\n", "(", ")")
_UNSUPPORTED_WORDS = {
    "if",
    "then",
    "fi",
    "for",
    "while",
    "until",
    "do",
    "done",
    "case",
    "esac",
    "function",
    "{",
    "}",
}
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_REDIR = re.compile(r"^(\d*)(>>|>&|<|>)")


def _tokenize(line: str) -> list[Word | str]:
    """Split into words and operator strings (``;``, ``&&``, ``>``…); quotes kept as segment kinds."""
    tokens: list[Word | str] = []
    word: Word = []
    buf = ""
    i, n = 0, len(line)
    started = False

    def flush_word() -> None:
        nonlocal word, buf, started
        if buf:
            word.append((buf, "lit"))
            buf = ""
        if started:
            tokens.append(word)
        word, started = [], False

    while i < n:
        c = line[i]
        if c in " \t":
            flush_word()
            i += 1
        elif c == "#" and not started:
            while i < n and line[i] != "\n":
                i += 1
        elif c == "\\":
            if i + 1 < n and line[i + 1] == "\n":
                i += 2
                continue
            if buf:
                word.append((buf, "lit"))
                buf = ""
            word.append((line[i + 1 : i + 2], "sq"))
            started = True
            i += 2
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated '")
            if buf:
                word.append((buf, "lit"))
                buf = ""
            word.append((line[i + 1 : end], "sq"))
            started = True
            i = end + 1
        elif c == '"':
            j, text = i + 1, ""
            while j < n and line[j] != '"':
                if line[j] == "\\" and j + 1 < n and line[j + 1] in '"\\$`':
                    text += "\\" + line[j + 1] if line[j + 1] == "$" else line[j + 1]
                    j += 2
                else:
                    text += line[j]
                    j += 1
            if j >= n:
                raise ShellSyntaxError('unterminated "')
            if "$(" in text or "`" in text:
                raise ShellSyntaxError("command substitution")
            if buf:
                word.append((buf, "lit"))
                buf = ""
            word.append((text, "dq"))
            started = True
            i = j + 1
        elif c == "`" or line.startswith("$(", i):
            raise ShellSyntaxError("command substitution")
        elif c in "&|;\n()<>":
            # A digit run that starts a word right before < or > is a file descriptor (2>), not an argument.
            fd = ""
            if c in "<>" and buf.isdigit() and not word:
                fd, buf, started = buf, "", False
            else:
                flush_word()
            if c in "<>":
                m = _REDIR.match(fd + line[i : i + 2])
                assert m is not None  # the pattern accepts any digits followed by < or >
                tokens.append(m.group(0))
                i += len(m.group(0)) - len(fd)
                continue
            op = next(o for o in _OPS if line.startswith(o, i))
            tokens.append(op)
            i += len(op)
        else:
            buf += c
            started = True
            i += 1
    flush_word()
    return tokens


def parse(line: str) -> list[tuple[str, Pipeline]]:
    """``[(connector, pipeline)]`` where connector (``;``, ``&&``, ``||``) joins it to the previous one."""
    tokens = _tokenize(line)
    result: list[tuple[str, Pipeline]] = []
    connector = ";"
    pipeline: Pipeline = []
    cmd = SimpleCommand()

    def end_command() -> None:
        nonlocal cmd
        if cmd.words or cmd.assigns or cmd.redirects:
            pipeline.append(cmd)
        elif pipeline:
            raise ShellSyntaxError("missing command after |")
        cmd = SimpleCommand()

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if isinstance(tok, str):
            if tok in ("&", "(", ")", ";;"):
                raise ShellSyntaxError(f"'{tok.strip()}'")
            m = _REDIR.match(tok)
            if m:
                if i + 1 >= len(tokens) or isinstance(tokens[i + 1], str):
                    raise ShellSyntaxError(f"missing target after {tok}")
                target_word = tokens[i + 1]
                assert not isinstance(target_word, str)
                fd = int(m[1]) if m[1] else (0 if m[2] == "<" else 1)
                flat = "".join(t for t, _ in target_word)
                if m[2] == ">&":
                    if flat not in ("1", "2"):
                        raise ShellSyntaxError(f"bad fd {flat}")
                    cmd.redirects.append(Redirect(fd, ">&", int(flat)))
                else:
                    cmd.redirects.append(Redirect(fd, m[2], target_word))
                i += 2
                continue
            if tok == "|":
                end_command()
                if not pipeline:
                    raise ShellSyntaxError("'|'")
                i += 1
                continue
            end_command()
            if pipeline:
                result.append((connector, pipeline))
            elif tok in ("&&", "||"):
                raise ShellSyntaxError(f"'{tok}'")
            pipeline = []
            connector = ";" if tok == "\n" else tok
            i += 1
            continue
        flat = "".join(t for t, _ in tok)
        if not cmd.words and tok[0][1] == "lit" and _ASSIGN.match(tok[0][0]):
            name, _, rest = tok[0][0].partition("=")
            cmd.assigns.append((name, [(rest, "lit"), *tok[1:]]))
        elif not cmd.words and tok[0][1] == "lit" and flat in _UNSUPPORTED_WORDS:
            raise ShellSyntaxError(f"'{flat}'")
        else:
            cmd.words.append(tok)
        i += 1
    end_command()
    if pipeline:
        result.append((connector, pipeline))
    return result


_VAR = re.compile(r"\\\$|\$(\$|\?|!|#|[0-9]|[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*(?::?[-+][^}]*)?\})")
# ${NAME}, ${NAME:+word} / ${NAME+word} (word if set), ${NAME:-word} / ${NAME-word} (word if unset)
_BRACED = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<colon>:?)(?P<op>[-+])(?P<word>[^}]*))?\}")


def _has_glob(word: Word) -> bool:
    return any(kind == "lit" and any(ch in text for ch in "*?[") for text, kind in word)


# ---------------------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------------------
class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class ShellSession:
    """One ``sh`` process interpreting one command line (``shell:…``) or a ``sh -c`` script."""

    def __init__(
        self,
        state: PhoneState,
        table: CommandTable,
        proc: Process,
        env: dict[str, str] | None = None,
        cwd: str = "/",
    ) -> None:
        self.state = state
        self.table = table
        self.proc = proc
        self.vars: dict[str, str] = dict(env or default_env())
        self.exported: set[str] = set(self.vars)
        self.cwd = cwd
        self.status = 0
        self.args: list[str] = []

    async def run_script(self, script: str, stdin: InputPipe, stdout: Sink, stderr: Sink) -> int:
        try:
            program = parse(script)
        except ShellSyntaxError as exc:
            await stderr.write(f"{SH}: syntax error: {exc} unsupported by farm virtual phone\n".encode())
            return 2
        try:
            for connector, pipeline in program:
                if (connector == "&&" and self.status != 0) or (connector == "||" and self.status == 0):
                    continue
                self.status = await self._run_pipeline(pipeline, stdin, stdout, stderr)
        except _Exit as exc:
            self.status = exc.status
        return self.status

    async def _run_pipeline(self, pipeline: Pipeline, stdin: InputPipe, stdout: Sink, stderr: Sink) -> int:
        status = 0
        pipe_in = stdin
        for k, cmd in enumerate(pipeline):
            last = k == len(pipeline) - 1
            buffer = BufferSink()
            status = await self._run_simple(cmd, pipe_in, stdout if last else buffer, stderr)
            pipe_in = InputPipe(bytes(buffer.data))
        return status

    # -- expansion ----------------------------------------------------------------------------------------
    def _expand_text(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            if m[0] == "\\$":
                return "$"
            name = m[1].strip("{}")
            if name == "$":
                return str(self.proc.pid)
            if name == "?":
                return str(self.status)
            if name == "#":
                return str(len(self.args))
            if name.isdigit():
                k = int(name)
                return self.args[k - 1] if 0 < k <= len(self.args) else (SH if k == 0 else "")
            braced = _BRACED.fullmatch(m[1])
            if braced is not None and braced["op"]:
                value = self.vars.get(braced["name"])
                is_set = bool(value) if braced["colon"] else value is not None
                if braced["op"] == "+":
                    return self._expand_text(braced["word"]) if is_set else ""
                return (value or "") if is_set else self._expand_text(braced["word"])
            return self.vars.get(name, "")

        return _VAR.sub(sub, text)

    def _expand_word(self, word: Word) -> list[str]:
        parts = [(self._expand_text(t) if kind != "sq" else t, kind) for t, kind in word]
        flat = "".join(t for t, _ in parts)
        if _has_glob(word):
            pattern = "".join(t if kind == "lit" else re.sub(r"([*?\[])", r"[\1]", t) for t, kind in parts)
            matches = self._glob(pattern)
            if matches:
                return matches
        # Unquoted expansions split on whitespace; quoted ones do not.
        if any(kind == "lit" and "$" in t for t, kind in word) and all(kind == "lit" for _, kind in word):
            return flat.split()
        return [flat]

    def _glob(self, pattern: str) -> list[str]:
        absolute = pattern.startswith("/")
        parts = [p for p in pattern.split("/") if p]
        candidates = ["/" if absolute else ""]
        for part in parts:
            nxt = []
            for base in candidates:
                dir_path = normalize(base or ".", self.cwd)
                if any(ch in part for ch in "*?["):
                    try:
                        names = self.state.fs.listdir(dir_path)
                    except FsError:
                        continue
                    for name in names:
                        if fnmatch.fnmatchcase(name, part) and (part.startswith(".") or not name.startswith(".")):
                            nxt.append(posixpath.join(base, name) if base else name)
                else:
                    unescaped = re.sub(r"\[([*?\[])\]", r"\1", part)
                    cand = posixpath.join(base, unescaped) if base else unescaped
                    if self.state.fs.exists(normalize(cand, self.cwd)):
                        nxt.append(cand)
            candidates = nxt
        return sorted(candidates)

    # -- one command --------------------------------------------------------------------------------------
    async def _run_simple(self, cmd: SimpleCommand, stdin: InputPipe, stdout: Sink, stderr: Sink) -> int:
        argv = [a for w in cmd.words for a in self._expand_word(w)]
        assigns = {name: "".join(self._expand_word(w)) for name, w in cmd.assigns}
        try:
            stdin, stdout, stderr = self._redirect(cmd.redirects, stdin, stdout, stderr)
        except FsError as exc:
            await stderr.write(f"{SH}: can't create {exc.path}: {exc.reason}\n".encode())
            return 1
        if not argv:
            self.vars.update(assigns)
            return 0
        env = {k: v for k, v in self.vars.items() if k in self.exported}
        env.update(assigns)
        return await self.execute(argv, env, stdin, stdout, stderr)

    def _redirect(
        self, redirects: list[Redirect], stdin: InputPipe, stdout: Sink, stderr: Sink
    ) -> tuple[InputPipe, Sink, Sink]:
        sinks: dict[int, Sink] = {1: stdout, 2: stderr}
        for r in redirects:
            if isinstance(r.target, int):
                sinks[r.fd] = sinks[r.target]
                continue
            path = "".join(self._expand_word(r.target))
            if r.op == "<":
                stdin = InputPipe(self.state.fs.read_bytes(normalize(path, self.cwd)))
            elif normalize(path, self.cwd) == "/dev/null":
                sinks[r.fd] = NullSink()
            else:
                sinks[r.fd] = FileSink(self.state, normalize(path, self.cwd), append=r.op == ">>")
        return stdin, sinks[1], sinks[2]

    async def execute(
        self,
        argv: list[str],
        env: dict[str, str],
        stdin: InputPipe,
        stdout: Sink,
        stderr: Sink,
        *,
        as_proc: Process | None = None,
        parent: Process | None = None,
    ) -> int:
        """Run ``argv`` (builtin, table command or scripted binary) in a child, or in ``as_proc`` for exec."""
        name = argv[0]
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            ctx = CommandContext(self.state, self.proc, argv, env, self.cwd, stdin, stdout, stderr, self)
            return await builtin(ctx)
        handler, error = self._resolve(name)
        if handler is None:
            await stderr.write(f"{SH}: {name}: {error}\n".encode())
            return 126 if error.startswith("can't") else 127
        if as_proc is not None:
            as_proc.argv = list(argv)
            return await handler(CommandContext(self.state, as_proc, argv, env, self.cwd, stdin, stdout, stderr, self))
        proc = self.state.procs.spawn(argv, parent or self.proc)
        ctx = CommandContext(self.state, proc, argv, env, self.cwd, stdin, stdout, stderr, self)
        return await self.state.procs.run(proc, handler(ctx))

    def _resolve(self, name: str) -> tuple[Handler | None, str]:
        if "/" not in name:
            handler = self.table.commands.get(name)
            return (handler, "") if handler else (None, "inaccessible or not found")
        path = normalize(name, self.cwd)
        if path.startswith(("/system/bin/", "/system/xbin/", "/vendor/bin/")):
            handler = self.table.commands.get(posixpath.basename(path))
            if handler is not None:
                return handler, ""
        st = self.state.fs.stat(path)
        if st is None:
            return None, "inaccessible or not found"
        if st.is_dir or not st.mode & 0o111:
            return None, "can't execute: Permission denied"
        handler = self.table.binary_for(path)
        if handler is None:
            return None, "can't execute: Exec format error (not a scripted binary of the farm virtual phone)"
        return handler, ""


def default_env() -> dict[str, str]:
    return {
        "PATH": "/product/bin:/apex/com.android.runtime/bin:/system/bin:/system/xbin:/odm/bin:/vendor/bin",
        "HOME": "/",
        "SHELL": SH,
        "TMPDIR": "/data/local/tmp",
        "USER": "shell",
        "HOSTNAME": "localhost",
        "ANDROID_DATA": "/data",
        "ANDROID_ROOT": "/system",
    }


async def run_command_line(
    state: PhoneState,
    table: CommandTable,
    line: str,
    *,
    stdin: InputPipe,
    stdout: Sink,
    stderr: Sink,
    on_start: Callable[[Process], None] | None = None,
) -> int:
    """Run one ``shell:`` command line in a fresh ``sh`` process group and return its exit status."""
    proc = state.procs.spawn([SH, "-c", line], None, new_group=True)
    session = ShellSession(state, table, proc)
    if on_start is not None:
        on_start(proc)
    return await state.procs.run(proc, session.run_script(line, stdin, stdout, stderr))


# ---------------------------------------------------------------------------------------------------------
# Builtins (they run inside the shell process itself)
# ---------------------------------------------------------------------------------------------------------
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
    raise _Exit(status)


async def _exit(ctx: CommandContext) -> int:
    raise _Exit(int(ctx.argv[1]) if len(ctx.argv) > 1 and ctx.argv[1].isdigit() else ctx.session.status)


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
    session = ShellSession(ctx.state, ctx.session.table, proc, ctx.env, ctx.session.cwd)
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


_BUILTINS: dict[str, Handler] = {
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


# ---------------------------------------------------------------------------------------------------------
# Table commands (toybox-like applets; each runs as a child process)
# ---------------------------------------------------------------------------------------------------------
def _flags(argv: list[str], known: str) -> tuple[set[str], list[str]]:
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
    flags, paths = _flags(ctx.argv[1:], "laA1dhR")
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
    flags, dirs = _flags(args, "p")
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
    flags, paths = _flags(ctx.argv[1:], "rRfv")
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
    _, args = _flags(ctx.argv[1:], "R")
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
    _, args = _flags(ctx.argv[1:], "fin")
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
    _, args = _flags(ctx.argv[1:], "fp")
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
        _, files = _flags(ctx.argv[1:], "b")
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
    flags, _ = _flags(ctx.argv[1:], "asnrvm")
    soc = ctx.state.soc
    fields = {"s": "Linux", "n": "localhost", "r": soc.kernel, "v": "#1 SMP PREEMPT", "m": "aarch64"}
    order = "snrvm" if "a" in flags else ("".join(f for f in "snrvm" if f in flags) or "s")
    await ctx.out(" ".join(fields[f] for f in order) + "\n")
    return 0


async def _nproc(ctx: CommandContext) -> int:
    await ctx.out(f"{bin(ctx.proc.cpus_allowed & sum(1 << c for c in ctx.state.soc.cpus)).count('1')}\n")
    return 0


async def _id(ctx: CommandContext) -> int:
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
    flags, args = _flags(ctx.argv[1:], "EFvqic")
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


def _format_field(values: dict[str, str], m: re.Match[str]) -> str:
    return values[m[1]]


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


def default_table() -> CommandTable:
    """The applets of a stock phone plus the farm's scripted benchmark binaries."""
    from farm.sim.workloads import register_workloads

    table = CommandTable()
    for name, handler in {
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
        "getprop": _getprop,
        "sleep": _sleep,
        "taskset": _taskset,
        "uname": _uname,
        "nproc": _nproc,
        "id": _id,
        "env": _env,
        "head": _head,
        "grep": _grep,
        "stat": _stat,
        "date": _date,
        "cmd": _cmd,
        "ps": _ps,
        "timeout": _timeout,
        "dumpsys": _dumpsys,
    }.items():
        table.register(name, handler)
    register_workloads(table)
    return table
