"""``farm parse NAME FILE``: run a workload adapter or a probe parser on captured output, offline.

Prints the metrics as aligned ``name  value`` lines (or one JSON object with ``--json``). Exit 1 when the
output holds no result (the adapter's one-line reason), 2 for an unknown name, bad ``--option`` or unreadable
file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from farm import probes, workloads
from farm.errors import ConfigError
from farm.specs.loading import read_regular_file

_SOURCE = "farm parse"
MAX_OUTPUT_BYTES = 64 << 20  # a captured benchmark log; larger is not an output an adapter is meant to read


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "parse",
        help="parse captured benchmark or device-tool output with a workload adapter or probe",
        description=(
            "Run a workload adapter or probe parser on captured output. "
            f"Adapters: {', '.join(workloads.available())}. Probes: {', '.join(probes.available())}."
        ),
    )
    parser.add_argument("name", metavar="NAME", help="adapter or probe name")
    parser.add_argument("file", metavar="FILE", help="file holding the captured output, or - for stdin")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of aligned lines")
    parser.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="adapter option; dotted keys nest (patterns.latency_ms='lat (\\d+) ms'); "
        "a value starting with { is read as JSON",
    )
    parser.set_defaults(func=run)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c={...}"]`` → ``{"a": {"b": "1"}, "c": {...}}``; ConfigError on a malformed pair."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError.single(_SOURCE, "--option", f"expected KEY=VALUE, got {pair!r}")
        value: Any = raw
        # Only objects are decoded: a regex such as "[0-9]+" must stay a string.
        if raw.lstrip().startswith("{"):
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise ConfigError.single(_SOURCE, f"--option {key}", f"invalid JSON: {exc}") from None
        target = options
        *parents, leaf = key.split(".")
        for part in parents:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError.single(_SOURCE, f"--option {key}", f"{part!r} is already a plain value")
            target = child
        target[leaf] = value
    return options


def _read(path: str) -> str:
    if path == "-":
        data: bytes | str = getattr(sys.stdin, "buffer", sys.stdin).read(MAX_OUTPUT_BYTES + 1)
        if len(data) > MAX_OUTPUT_BYTES:
            raise ConfigError.single("<stdin>", "", f"more than {MAX_OUTPUT_BYTES} bytes (the limit)")
        return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return read_regular_file(Path(path), MAX_OUTPUT_BYTES).decode("utf-8", errors="replace")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple):
        out = {}
        for index, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return {prefix: value}


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): _to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no inf/nan; the text form prints them
    return value


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def run(args: argparse.Namespace) -> int:
    name: str = args.name
    options = parse_options(list(args.option))
    if name in workloads.available():
        try:
            adapter = workloads.make_adapter(name, options)
        except ValueError as exc:
            raise ConfigError.single(_SOURCE, "--option", str(exc)) from None
        result: Any = adapter.parse(_read(args.file))
    elif name in probes.available():
        if options:
            raise ConfigError.single(_SOURCE, "--option", f"probe {name} takes no options")
        result = probes.get_parser(name)(_read(args.file))
    else:
        known = ", ".join(workloads.available() + probes.available())
        raise ConfigError.single(_SOURCE, "NAME", f"unknown adapter or probe {name!r}; known: {known}")
    if args.json:
        print(json.dumps(_to_jsonable(result), sort_keys=False))
        return 0
    flat = _flatten(result)
    width = max((len(key) for key in flat), default=0)
    for key, value in flat.items():
        print(f"{key:<{width}}  {format_value(value)}")
    return 0
