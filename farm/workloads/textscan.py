"""Text-scanning helpers shared by the workload adapters and probes: numbers, ANSI escapes, embedded dicts.

Everything here is pure and tolerant of the noise real tools print around their results (log prefixes,
progress bars, colour codes, locale decimal commas).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

#: One number as tools print it: ``12``, ``-3.5``, ``1e-3``, ``3010,72`` (decimal comma), ``inf``, ``nan``,
#: ``-nan(ind)`` (MSVC). Use :func:`to_float` to convert a match.
NUMBER = r"[-+]?(?:\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?|inf(?:inity)?|nan(?:\(ind\))?)"

#: Suffixes a metric name must end with (after an underscore) to say its unit.
UNIT_SUFFIXES: tuple[str, ...] = (
    "per_s",
    "ns",
    "us",
    "ms",
    "s",
    "min",
    "h",
    "bytes",
    "kb",
    "kib",
    "mb",
    "mib",
    "gb",
    "gib",
    "pct",
    "ratio",
    "count",
    "tokens",
    "w",
    "mw",
    "j",
    "mj",
    "uj",
    "nj",
    "pj",
    "c",
    "hz",
    "khz",
    "mhz",
    "ghz",
)

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def to_float(text: str) -> float:
    """Convert one :data:`NUMBER` match; a decimal comma is read as a decimal point."""
    token = text.strip().lower()
    sign = -1.0 if token.startswith("-") else 1.0
    bare = token.lstrip("+-")
    if bare.startswith("nan"):
        return math.nan
    if bare.startswith("inf"):
        return sign * math.inf
    return float(token.replace(",", "."))


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences and normalise carriage returns (``bm-smi``, progress bars)."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def has_unit_suffix(name: str) -> bool:
    """True if ``name`` is a lower-case snake-case metric name ending in a known unit suffix."""
    if not _METRIC_NAME.match(name):
        return False
    return any(name.endswith("_" + suffix) for suffix in UNIT_SUFFIXES)


def check_metric_name(name: str, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` when ``name`` lacks a unit suffix."""
    if not has_unit_suffix(name):
        raise ValueError(
            f"{what}: metric name {name!r} must be snake_case and end in a unit suffix "
            f"(one of _{', _'.join(UNIT_SUFFIXES)})"
        )


def _balanced_spans(text: str, opener: str, closer: str) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` of every balanced ``opener…closer`` span, skipping brackets inside strings."""
    last_close = text.rfind(closer)
    for start in (i for i, ch in enumerate(text) if ch == opener):
        if start > last_close:
            break  # nothing after this can close; avoids rescanning to the end for every stray opener
        depth = 0
        quote = ""
        escaped = False
        for pos in range(start, len(text)):
            ch = text[pos]
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = ""
                continue
            if ch in "\"'":
                quote = ch
            elif ch == opener:
                depth += 1
            elif ch == closer:
                depth -= 1
                if depth == 0:
                    yield start, pos + 1
                    break


# numpy >= 2 prints scalars inside a dict repr as ``np.float64(0.5)``; literal_eval cannot read that.
_NUMPY_SCALAR = re.compile(r"\b(?:np|numpy)\.(?:float|int|uint)\d*\(\s*([^()]*?)\s*\)")


def parse_mapping(snippet: str, python_literals: bool = True) -> dict[str, Any] | None:
    """Read ``snippet`` as a JSON object or (if allowed) a Python-literal dict, never with ``eval``."""
    try:
        value = json.loads(snippet)
    except ValueError:
        if not python_literals:
            return None
        try:
            value = ast.literal_eval(_NUMPY_SCALAR.sub(r"\1", snippet))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    if isinstance(value, dict):
        return value
    return None


def last_mapping(
    text: str, required: frozenset[str] = frozenset(), python_literals: bool = True
) -> dict[str, Any] | None:
    """The last top-level JSON object (or Python dict) in ``text`` that holds all ``required`` keys."""
    found: dict[str, Any] | None = None
    covered_until = -1
    for start, end in _balanced_spans(text, "{", "}"):
        if start < covered_until:
            # Nested inside an object already read; the outer one wins.
            continue
        mapping = parse_mapping(text[start:end], python_literals)
        if mapping is None:
            continue
        covered_until = end
        if required <= mapping.keys():
            found = mapping
    return found


def flatten_numbers(value: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested mappings as ``{"a_b_c": 1.0}``; booleans, strings and lists are left out."""
    out: dict[str, float] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{prefix}_{key}" if prefix else str(key)
            out.update(flatten_numbers(item, name))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out[prefix] = float(value)
    return out


def _is_index(part: str, length: int) -> bool:
    return part.lstrip("-").isdigit() and -length <= int(part) < length


def dig(value: Any, dotted: str) -> Any:
    """Follow ``a.b.0.c`` through mappings and lists; ``KeyError`` when a step is missing."""
    current = value
    for part in dotted.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and _is_index(part, len(current)):
            current = current[int(part)]
        else:
            raise KeyError(dotted)
    return current
