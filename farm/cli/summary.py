"""The table printed after a sweep: one line per grid point × device with median metrics over repeats."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from farm.analysis.jobdata import SLOT, axis_name, format_value, group_rows, load_job_data
from farm.analysis.stats import median
from farm.cli.common import stdout
from farm.errors import ConfigError, FarmError

if TYPE_CHECKING:
    from farm.client import JobStatus

#: Metric columns shown: the job's headline metrics first (farm.workloads.HEADLINES), then the usual ones.
MAX_METRICS = 4


def print_summary(root: str, job: str, status: JobStatus) -> None:
    """The job's status counts, then one line per device × grid point of *this job's* ok runs (columns other
    jobs in the results root use are left out) with the median of its first metrics; device ids and parameter
    values are printed whole, folded rather than cut when the terminal is narrow."""
    console = stdout()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status.statuses.items())) or "no runs"
    skipped = f", {status.skipped} skipped (already ok)" if status.skipped else ""
    if status.not_started:
        skipped += f", {status.not_started} not started"
    console.print(f"[bold]{job}[/] ({status.job_id}): {status.state}: {counts}{skipped}")
    try:
        data = load_job_data(root, job, source="summary")
    except ConfigError:
        return  # no row at all (every run was skipped, or nothing was recorded)
    except FarmError as exc:
        console.print(f"[yellow]no result table: {exc}[/]")
        return
    rows = data.measurements
    if not rows:
        return
    params = data.independent_axes()
    metrics = list(data.metrics[:MAX_METRICS])
    groups = group_rows(rows, [SLOT, *params])
    out = Table(title=f"{job}: median over repeats (ok runs)", show_edge=False)
    out.add_column("device", overflow="fold")
    for p in params:
        out.add_column(axis_name(p), overflow="fold")
    out.add_column("n", justify="right", overflow="fold")
    for m in metrics:
        out.add_column(_label(m), justify="right", overflow="fold")
    for key, rs in groups.items():
        cells = [str(key[0]), *(format_value(v) for v in key[1:]), str(len(rs))]
        for m in metrics:
            vals = data.samples(m, rs)
            cells.append(f"{median(vals):.2f}" if vals else "")
        out.add_row(*cells)
    console.print(out)
    hint = "SELECT * FROM runs WHERE job = '" + job + "'"  # noqa: S608 - printed as a hint, never executed
    console.print(f'[dim]query: farm query "{hint}" --results {root}[/]')


def _label(metric: str) -> str:
    """``decode_tokens_per_s`` → ``decode tok/s``: compact headers keep the table inside 80 columns."""
    units = (
        ("_tokens_per_s", " tok/s"),
        ("_per_s", "/s"),
        ("_mib", " MiB"),
        ("_mb", " MB"),
        ("_ms", " ms"),
        ("_s", " s"),
    )
    for suffix, unit in units:
        if metric.endswith(suffix):
            return metric[: -len(suffix)].replace("_", " ") + unit
    return metric.replace("_", " ")
