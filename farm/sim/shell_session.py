"""The virtual phone's ``sh``: expansion and execution of parsed command lines. Nothing here runs a host program.

Expansion: ``$VAR``, ``${VAR}``, ``${VAR:+word}``, ``${VAR:-word}`` (and without the colon), ``$$``, ``$?``,
``$#``, ``$1``…; globs (``*``, ``?``, ``[…]``) on unquoted words. Pipeline stages run one after another, the output
of one fed to the next. A command word is first a builtin (:mod:`farm.sim.shell_builtins`); a word without ``/`` is
then looked up in the :class:`~farm.sim.shell_io.CommandTable`, an unknown one ends with status 127 and
``/system/bin/sh: NAME: inaccessible or not found`` like Android's mksh. A word with ``/`` must name an executable
file on the phone; the scripted benchmark stand-ins (see :mod:`farm.sim.workloads`) are chosen by its basename.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable

from farm.sim.filesystem import FsError, is_virtual, normalize
from farm.sim.processes import Process
from farm.sim.shell_builtins import BUILTINS, ShellExit
from farm.sim.shell_io import (
    SH,
    BufferSink,
    CommandContext,
    CommandTable,
    FileSink,
    Handler,
    InputPipe,
    NullSink,
    Sink,
    SysfsSink,
)
from farm.sim.shell_parser import Pipeline, Redirect, ShellSyntaxError, SimpleCommand, Word, parse
from farm.sim.state import PhoneState

_VAR = re.compile(r"\\\$|\$(\$|\?|!|#|[0-9]|[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*(?::?[-+][^}]*)?\})")
# ${NAME}, ${NAME:+word} / ${NAME+word} (word if set), ${NAME:-word} / ${NAME-word} (word if unset)
_BRACED = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<colon>:?)(?P<op>[-+])(?P<word>[^}]*))?\}")


def _has_glob(word: Word) -> bool:
    return any(kind == "lit" and any(ch in text for ch in "*?[") for text, kind in word)


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

    def subshell(self, proc: Process, env: dict[str, str]) -> ShellSession:
        """A new shell (``sh -c``) run by ``proc``, starting in this one's directory with ``env``."""
        return ShellSession(self.state, self.table, proc, env, self.cwd)

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
        except ShellExit as exc:
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
            elif is_virtual(normalize(path, self.cwd)):
                sinks[r.fd] = SysfsSink(self.state, normalize(path, self.cwd), self.proc.uid)
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
        builtin = BUILTINS.get(name)
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
