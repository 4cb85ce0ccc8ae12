"""Setting a script's module constants in a copy of it: the recipes that say "edit ``BATCH_SIZE = 5`` at the top of
``demo_bsz.py``" run with the grid's values instead (artifact ``constants:`` in a job).

Each named constant must be assigned exactly once at the start of a line (module level, an optional type
annotation allowed); that whole line becomes ``NAME = <value>``, the value written as a number when it is one
and as a quoted Python string otherwise. Pure text work: the device actor renders, the job check calls it with
placeholder values to reject a file that lacks a name before anything is submitted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from farm.errors import ConfigError

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def constant_line(name: str, value: str) -> str:
    literal = value if _NUMBER.fullmatch(value) else repr(value)
    return f"{name} = {literal}"


def render_constants(text: str, constants: Mapping[str, str], what: str = "file") -> str:
    """``text`` with the module-level assignment of each constant replaced (see the module docstring)."""
    for name, value in constants.items():
        pattern = re.compile(rf"^{re.escape(name)}[ \t]*(?::[^=\n]*)?=(?!=)[^\n]*$", re.MULTILINE)
        found = len(pattern.findall(text))
        if found != 1:
            where = "is not assigned" if found == 0 else f"is assigned {found} times"
            raise ConfigError.single(what, f"constants.{name}", f"{name} {where} at the start of a line")
        # backslashes doubled: re.sub reads escapes in a replacement, the value must go in literally
        text = pattern.sub(constant_line(name, value).replace("\\", "\\\\"), text)
    return text


def check_constants(path: Path, constants: Mapping[str, str], what: str) -> None:
    """Raise ConfigError when ``path`` cannot be rendered with these constant names (values do not matter)."""
    render_constants(path.read_text(encoding="utf-8"), {k: "0" for k in constants}, what)
