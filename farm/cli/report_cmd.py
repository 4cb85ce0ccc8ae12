"""The analysis commands: ``farm report``, ``farm analyze bound|split``, ``farm export codl-dataset``, ``farm compare``.

All read the results at ``--results`` (default: ``$FARM_RESULTS``, else ``./farm-results``) through DuckDB and
never touch a device. Unknown jobs, metrics or axes are bad input (exit 2).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from farm.analysis import bound, compare, split
from farm.analysis.codl_export import SOC_COLUMNS, export_codl_dataset
from farm.analysis.jobdata import load_job_data, require_metric
from farm.analysis.report import DEFAULT_CV_THRESHOLD, build_report, write_report
from farm.analysis.stats import DEFAULT_ALPHA
from farm.cli.common import non_negative, results_root
from farm.errors import ConfigError

_PIPE_WIDTH = 300
_VERDICT_STYLE = {
    bound.SYNC: "cyan",
    bound.FLASH: "red",
    bound.RAM: "yellow",
    "better": "green",
    "worse": "red",
}


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        # Captured or piped output: do not squeeze wide tables into 80 columns.
        console = Console(width=_PIPE_WIDTH, highlight=False)
    return console


def _results_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", metavar="DIR", help="results root (default: $FARM_RESULTS or ./farm-results)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = subparsers.add_parser(
        "report",
        help="write a job's report (markdown, HTML, stats CSV, plots)",
        description="Per grid point × device: n, median, p90 and CV over repeats for each metric; counts by "
        "status, failures, the environment fingerprint, and plots chosen from the job's axes and metrics.",
    )
    r.add_argument("job", help="job name")
    r.add_argument(
        "--out", metavar="DIR", help="output directory (default: <results>/reports/<job>/, ./reports/<job>/ for a URI)"
    )
    r.add_argument(
        "--metric", action="append", metavar="M", help="report this metric (repeatable; default: all, first 4 shown)"
    )
    r.add_argument(
        "--cv-threshold",
        type=non_negative("--cv-threshold"),
        default=DEFAULT_CV_THRESHOLD,
        help=f"flag points whose coefficient of variation exceeds this (default: {DEFAULT_CV_THRESHOLD})",
    )
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    _results_arg(r)
    r.set_defaults(func=run_report)

    a = subparsers.add_parser("analyze", help="workload-specific analyses (bound, split)")
    asub = a.add_subparsers(dest="analysis", metavar="ANALYSIS")
    asub.required = True
    b = asub.add_parser(
        "bound",
        help="elastic-infer: synchronization-, Flash-IO- or RAM-IO-bound per device × sparsity",
        description=bound.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("job", help="job name")
    b.add_argument(
        "--loading-axis",
        metavar="NAME",
        help=f"axis setting LLAMA_LOAD_SPARSE_TENSOR 0/1 (default: the first of {', '.join(bound.LOADING_AXES)})",
    )
    b.add_argument(
        "--sync-ratio",
        type=non_negative("--sync-ratio"),
        default=bound.DEFAULT_SYNC_RATIO,
        help=f"T_enc/T_dec below this → synchronization-bound (default: {bound.DEFAULT_SYNC_RATIO})",
    )
    b.add_argument(
        "--ram-ratio",
        type=non_negative("--ram-ratio"),
        default=bound.DEFAULT_RAM_RATIO,
        help=f"T'_dec/T_dec at or above this → Flash-IO-bound, else RAM-IO-bound (default: {bound.DEFAULT_RAM_RATIO})",
    )
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _results_arg(b)
    b.set_defaults(func=run_bound)

    s = asub.add_parser(
        "split",
        help="CoDL: best CPU/GPU split ratio per op configuration × device, and its speed-ups",
        description=split.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("job", help="job name")
    s.add_argument(
        "--metric", default=split.DEFAULT_METRIC, help=f"metric to optimize (default: {split.DEFAULT_METRIC})"
    )
    s.add_argument("--ratio-axis", default=split.RATIO_AXIS, help=f"split ratio axis (default: {split.RATIO_AXIS})")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _results_arg(s)
    s.set_defaults(func=run_split)

    e = subparsers.add_parser("export", help="export results in other tools' formats")
    esub = e.add_subparsers(dest="format", metavar="FORMAT")
    esub.required = True
    c = esub.add_parser(
        "codl-dataset",
        help="per-SoC CSV latency datasets in the layout CoDL's latency predictors train on",
        description="Write the files CoDL's latency collector writes for a SoC (<out>/<soc>/t_*.csv) and its "
        "SoC yaml (<out>/soc/<soc>.yaml); see docs/analysis.md for the column mapping.",
    )
    c.add_argument("job", help="job name")
    c.add_argument("--out", metavar="DIR", required=True, help="output directory")
    c.add_argument(
        "--soc-column", metavar="COL", help=f"column naming the SoC (default: first of {', '.join(SOC_COLUMNS)})"
    )
    _results_arg(c)
    c.set_defaults(func=run_export_codl)

    k = subparsers.add_parser(
        "compare",
        help="compare two jobs point by point (medians, B/A, significance)",
        description=compare.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k.add_argument("job_a", help="baseline job")
    k.add_argument("job_b", help="job compared with the baseline")
    k.add_argument("--metric", action="append", metavar="M", help="compare this metric (repeatable)")
    k.add_argument(
        "--alpha",
        type=non_negative("--alpha"),
        default=DEFAULT_ALPHA,
        help=f"significance level (default: {DEFAULT_ALPHA})",
    )
    k.add_argument(
        "--where",
        action="append",
        metavar="AXIS=VALUE",
        default=[],
        help="compare only runs with this axis value (repeatable; e.g. --where threads=4 or p_threads=4)",
    )
    k.add_argument(
        "--pool",
        action="store_true",
        help="pool over axes only one job has, instead of refusing when they take several values",
    )
    k.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _results_arg(k)
    k.set_defaults(func=run_compare)


# -- helpers -------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}g}"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(_json_safe(payload), indent=2, default=str, allow_nan=False))


def _table(title: str, columns: Sequence[tuple[str, bool]]) -> Table:
    table = Table(title=Text(title), header_style="bold")
    for name, numeric in columns:
        table.add_column(Text(name), justify="right" if numeric else "left", overflow="fold")
    return table


def _synthetic_note(console: Console, synthetic: bool) -> None:
    if synthetic:
        console.print("includes synthetic results (simulated devices): not real hardware", style="yellow")


# -- commands ------------------------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> int:
    root = results_root(args.results)
    data = load_job_data(root, args.job, source="farm report")
    metrics = [require_metric(data, m, "farm report") for m in args.metric or []]
    report = build_report(data, metrics or None, args.cv_threshold)
    # Reports are files on this machine: under the results folder, or ./reports for results in an object store.
    out = Path(args.out) if args.out else (Path.cwd() if "://" in root else Path(root)) / "reports" / args.job
    files = write_report(report, data, out, with_plots=not args.no_plots)
    console = _console()
    counts = ", ".join(f"{n} {s}" for s, n in report.status_counts.items())
    console.print(f"{args.job}: {report.rows} rows ({counts}); {len(report.stats)} point statistics", markup=False)
    _synthetic_note(console, report.synthetic)
    if report.noisy:
        console.print(
            f"{len(report.noisy)} point(s) with CV above {100 * report.cv_threshold:.1f}% (see the report)",
            style="yellow",
        )
    for path in (files.markdown, files.html, files.stats_csv, *files.plots):
        console.print(f"wrote {path}", markup=False)
    if files.plot_note:
        console.print(files.plot_note, markup=False, style="dim")
    return 0


def run_bound(args: argparse.Namespace) -> int:
    data = load_job_data(results_root(args.results), args.job, source="farm analyze bound")
    result = bound.analyze_bound(data, args.loading_axis, args.sync_ratio, args.ram_ratio, source="farm analyze bound")
    if args.json:
        _print_json(result.to_json())
        return 0
    console = _console()
    folded = f" (with {', '.join(a[2:] for a in result.folded_axes)})" if result.folded_axes else ""
    console.print(f"{result.job}: loading axis {result.loading_axis[2:]!r}{folded}", markup=False)
    console.print(f"method: {result.method}", markup=False)
    table = _table(
        f"{result.job}: bound analysis",
        [
            ("device", False),
            ("point", False),
            ("n off/on", True),
            ("T_enc ms", True),
            ("T_dec ms", True),
            ("T'_dec ms", True),
            ("T_enc/T_dec", True),
            ("T'_dec/T_dec", True),
            ("p (T'_dec vs T_dec)", True),
            ("verdict", False),
            ("why", False),
        ],
    )
    for row in result.rows:
        table.add_row(
            Text(row.device),
            Text(bound.point_label(row)),
            Text(f"{row.n_off}/{row.n_on}"),
            Text(_fmt(row.t_enc_ms)),
            Text(_fmt(row.t_dec_ms)),
            Text(_fmt(row.t_dec_on_ms)),
            Text(_fmt(row.enc_dec_ratio, 3)),
            Text(_fmt(row.load_ratio, 3)),
            Text(_fmt(row.load_p_value, 2)),
            Text(row.verdict, style=_VERDICT_STYLE.get(row.verdict, "")),
            Text(row.reason),
        )
    console.print(table)
    for row in result.rows:
        where = f"{row.device}, {bound.point_label(row)}"
        console.print(f"{where}: T_enc, T_dec from {len(row.off_runs)} loading-off run(s) [{row.off_env}]: "
                      f"{' '.join(row.off_runs) or 'none'}", markup=False)  # fmt: skip
        console.print(f"{where}: T'_dec from {len(row.on_runs)} loading-on run(s) [{row.on_env}]: "
                      f"{' '.join(row.on_runs) or 'none'}", markup=False)  # fmt: skip
    _synthetic_note(console, result.synthetic)
    return 0


def run_split(args: argparse.Namespace) -> int:
    data = load_job_data(results_root(args.results), args.job, source="farm analyze split")
    result = split.analyze_split(data, args.metric, args.ratio_axis, source="farm analyze split")
    if args.json:
        _print_json(result.to_json())
        return 0
    console = _console()
    direction = "highest" if result.higher_is_better else "lowest"
    console.print(
        f"{result.job}: best {result.ratio_axis[2:]} by {direction} median {result.metric}; "
        "speed-up > 1 means the best split beats CPU-only (ratio 0) / GPU-only (ratio 1)",
        markup=False,
    )
    table = _table(
        f"{result.job}: best split",
        [
            ("device", False),
            ("op configuration", False),
            ("best ratio", True),
            (result.metric, True),
            ("CPU-only", True),
            ("GPU-only", True),
            ("× vs CPU", True),
            ("× vs GPU", True),
            ("n", True),
        ],
    )
    for row in result.rows:
        table.add_row(
            Text(row.device),
            Text(split.point_label(row)),
            Text(f"{row.best_ratio:g}"),
            Text(_fmt(row.best)),
            Text(_fmt(row.cpu_only)),
            Text(_fmt(row.gpu_only)),
            Text(_fmt(row.speedup_vs_cpu, 3)),
            Text(_fmt(row.speedup_vs_gpu, 3)),
            Text(str(row.n)),
        )
    console.print(table)
    _synthetic_note(console, result.synthetic)
    return 0


def run_export_codl(args: argparse.Namespace) -> int:
    data = load_job_data(results_root(args.results), args.job, source="farm export codl-dataset")
    result = export_codl_dataset(data, Path(args.out), args.soc_column, source="farm export codl-dataset")
    console = _console()
    for path, n in result.files.items():
        console.print(f"wrote {path} ({n} rows)", markup=False)
    for path, source in result.soc_files.items():
        console.print(f"wrote {path} (kernel_wave_size: {source})", markup=False)
    for soc in result.no_soc_file:
        console.print(f"no SoC yaml for {soc}: its runs printed no OpenCL runtime line", markup=False, style="yellow")
    for reason, n in result.skipped.items():
        console.print(f"skipped {n} measurement row(s): {reason}", markup=False, style="yellow")
    for files, why in result.not_exported.items():
        console.print(f"not exported: {files}: {why}", markup=False, style="dim")
    _synthetic_note(console, result.synthetic)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    root = results_root(args.results)
    a = load_job_data(root, args.job_a, source="farm compare")
    b = load_job_data(root, args.job_b, source="farm compare")
    if args.alpha <= 0 or args.alpha >= 1:
        raise ConfigError.single("farm compare", "--alpha", f"must be within (0, 1), got {args.alpha}")
    where = compare.parse_where(args.where, source="farm compare")
    result = compare.compare_jobs(a, b, args.metric, args.alpha, "farm compare", where, args.pool)
    if args.json:
        _print_json(result.to_json())
        return 0
    console = _console()
    if not result.metrics:
        console.print(f"no metric measured by both jobs ({a.job}: {', '.join(a.metrics) or 'none'}; "
                      f"{b.job}: {', '.join(b.metrics) or 'none'})", style="yellow", markup=False)  # fmt: skip
    if result.where:
        console.print("filtered on " + ", ".join(f"{k[2:]}={v}" for k, v in result.where.items()), markup=False)
    for warning in result.warnings:
        console.print(f"warning: {warning}", style="yellow", markup=False)
    for side, axes in (("A", result.only_a), ("B", result.only_b)):
        if axes:
            console.print(f"axes only in {side}: {', '.join(x[2:] for x in axes)}", style="dim")
    table = _table(
        f"A = {result.job_a}, B = {result.job_b}",
        [
            ("device", False),
            ("point", False),
            ("metric", False),
            ("n A/B", True),
            ("median A", True),
            ("median B", True),
            ("B/A", True),
            ("p", True),
            ("", False),
        ],
    )
    for row in result.rows:
        table.add_row(
            Text(row.device),
            Text(compare.point_label(row)),
            Text(row.metric),
            Text(f"{row.n_a}/{row.n_b}"),
            Text(_fmt(row.median_a)),
            Text(_fmt(row.median_b)),
            Text(_fmt(row.ratio, 3)),
            Text(_fmt(row.p_value, 2)),
            Text(row.verdict, style=_VERDICT_STYLE.get(row.verdict, "")),
        )
    console.print(table)
    console.print(
        f"{len(result.rows)} matched point×metric rows; unmatched points: {result.unmatched_a} in A, "
        f"{result.unmatched_b} in B; Welch's t-test, alpha {result.alpha:g}",
        markup=False,
        style="dim",
    )
    _synthetic_note(console, result.synthetic)
    return 0
