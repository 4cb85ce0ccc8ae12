"""Command and env templates: ``{axis}``, ``{device.id}``, ``{device.chip}``… with ``{{``/``}}`` as literal braces.

Deliberately not ``str.format``: no attribute access or indexing into Python objects, only names from a flat
mapping, so a job file cannot reach into the process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

DEVICE_FIELDS = frozenset({"device.id", "device.slot", "device.kind", "device.node", "device.chip", "device.npu"})
RUN_FIELDS = frozenset({"repeat", "job", "run_id"})


class TemplateError(ValueError):
    pass


def names(template: str) -> Iterator[str]:
    """The names a template refers to; :class:`TemplateError` on unbalanced braces or bad names."""
    for m in _TOKEN.finditer(template):
        tok = m.group(0)
        if tok in ("{{", "}}"):
            continue
        if m.group(1) is None:
            raise TemplateError(f"unbalanced '{tok}' in {template!r} (write '{tok * 2}' for a literal brace)")
        name = m.group(1).strip()
        if not _NAME.match(name):
            raise TemplateError(f"'{{{m.group(1)}}}' is not a valid template name")
        yield name


def allowed(name: str, axes: frozenset[str] | set[str]) -> bool:
    return name in axes or name in DEVICE_FIELDS or name in RUN_FIELDS or name.startswith("device.label.")


def render(template: str, values: Mapping[str, str]) -> str:
    if "{" not in template and "}" not in template:
        return template  # most argv words are literal; skipping the regex halves planning time on big grids

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        name = (m.group(1) or "").strip()
        if name not in values:
            raise TemplateError(f"'{{{name}}}' has no value for this run")
        return values[name]

    return _TOKEN.sub(sub, template)


def as_text(value: object) -> str:
    """How a parameter value appears in a command line: booleans lowercase, floats without noise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e16 else f"{value:.1f}"
    return str(value)
