"""One job's rows read from the results store through DuckDB, split into grid axes, metrics and fingerprints.

Every analysis starts here: :func:`load_job_data` runs ``SELECT * FROM runs WHERE job = $1`` on the store's DuckDB
view (the job name bound as a parameter; on an object store it reads that job's files only, through pyarrow),
drops the columns that only other jobs use, and classifies the rest:

- *axes*: ``p_<axis>`` grid parameters (kept with their prefix, as column names);
- *metrics*: numeric columns that measure the run (``decode_tokens_per_s``, ``latency_ms``, ``peak_rss_mib``),
  i.e. everything numeric except the required columns, parameters, fingerprints and the bookkeeping extras
  in :data:`NOT_METRICS` / :data:`NOT_METRIC_PREFIXES`;
- *fingerprints*: ``fp_*`` columns.

Only rows with ``status = 'ok'`` that are not warm-ups are measurements (:attr:`JobData.measurements`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import duckdb
import pyarrow as pa

from farm.analysis.stats import finite
from farm.errors import ConfigError, ResultsError
from farm.results.query import connect, one_line
from farm.results.schema import REQUIRED_COLUMNS, check_job_name
from farm.results.store import ResultsStore

log = logging.getLogger(__name__)

#: What analyses group by and call "device": the slot a run used (a phone, one TPU chip, one NPU), not the
#: inventory device (``device_id``), which on a box holds several slots measured apart.
SLOT = "slot"
#: Numeric extras that describe how a run went rather than what it measured.
NOT_METRICS: frozenset[str] = frozenset(
    {*REQUIRED_COLUMNS, "exit_code", "bytes_pushed", "dispatch_latency_s", "temp_start_c", "temp_end_c"}
    | {"repeat_count"}  # adaptive repeats: how many a point got (its interval: the ``ci_`` columns)
    | {"energy_valid", "energy_samples", "energy_period_s"}  # how the energy was read, not a measurement
)
#: Prefixes of columns that are not measurements: grid parameters, fingerprints, the thermal gate's figures and
#: the samplers' own bookkeeping (``sampler_polls``, ``sampler_poll_ms``: how often and how fast they looked).
NOT_METRIC_PREFIXES: tuple[str, ...] = ("p_", "fp_", "temp_gate", "cooldown_", "thermal_", "sampler_", "ci_")
#: Metrics put first (in this order, after the job's own headline metrics) when a report, a summary or a plot
#: needs "the main metric".
HEADLINE_METRICS: tuple[str, ...] = (
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "throughput_samples_per_s",
    "latency_ms",
    "first_token_latency_s",
    "makespan_s",
    "peak_rss_mib",
)

Row = dict[str, Any]


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sort_key(value: object) -> tuple[int, Any]:
    # Mixed and missing values sort deterministically: None first, then numbers, then text.
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if is_number(value):
        return (1, value)
    return (2, str(value))


def point_sort_key(key: Sequence[object]) -> tuple[tuple[int, Any], ...]:
    """A sort key for a tuple of mixed values (grid point keys)."""
    return tuple(_sort_key(v) for v in key)


def group_rows(rows: Iterable[Row], columns: Sequence[str]) -> dict[tuple[Any, ...], list[Row]]:
    """Rows grouped by the values of ``columns``, groups ordered by those values."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(c) for c in columns), []).append(row)
    return {k: groups[k] for k in sorted(groups, key=point_sort_key)}


def axis_name(column: str) -> str:
    """``p_threads`` → ``threads``; other columns unchanged (``slot`` → ``device``)."""
    if column == SLOT:
        return "device"
    return column[2:] if column.startswith("p_") else column


