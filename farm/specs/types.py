"""Small value types shared by the job and inventory specs: durations, identifiers, octal modes."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def parse_duration(value: object) -> float:
    """``"10m"``, ``"30s"``, ``"1.5h"``, ``"250ms"`` or a plain number of seconds → seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 30s, 10m or 1h, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return seconds


def _check_ident(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"{value!r} is not a valid name (letters, digits, '.', '_', '-'; at most 128 characters)")
    return value


def _parse_mode(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?[0-7]{3,4}", value):
        mode = int(value, 8)
    else:
        raise ValueError(f'expected an octal file mode such as "0755", got {value!r}')
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"file mode out of range: {value!r}")
    return mode


Duration = Annotated[float, BeforeValidator(parse_duration)]
Ident = Annotated[str, AfterValidator(_check_ident)]
FileMode = Annotated[int, BeforeValidator(_parse_mode)]
