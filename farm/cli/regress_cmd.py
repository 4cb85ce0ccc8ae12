"""``farm regress JOB --baseline BUILD|rolling:N``: a CI step that fails (exit 1) when the newest build regressed.

Exit codes: 0 no regression, 1 at least one grid point regressed (or the new build ran it without a single
measurement), 2 bad input (unknown job or build, a
bad ``--baseline``). With ``--textfile-dir`` (default ``$FARM_TEXTFILE_DIR``) the outcome is also written as
Prometheus metrics for node_exporter's textfile collector (docs/metrics.md, deploy/prometheus).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from rich.console import Console
from rich.table import Table
from rich.text import Text

from farm.analysis.jobdata import load_job_data
from farm.analysis.regress import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, MIN_SAMPLES, Regression, regress
from farm.cli.common import non_negative, results_root
from farm.errors import ResultsError

ENV_TEXTFILE_DIR = "FARM_TEXTFILE_DIR"
_STYLE = {"regression": "red", "failed": "red", "improvement": "green", "too few": "yellow", "no baseline": "yellow"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = subparsers.add_parser(
        "regress",
        help="did the newest build regress? (exit 1 if so)",
        description=(
            "Compare the newest build of a job with a baseline build (or the N builds before it) on the workload's "
            "headline metric, per device and grid point: one-sided Mann-Whitney U test plus a minimum change of "
            "the median. Exit 1 on a regression, 0 otherwise, 2 on bad input."
        ),
    )
    r.add_argument("job", help="job name")
    r.add_argument("--baseline", required=True, metavar="BUILD|rolling:N", help="a build, or rolling:N")
    r.add_argument("--candidate", metavar="BUILD", help="the build to judge (default: the newest)")
    r.add_argument("--metric", help="judge this metric (default: the workload's headline metric)")
    r.add_argument(
        "--alpha", type=non_negative("--alpha", below=1), default=DEFAULT_ALPHA, help=f"default {DEFAULT_ALPHA}"
    )
    r.add_argument(
        "--min-effect",
        type=non_negative("--min-effect", below=1),
        default=DEFAULT_MIN_EFFECT,
        help=f"smallest relative change of the median that counts (default {DEFAULT_MIN_EFFECT}: 2%%)",
    )
    r.add_argument("--results", metavar="DIR|URI", help="results root (default: $FARM_RESULTS or ./farm-results)")
    r.add_argument(
        "--textfile-dir",
        metavar="DIR",
        default=os.environ.get(ENV_TEXTFILE_DIR),
        help=f"write farm_regress_*.prom there for node_exporter (default: ${ENV_TEXTFILE_DIR})",
    )
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.set_defaults(func=run_regress)


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def print_table(result: Regression, console: Console) -> None:
    direction = "higher is better" if result.higher_is_better else "lower is better"
    title = (
        f"{result.job}: {result.metric} ({direction}), build {result.candidate[:12]} vs "
        f"{result.baseline_spec} ({', '.join(b[:12] for b in result.baseline)})"
    )
    table = Table(title=Text(title), header_style="bold")
    for name, numeric in [("device", False), ("point", False), ("n base", True), ("n new", True),
                          ("median base", True), ("median new", True), ("worse by", True), ("p", True),
                          ("verdict", False)]:  # fmt: skip
        table.add_column(Text(name), justify="right" if numeric else "left", overflow="fold")
    for row in result.rows:
        table.add_row(
            Text(row.device),
            Text(row.point),
            str(row.n_baseline),
            str(row.n_candidate),
            _fmt(row.median_baseline),
            _fmt(row.median_candidate),
            "—" if row.worse_by is None else f"{100 * row.worse_by:+.2f}%",
            _fmt(row.p_value, ".2g"),
            Text(row.verdict, style=_STYLE.get(row.verdict, "")),
        )
    console.print(table)
    console.print(
        f"regression: one-sided Mann-Whitney p < {result.alpha:g} and median worse by >= "
        f"{100 * result.min_effect:g}% (needs >= {MIN_SAMPLES} runs per side)",
        markup=False,
        style="dim",
    )
    if result.synthetic:
        console.print("includes synthetic results (simulated devices): not real hardware", style="yellow")
    n = len(result.regressions)
    console.print(f"{n} regressed or failed point(s) of {len(result.rows)}", style="red" if n else "green")


def write_textfile(result: Regression, directory: str) -> Path:
    """``<dir>/farm_regress_<job>.prom``, replaced atomically, for node_exporter's textfile collector."""
    registry = CollectorRegistry()
    labels = ["job", "metric", "build", "baseline"]
    values = [result.job, result.metric, result.candidate[:40], result.baseline_spec[:40]]
    regressed = Gauge(
        "farm_regress_regressed_points",
        "Grid points where the checked build regressed against its baseline or measured nothing (farm regress)",
        labels,
        registry=registry,
    )
    compared = Gauge("farm_regress_compared_points", "Grid points farm regress compared", labels, registry=registry)
    worst = Gauge(
        "farm_regress_worst_change_ratio",
        "Largest relative worsening of the headline metric's median over the compared points (negative: better)",
        labels,
        registry=registry,
    )
    stamp = Gauge("farm_regress_last_run_timestamp_seconds", "When farm regress last ran", ["job"], registry=registry)
    regressed.labels(*values).set(len(result.regressions))
    compared.labels(*values).set(sum(1 for r in result.rows if r.worse_by is not None))
    changes = [r.worse_by for r in result.rows if r.worse_by is not None]
    worst.labels(*values).set(max(changes) if changes else 0.0)
    stamp.labels(result.job).set_to_current_time()
    path = Path(directory) / f"farm_regress_{result.job}.prom"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise ResultsError(f"cannot write the metrics file {path}: {exc}") from exc
    return path


def run_regress(args: argparse.Namespace) -> int:
    data = load_job_data(results_root(args.results), args.job, source="farm regress")
    result = regress(
        data, args.baseline, candidate=args.candidate, metric=args.metric, alpha=args.alpha, min_effect=args.min_effect
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print_table(result, Console(highlight=False, soft_wrap=True))
    if args.textfile_dir:
        write_textfile(result, args.textfile_dir)
    return 1 if result.regressions else 0
