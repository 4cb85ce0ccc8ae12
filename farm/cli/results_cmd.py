"""The ``farm query`` and ``farm results`` commands: SQL over the results and a readable view of one job.

Both read the store at ``--results`` (default: ``$FARM_RESULTS``, else ``./farm-results``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table
from rich.text import Text

from farm.analysis.jobdata import is_metric, job_headline, order_metrics
from farm.cli.common import results_root
from farm.errors import ConfigError, ResultsError
from farm.results.query import query
from farm.results.schema import check_job_name, kind_of_arrow
from farm.results.store import DEFAULT_ROOT, ResultsStore

ENV_RESULTS = "FARM_RESULTS"
#: Metric columns shown by ``farm results`` without ``--all-columns``.
MAX_METRICS = 6
#: Rows a rich table shows at most; a terminal cannot show more usefully (csv and json print everything).
MAX_TABLE_ROWS = 1000
_PIPE_WIDTH = 400
_STATUS_STYLE = {"ok": "green", "failed": "red", "timeout": "yellow", "infra_error": "magenta"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    q = subparsers.add_parser(
        "query",
        help="run SQL over the results (table `runs`)",
        description="Run SQL over the results dataset; the table `runs` has one row per run outcome.",
    )
    q.add_argument("sql", help='e.g. "SELECT p_threads, avg(decode_tokens_per_s) FROM runs GROUP BY 1"')
    q.add_argument("--results", metavar="DIR", help=f"results root (default: ${ENV_RESULTS} or {DEFAULT_ROOT})")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    q.set_defaults(func=run_query)

    r = subparsers.add_parser(
        "results",
        help="show one job's results",
        description="Show one job's runs (status, slot, parameters, main metrics) and counts by status.",
    )
    r.add_argument("job", help="job name")
    r.add_argument("--results", metavar="DIR", help=f"results root (default: ${ENV_RESULTS} or {DEFAULT_ROOT})")
    r.add_argument("--all-columns", action="store_true", help="show every column")
    r.set_defaults(func=run_results)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        if abs(value) >= 1000:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _rich_table(table: pa.Table, columns: Sequence[str], title: str | None = None) -> Table:
    # Cells are Text, not markup strings: values such as "[x]" must print as they are.
    out = Table(title=Text(title) if title else None, header_style="bold")
    for name in columns:
        kind = kind_of_arrow(table.schema.field(name).type)
        out.add_column(Text(name), justify="right" if kind == "number" else "left", overflow="fold")
    data = [table.column(c).to_pylist() for c in columns]
    for i in range(table.num_rows):
        cells: list[Text] = []
        for name, col in zip(columns, data, strict=True):
            text = _cell(col[i])
            style = _STATUS_STYLE.get(text) if name == "status" else None
            cells.append(Text(text, style=style or ""))
        out.add_row(*cells)
    return out


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        # Piped or captured output has no width to respect: do not squeeze a wide table into 80 columns.
        console = Console(width=_PIPE_WIDTH)
    return console


def _json_value(value: Any) -> Any:
    # Strict JSON has no NaN/Infinity: an absent measurement is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def run_query(args: argparse.Namespace) -> int:
    table = query(ResultsStore(results_root(args.results)), args.sql)
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
            writer.writerow(["" if v is None else v.isoformat() if isinstance(v, datetime) else v for v in row])
    elif args.format == "json":
        rows = [{k: _json_value(v) for k, v in row.items()} for row in table.to_pylist()]
        json.dump(rows, sys.stdout, default=str, allow_nan=False)
        sys.stdout.write("\n")
    else:
        console = _console()
        console.print(_rich_table(table.slice(0, MAX_TABLE_ROWS), table.column_names))
        note = f"{table.num_rows} row{'s' if table.num_rows != 1 else ''}"
        if table.num_rows > MAX_TABLE_ROWS:
            note += f", the first {MAX_TABLE_ROWS} shown (--format csv or json prints all)"
        console.print(note, style="dim", markup=False)
    return 0


def _shown_columns(table: pa.Table, all_columns: bool) -> list[str]:
    names: list[str] = table.column_names
    if all_columns:
        return names
    params = [c for c in names if c.startswith("p_")]
    measured = [
        c
        for c in names
        if is_metric(c)
        and kind_of_arrow(table.schema.field(c).type) == "number"
        and table.column(c).null_count < table.num_rows
    ]
    settings = table.column("settings").to_pylist()[-1:] if "settings" in names else []
    metrics = order_metrics(measured, job_headline(settings))
    return [
        "status",
        "run_id",  # what `farm rerun` takes
        "slot",
        *params,
        "repeat",
        *(["warmup"] if any(table.column("warmup").to_pylist()) else []),
        "attempt",
        *metrics[:MAX_METRICS],
        "duration_s",
        "error",
    ]


def run_results(args: argparse.Namespace) -> int:
    root = results_root(args.results)
    try:
        check_job_name(args.job)
    except ResultsError as exc:
        raise ConfigError.single("farm results", "job", str(exc)) from exc
    store = ResultsStore(root)
    table = store.table(args.job)
    if table.num_rows == 0:
        known = ", ".join(store.jobs()) or "none"
        raise ConfigError.single(root, "", f"no results for job {args.job!r} (jobs with results: {known})")
    table = table.sort_by([("started_at", "ascending"), ("run_id", "ascending"), ("attempt", "ascending")])
    synthetic = any(table.column("synthetic").to_pylist())
    title = f"{args.job} — {table.num_rows} rows" + (" (includes synthetic results)" if synthetic else "")
    if table.num_rows > MAX_TABLE_ROWS:
        title += f", the last {MAX_TABLE_ROWS} shown"
    console = _console()
    shown = table.slice(table.num_rows - MAX_TABLE_ROWS) if table.num_rows > MAX_TABLE_ROWS else table
    console.print(_rich_table(shown, _shown_columns(table, args.all_columns), title=title))
    counts = Counter(table.column("status").to_pylist())
    summary = "  ".join(f"{status}: {n}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    warmups = sum(table.column("warmup").to_pylist())
    console.print(f"{summary}" + (f"  (warm-up rows: {warmups})" if warmups else ""), markup=False)
    return 0
