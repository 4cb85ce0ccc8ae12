"""Parsing one ``sh`` command line of the virtual phone into pipelines of simple commands.

Supported syntax (enough for what the farm sends): words with ``'…'``, ``"…"`` and ``\\`` quoting; ``NAME=value``
prefixes and bare assignments; ``;``, ``&&``, ``||``, newlines; ``|``; redirections ``>``, ``>>``, ``<``, ``2>``,
``2>>``, ``2>&1``, ``>&2``. Anything else (``if``, ``for``, ``$(…)``, backgrounding with ``&``, subshells) raises
:class:`ShellSyntaxError`, which the shell reports with exit status 2 rather than misinterpreting the line.
Expansion (``$VAR``, globs) happens later, in :mod:`farm.sim.shell_session`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


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
