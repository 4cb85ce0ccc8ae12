"""Environment values that extend the device's own variable instead of replacing it.

A job's ``env`` maps a name to a plain value (the variable is set to exactly that) or to
``{prepend: VALUE, sep: ":"}``: VALUE goes in front of whatever the variable already holds on the device,
joined by ``sep``; when the device has no such variable (or it is empty) the result is VALUE alone, with no
dangling separator (a trailing ``:`` in ``LD_LIBRARY_PATH`` would mean "the current directory").

Rendered, such a value is an :class:`EnvPrepend`: a ``str`` whose text is VALUE, so every place that carries
env as ``dict[str, str]`` carries it unchanged, plus the separator. The code that composes the command applies
it: the remote shell (adb, ssh) writes ``export K='VALUE'"${K:+SEP$K}"`` — VALUE single-quoted like every
value, only the device's own ``$K`` expanded —, the local transport joins the strings in Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Separators allowed between the prepended value and the existing one (literal inside double quotes).
SEPARATORS = (":", ";", ",")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class EnvPrepend(str):
    """An env value to put in front of the device's existing value of the same variable, joined by ``sep``."""

    sep: str

    def __new__(cls, value: str, sep: str = ":") -> EnvPrepend:
        if sep not in SEPARATORS:
            raise ValueError(f"separator {sep!r} is not one of {' '.join(SEPARATORS)}")
        obj = super().__new__(cls, value)
        obj.sep = sep
        return obj

    def __reduce__(self) -> tuple[type[EnvPrepend], tuple[str, str]]:
        return (EnvPrepend, (str(self), self.sep))

    def __repr__(self) -> str:
        return f"EnvPrepend({str(self)!r}, sep={self.sep!r})"

    def apply(self, existing: str | None) -> str:
        """The variable's new value given its current one (``None`` or ``""``: not set)."""
        return f"{self}{self.sep}{existing}" if existing else str(self)

    def shell_suffix(self, name: str) -> str:
        """``"${NAME:+SEP$NAME}"``: the device's own value with its separator, nothing when it is unset or empty."""
        if not _NAME.match(name):
            raise ValueError(f"invalid environment variable name {name!r}")
        return f'"${{{name}:+{self.sep}${name}}}"'

    def describe(self, name: str) -> str:
        """How the value reads to a person: ``VALUE:$NAME``."""
        return f"{self}{self.sep}${name}"


def apply_env(base: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """``base`` (the environment the command would inherit) updated with ``env``, prepends applied."""
    out = dict(base)
    for key, value in env.items():
        out[key] = value.apply(base.get(key)) if isinstance(value, EnvPrepend) else str(value)
    return out


def describe_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` as plain strings for display and JSON: a prepend reads ``VALUE:$NAME``."""
    return {k: v.describe(k) if isinstance(v, EnvPrepend) else str(v) for k, v in env.items()}