def format_value(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe(columns: Sequence[str], key: Sequence[object]) -> str:
    """``threads=4, batch=8`` for a group key over ``columns``."""
    return ", ".join(f"{axis_name(c)}={format_value(v)}" for c, v in zip(columns, key, strict=True))


def is_metric(column: str) -> bool:
    return column not in NOT_METRICS and not column.startswith(NOT_METRIC_PREFIXES)


def _metric_rank(metric: str, headline: Sequence[str]) -> tuple[int, int, str]:
    if metric in headline:
        return (0, list(headline).index(metric), metric)
    if metric in HEADLINE_METRICS:
        return (1, HEADLINE_METRICS.index(metric), metric)
    if metric.startswith("throughput_") or metric.endswith("_per_s"):  # e.g. a demo's pictures_per_s
        return (1, HEADLINE_METRICS.index("throughput_samples_per_s"), metric)
    return (2, 0, metric)


def order_metrics(metrics: Iterable[str], headline: Sequence[str] = ()) -> list[str]:
    """The job's ``headline`` metrics first, then :data:`HEADLINE_METRICS` (other rates, ``throughput_*`` or
    ``*_per_s``, among them), then A–Z."""
    return sorted(set(metrics), key=lambda m: _metric_rank(m, headline))


def job_headline(settings: Sequence[object]) -> tuple[str, ...]:
    """The headline metrics of the workload named by the last of the rows' ``settings`` values that has one."""
    from farm.workloads import headline_metrics

    for text in reversed(settings):
        if isinstance(text, str):
            try:
                parsed = json.loads(text)
                return headline_metrics(str(parsed["workload"]), parsed.get("workload_options"))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
    return ()


def higher_is_better(metric: str) -> bool:
    """Rates (``*_per_s``, ``throughput*``) and work per joule (``*_per_j``) are better high; times, latencies,
    sizes and energy are better low."""
    return metric.endswith(("_per_s", "_per_j", "_per_second")) or metric.startswith("throughput")


@dataclass(frozen=True)
class JobData:
    """Every stored row of one job and what its columns are."""

    job: str
    root: str
    rows: list[Row]
    axes: tuple[str, ...]
    metrics: tuple[str, ...]
    fingerprints: tuple[str, ...]
    columns: tuple[str, ...] = field(default=())
    headline: tuple[str, ...] = ()  # the workload's headline metrics (farm.workloads.HEADLINES)

    @cached_property
    def measurements(self) -> list[Row]:
        """Rows that measure something: ``status = 'ok'`` and not a warm-up."""
        return [r for r in self.rows if r["status"] == "ok" and not r["warmup"]]

    @property
    def synthetic(self) -> bool:
        """True if any row came from a simulated device (virtual phone, scripted box)."""
        return any(r["synthetic"] for r in self.rows)

    @property
    def devices(self) -> list[str]:
        return sorted({r[SLOT] for r in self.rows})

    def values(self, column: str, rows: Iterable[Row] | None = None) -> list[Any]:
        """Distinct non-null values of ``column`` among ``rows`` (default: measurements), sorted."""
        seen = {r.get(column) for r in (self.measurements if rows is None else rows)} - {None}
        return sorted(seen, key=_sort_key)

    def numeric_axes(self) -> list[str]:
        return [a for a in self.axes if self.values(a) and all(is_number(v) for v in self.values(a))]

    def independent_axes(self, axes: Sequence[str] | None = None) -> list[str]:
        """``axes`` minus those that only restate another (a zipped pair such as threads ↔ cores).

        Axis B restates axis A when, over the measurements, each value of A goes with exactly one value of B
        and the other way round. Of such a pair the numeric axis (else the earlier one) is kept.
        """
        chosen = list(self.axes if axes is None else axes)
        rows = self.measurements
        # Numeric axes first so they win ties; stable sort keeps the column order otherwise.
        ranked = sorted(chosen, key=lambda a: 0 if a in self.numeric_axes() else 1)
        kept: list[str] = []
        for axis in ranked:
            if not any(bijective(rows, k, axis) for k in kept):
                kept.append(axis)
        return [a for a in chosen if a in kept]

    def main_metric(self, preferred: Sequence[str] | None = None) -> str | None:
        """The first of ``preferred`` (default: the ordered metrics) measured in this job."""
        for metric in preferred or order_metrics(self.metrics, self.headline):
            if metric in self.metrics:
                return metric
        return None

    def samples(self, metric: str, rows: Iterable[Row]) -> list[float]:
        """Finite values of ``metric`` among ``rows``."""
        return finite([r.get(metric) for r in rows])


def bijective(rows: Sequence[Row], a: str, b: str) -> bool:
    """True if, over ``rows``, each value of column ``a`` goes with one value of ``b`` and vice versa."""
    forward: dict[Any, Any] = {}
    backward: dict[Any, Any] = {}
    for r in rows:
        va, vb = r.get(a), r.get(b)
        if forward.setdefault(va, vb) != vb or backward.setdefault(vb, va) != va:
            return False
    return bool(forward)


def _read_job(root: str, job: str) -> tuple[list[Row], list[str]]:
    store = ResultsStore(root)
    if store.is_local:
        con = connect(store)
        try:
            table: pa.Table = con.sql("SELECT * FROM runs WHERE job = $1", params=[job]).to_arrow_table()
        except duckdb.Error as exc:
            raise ResultsError(f"cannot read job {job!r} from {root}: {one_line(str(exc))}") from exc
        finally:
            con.close()
    else:  # an object store: fetch this job's files only, not every job's
        table = store.table(job)
    # The view unions every job's columns: keep only those this job fills.
    columns = [c for c in table.column_names if table.column(c).null_count < table.num_rows]
    return table.select(columns).to_pylist(), columns


def load_job_data(root: str, job: str, source: str = "results") -> JobData:
    """Every row of ``job`` under the results root ``root``.

    Raises :class:`ConfigError` (exit 2) for a job name that cannot exist or a job without rows, naming the
    jobs that do have results; ``source`` names the command in the message.
    """
    try:
        check_job_name(job)
    except ResultsError as exc:
        raise ConfigError.single(source, "job", str(exc)) from exc
    rows, columns = _read_job(root, job)
    if not rows:
        known = ", ".join(ResultsStore(root).jobs()) or "none"
        raise ConfigError.single(source, "job", f"no results for job {job!r} in {root} (jobs with results: {known})")
    rows.sort(key=lambda r: (r[SLOT], r["started_at"], r["run_id"], r["attempt"]))
    axes = tuple(c for c in columns if c.startswith("p_"))
    fingerprints = tuple(c for c in columns if c.startswith("fp_"))
    measured = [r for r in rows if r["status"] == "ok" and not r["warmup"]]
    headline = job_headline([r.get("settings") for r in sorted(rows, key=lambda r: r["started_at"])])
    measured_columns = (c for c in columns if is_metric(c) and any(is_number(r.get(c)) for r in measured))
    metrics = tuple(order_metrics(measured_columns, headline))
    log.debug("job %s: %d rows, axes %s, metrics %s", job, len(rows), axes, metrics)
    return JobData(job, root, rows, axes, metrics, fingerprints, tuple(columns), headline)


def require_metric(data: JobData, metric: str, source: str) -> str:
    """``metric`` if the job measured it, else a :class:`ConfigError` listing what it did measure."""
    if metric not in data.metrics:
        measured = ", ".join(data.metrics) or "none"
        raise ConfigError.single(
            source, "--metric", f"job {data.job!r} has no metric {metric!r} (measured: {measured})"
        )
    return metric
