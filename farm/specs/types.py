"""Small value types shared by the job and inventory specs: durations, numbers, identifiers, octal modes, core
lists, and the names that reach a remote command line (host names, users, paths).

Numbers are strict: a boolean is not a number (``repeat: true`` is an error, not 1), nor is a numeric string, and
``.nan``/``.inf`` are refused everywhere.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

MAX_DURATION_S = 30 * 86400.0  # longer waits are typos; also keeps every timeout within what OS waits accept
MAX_CPU = 1023  # highest CPU, chip or NPU index accepted (a core list becomes a bit mask of this width)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def shown(value: object, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters: error messages quote the input, never all of a huge one."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 4] + "...'"


def parse_duration(value: object) -> float:
    """``"10m"``, ``"30s"``, ``"1.5h"``, ``"250ms"`` or a plain number of seconds → seconds (> 0, finite)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 30s, 10m or 1h, got {shown(value)}")
    if math.isnan(seconds):
        raise ValueError(f"must be a finite number, got {shown(value)}")
    if seconds <= 0:
        raise ValueError(f"must be positive, got {shown(value)}")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"at most 30 days ({MAX_DURATION_S:.0f} s), got {shown(value)}")
    return seconds


def parse_core_list(cores: str | Sequence[int]) -> tuple[int, ...]:
    """``"0,2,4-7"`` or ``[4, 5]`` → sorted unique core ids in ``0..MAX_CPU``; ``ValueError`` otherwise."""
    if isinstance(cores, str):
        ids: set[int] = set()
        for part in cores.replace(" ", "").split(","):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            if not lo.isdigit() or (sep and not hi.isdigit()) or len(lo) > 5 or len(hi) > 5:
                raise ValueError(f"bad core list {shown(cores)}: expected e.g. '0,2,4-7'")
            first, last = int(lo), int(hi) if sep else int(lo)
            if last < first or last > MAX_CPU:
                raise ValueError(f"bad core list {shown(cores)}: '{part}' is not a range within 0-{MAX_CPU}")
            ids.update(range(first, last + 1))
    else:
        ids = set()
        for c in cores:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= MAX_CPU:
                raise ValueError(f"bad core list {shown(cores)}: core ids are integers within 0-{MAX_CPU}")
            ids.add(c)
    if not ids:
        raise ValueError(f"bad core list {shown(cores)}: need at least one core id")
    return tuple(sorted(ids))


def _check_ident(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"{shown(value)} is not a valid name (letters, digits, '.', '_', '-'; at most 128 characters)")
    return value


def _check_host(value: str) -> str:
    """An IP address or a DNS name: nothing a shell or ``ssh`` could read as syntax or an option."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.removesuffix(".").split(".")
    if len(value) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(f"{shown(value)} is not a host name or IP address")
    return value


def _check_user(value: str) -> str:
    if not _USER.match(value):
        raise ValueError(
            f"{shown(value)} is not a user name (letters, digits, '_', '.', '@', '-', not starting with '-' or '.')"
        )
    return value


def _check_path(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed in a path")
    if value.startswith("-"):
        raise ValueError(f"{shown(value)}: a path must not start with '-' (write ./...)")
    return value


def _check_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters (newline, NUL, …) are not allowed here")
    return value


def _check_int64(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("integers must fit in 64 bits")
    return value


def _check_argument(value: str) -> str:
    # A NUL byte cannot be passed in argv or env by any OS: refuse it here rather than when the run starts.
    if "\x00" in value:
        raise ValueError("a NUL character cannot be passed to a command")
    return value


def _parse_mode(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?[0-7]{3,4}", value):
        mode = int(value, 8)
    else:
        raise ValueError(f'expected an octal file mode such as "0755", got {shown(value)}')
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"file mode out of range: {shown(value)}")
    return mode


def _labels_as_strings(value: object) -> object:
    """Label values written as YAML numbers or booleans (``big: 4``) compare as the strings they read as."""
    if isinstance(value, dict):
        return {k: str(v) if isinstance(v, int | float | bool) else v for k, v in value.items()}
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Ident = Annotated[str, AfterValidator(_check_ident)]
FileMode = Annotated[int, BeforeValidator(_parse_mode)]
# Strict: no booleans, no numeric strings, no floats for integers; finite floats only.
# (Range limits of the alias itself go in validators: a field's own ``Field(ge=…)`` must not be overridden.)
Int = Annotated[int, Field(strict=True), AfterValidator(_check_int64)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Index = Annotated[int, Field(strict=True, ge=0, le=MAX_CPU)]
HostName = Annotated[str, Field(min_length=1), AfterValidator(_check_host)]
UserName = Annotated[str, AfterValidator(_check_user)]
PathText = Annotated[str, Field(min_length=1), AfterValidator(_check_path)]
Text = Annotated[str, AfterValidator(_check_text)]
Argument = Annotated[str, AfterValidator(_check_argument)]
Labels = Annotated[dict[Text, Text], BeforeValidator(_labels_as_strings)]
