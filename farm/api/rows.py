"""One submission's result rows, a page at a time, as JSON-ready dicts or a Parquet file.

A submission's rows are those of its job name whose ``job_id`` column is its job id.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from farm.analysis.jobdata import is_metric, job_headline, order_metrics
from farm.client import JobStatus
from farm.results import ResultsStore

MAX_PAGE = 10_000


@dataclass(frozen=True)
class Page:
    table: pa.Table  # the page's rows
    total: int  # rows of the submission (with the filter)
    offset: int
    headline: str | None  # the job's headline metric among the columns, if any

    @property
    def next_offset(self) -> int | None:
        end = self.offset + self.table.num_rows
        return end if end < self.total else None

    def json_rows(self) -> list[dict[str, Any]]:
        return [{k: _json_value(v) for k, v in row.items()} for row in self.table.to_pylist()]

    def parquet(self) -> bytes:
        sink = io.BytesIO()
        pq.write_table(self.table, sink)
        return sink.getvalue()


def submission_rows(store: ResultsStore, status: JobStatus, *, failures: bool = False) -> pa.Table:
    """The rows of submission ``status`` in the order they started; ``failures``: only those not ``ok``."""
    table = store.table(status.job)
    if "job_id" not in table.column_names:
        return table.slice(0, 0)
    keep = pc.equal(table["job_id"], status.job_id)
    if failures:
        keep = pc.and_(keep, pc.not_equal(table["status"], "ok"))
    table = table.filter(keep)
    return table.take(pc.sort_indices(table, [("started_at", "ascending"), ("run_id", "ascending")]))


def page(table: pa.Table, offset: int, limit: int) -> Page:
    offset = max(0, offset)
    limit = max(1, min(limit, MAX_PAGE))
    return Page(table.slice(offset, limit), table.num_rows, offset, headline_metric(table))


def headline_metric(table: pa.Table) -> str | None:
    """The first of the job's headline metrics (then the usual ones) that has a numeric column here."""
    numeric = [
        f.name
        for f in table.schema
        if is_metric(f.name) and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
    ]
    settings = table["settings"].to_pylist() if "settings" in table.column_names else []
    ordered = order_metrics(numeric, job_headline(settings))
    return ordered[0] if ordered else None


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity: "not measured"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
