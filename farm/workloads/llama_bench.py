"""Adapter for ``llama-bench`` output in its json, jsonl, csv and md forms (rows keyed by name, not position).

A row with ``n_gen == 0`` is a prefill test, ``n_prompt == 0`` a decode test; combined ``pp+tg`` rows are
ignored. When several rows of one kind are printed (a list-valued flag), the last one is reported and a
warning is logged: sweep such flags with the job grid instead, so each run holds one row of each kind.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.errors import OutputParseError
from farm.workloads.base import Metrics
from farm.workloads.textscan import NUMBER, to_float

logger = logging.getLogger(__name__)

FORMATS = ("auto", "json", "jsonl", "csv", "md")

# llama-bench field → metric name, for numeric fields worth a column (taken from the decode row if present).
_EXTRA_FIELDS = {
    "n_threads": "threads_count",
    "n_batch": "batch_tokens",
    "n_ubatch": "ubatch_tokens",
    "n_gpu_layers": "gpu_layers_count",
    "model_size": "model_size_bytes",
    "model_n_params": "model_params_count",
}
_MD_RATE = re.compile(rf"(?P<avg>{NUMBER})\s*(?:±|\+/-)\s*(?P<std>{NUMBER})")
# "pp 512" (older builds), "pp512", "tg128 @ d512", "pp512+tg128".
_MD_TEST = re.compile(r"^(?:pp\s*(?P<np>\d+))?\+?(?:tg\s*(?P<ng>\d+))?(?:\s*@\s*d(?P<depth>\d+))?$")

Row = dict[str, Any]


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", value.strip()):
        return float(value)
    return None


def _json_rows(output: str) -> list[Row] | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\[", output):
        try:
            value, _ = decoder.raw_decode(output, match.start())
        except ValueError:
            continue
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            rows = [item for item in value if "avg_ts" in item]
            if rows:
                return rows
    return None


def _jsonl_rows(output: str) -> list[Row] | None:
    rows: list[Row] = []
    for line in output.splitlines():
        stripped = line.strip()
        if not stripped.startswith("{"):
            continue
        try:
            value = json.loads(stripped)
        except ValueError:
            continue
        if isinstance(value, dict) and "avg_ts" in value:
            rows.append(value)
    return rows or None


def _csv_rows(output: str) -> list[Row] | None:
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if "avg_ts" in line and "n_prompt" in line and "," in line:
            reader = csv.DictReader(io.StringIO("\n".join(lines[index:])))
            # A row with more or fewer fields than the header would shift every value: drop it.
            rows = [
                row
                for row in reader
                if None not in row and None not in row.values() and row.get("avg_ts") not in (None, "")
            ]
            if rows:
                return [dict(row) for row in rows]
    return None


def _md_rows(output: str) -> list[Row] | None:
    header: list[str] | None = None
    rows: list[Row] = []
    for line in output.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            continue
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if header is None:
            if "test" in cells and "t/s" in cells:
                header = cells
            continue
        if all(set(cell) <= set("-: ") for cell in cells) or len(cells) != len(header):
            continue
        record = dict(zip(header, cells, strict=True))
        test = _MD_TEST.match(record.get("test", ""))
        rate = _MD_RATE.search(record.get("t/s", ""))
        if not test or not rate:
            continue
        row: Row = {
            "n_prompt": int(test["np"]) if test["np"] else 0,
            "n_gen": int(test["ng"]) if test["ng"] else 0,
            "avg_ts": to_float(rate["avg"]),
            "stddev_ts": to_float(rate["std"]),
        }
        if "threads" in record:
            row["n_threads"] = record["threads"]
        if "n_batch" in record:
            row["n_batch"] = record["n_batch"]
        rows.append(row)
    return rows or None


_READERS = {"json": _json_rows, "jsonl": _jsonl_rows, "csv": _csv_rows, "md": _md_rows}


def _kind(row: Row) -> str | None:
    n_prompt = _as_number(row.get("n_prompt"))
    n_gen = _as_number(row.get("n_gen"))
    if n_prompt is None or n_gen is None:
        return None
    if n_gen == 0 and n_prompt > 0:
        return "prefill"
    if n_prompt == 0 and n_gen > 0:
        return "decode"
    return None


@dataclass
class LlamaBenchAdapter:
    """Prefill/decode throughput from one llama-bench invocation."""

    output_format: str = "auto"
    name: str = "llama_bench"

    def _rows(self, output: str) -> list[Row]:
        order = ["json", "jsonl", "csv", "md"] if self.output_format == "auto" else [self.output_format]
        for fmt in order:
            rows = _READERS[fmt](output)
            if rows:
                return rows
        raise OutputParseError(f"llama-bench: no result rows found (format {self.output_format})")

    def parse(self, output: str) -> Metrics:
        by_kind: dict[str, list[Row]] = {"prefill": [], "decode": []}
        for row in self._rows(output):
            kind = _kind(row)
            if kind is not None:
                by_kind[kind].append(row)
        if not by_kind["prefill"] and not by_kind["decode"]:
            raise OutputParseError("llama-bench: no prefill (n_gen=0) or decode (n_prompt=0) row")
        metrics: Metrics = {}
        for kind, rows in by_kind.items():
            if not rows:
                continue
            if len(rows) > 1:
                logger.warning("llama-bench printed %d %s rows; reporting the last one", len(rows), kind)
            row = rows[-1]
            avg = _as_number(row.get("avg_ts"))
            if avg is None:
                raise OutputParseError(f"llama-bench: {kind} row has no numeric avg_ts")
            metrics[f"{kind}_tokens_per_s"] = avg
            stddev = _as_number(row.get("stddev_ts"))
            if stddev is not None:
                metrics[f"{kind}_stddev_tokens_per_s"] = stddev
            count = _as_number(row.get("n_prompt" if kind == "prefill" else "n_gen"))
            if count is not None:
                metrics[f"{kind}_tokens"] = count
        source = (by_kind["decode"] or by_kind["prefill"])[-1]
        for field_name, metric in _EXTRA_FIELDS.items():
            value = _as_number(source.get(field_name))
            if value is not None:
                metrics[metric] = value
        return metrics


def make(options: Mapping[str, Any]) -> LlamaBenchAdapter:
    """Factory; option ``format``: one of auto (default), json, jsonl, csv, md."""
    unknown = set(options) - {"format"}
    if unknown:
        raise ValueError(f"llama_bench: unknown options {sorted(unknown)} (known: format)")
    fmt = str(options.get("format", "auto"))
    if fmt not in FORMATS:
        raise ValueError(f"llama_bench: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return LlamaBenchAdapter(output_format=fmt)
