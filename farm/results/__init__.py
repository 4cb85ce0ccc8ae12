"""The results store: one Parquet row per run outcome, partitioned by job, and SQL over it with DuckDB."""

from __future__ import annotations

from farm.results.query import connect, query
from farm.results.schema import REQUIRED_COLUMNS, REQUIRED_SCHEMA, STATUSES, validate_row
from farm.results.store import DEFAULT_ROOT, CompactionResult, ResultsStore
from farm.results.writer import ResultsWriter

__all__ = [
    "DEFAULT_ROOT",
    "REQUIRED_COLUMNS",
    "REQUIRED_SCHEMA",
    "STATUSES",
    "CompactionResult",
    "ResultsStore",
    "ResultsWriter",
    "connect",
    "query",
    "validate_row",
]
