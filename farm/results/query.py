"""SQL over the results dataset: a DuckDB connection where the table ``runs`` holds every stored row and the
table ``cancellations`` one row per cancelled submission (runs that never started are counted there, not as rows).

On a local store ``runs`` is a view over ``read_parquet('<root>/runs/*/*.parquet')`` with hive partitioning
and union by name, so DuckDB scans the files itself (in parallel, reading only the columns a query needs). On
any other filesystem the rows are read through pyarrow and the Arrow table is registered with DuckDB. With no
files at all ``runs`` is an empty table with the required columns, so queries still bind. ``job`` comes from
the partition directory (the files do not store it) and is forced to VARCHAR so a job named ``2024`` stays a
string. Timestamps are shown in UTC. Rows of files written before the ``slot`` column read as today's rows
(:func:`farm.results.schema.with_slot`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import duckdb
import pyarrow as pa

from farm.errors import ConfigError, ResultsError
from farm.results.schema import empty_table
from farm.results.store import ResultsStore

log = logging.getLogger(__name__)

# Errors of these classes are the dataset's or the machine's fault; every other DuckDB error is about the SQL.
_STORE_ERRORS: tuple[type[duckdb.Error], ...] = (duckdb.IOException, duckdb.InternalException)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def one_line(message: str) -> str:
    """DuckDB's message without the echoed SQL and caret lines, on one line."""
    head = message.strip().split("\n\n", 1)[0]
    return " ".join(part.strip() for part in head.splitlines() if part.strip())


def connect(store: ResultsStore | str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the ``runs`` table over ``store``."""
    if isinstance(store, str):
        store = ResultsStore(store)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        if store.is_local and store.jobs():
            pattern = f"{store.runs_dir()}/*/*.parquet"
            # The only interpolated value is our own path, quoted.
            con.execute(_RUNS_OVER_FILES.format(pattern=_sql_string(pattern)))
        else:
            table: pa.Table = store.table() if not store.is_local else empty_table()
            con.register("runs", table)
        con.register("cancellations", cancellations_table(store))
    except duckdb.Error as exc:
        con.close()
        raise ResultsError(f"cannot open the results at {store.root}: {one_line(str(exc))}") from exc
    return con


# Files from before the ``slot`` column stored the slot id as ``device_id`` (see
# farm.results.schema.with_slot): the UNION BY NAME gives every row a ``slot`` (NULL in such files, and when no
# file has one the column still exists), and ``runs`` reads those rows as today's. No per-file schema probe: the
# view costs what the plain read_parquet costs.
_RUNS_OVER_FILES = (
    "CREATE VIEW runs AS SELECT * REPLACE ("
    "CASE WHEN slot IS NULL THEN split_part(device_id, '/', 1) ELSE device_id END AS device_id, "
    "coalesce(slot, device_id) AS slot) FROM ("
    "SELECT job, * EXCLUDE (job) FROM read_parquet({pattern}, hive_partitioning = true, union_by_name = true, "
    "hive_types = {{'job': 'VARCHAR'}}) UNION ALL BY NAME (SELECT NULL::VARCHAR AS slot LIMIT 0))"
)


_CANCELLATION_SCHEMA = pa.schema(
    [
        ("job", pa.string()),
        ("job_id", pa.string()),
        ("total", pa.int64()),
        ("not_started", pa.int64()),
        ("finished", pa.int64()),
        ("skipped", pa.int64()),
        ("statuses", pa.string()),
        ("submitted_at", pa.timestamp("us", tz="UTC")),
        ("cancelled_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)


def cancellations_table(store: ResultsStore) -> pa.Table:
    """One row per cancelled submission (``<root>/jobs/<job>/<job_id>.json``): how many runs never started."""
    rows = [r for r in store.job_records() if r.get("state") == "cancelled"]
    columns: dict[str, list[Any]] = {name: [] for name in _CANCELLATION_SCHEMA.names}
    for r in rows:
        for name, column in columns.items():
            value = r.get(name)
            if name == "statuses":
                value = json.dumps(value or {}, sort_keys=True)
            elif name.endswith("_at") and value is not None:
                value = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
            column.append(value)
    return pa.table(columns, schema=_CANCELLATION_SCHEMA)


def query(store: ResultsStore | str, sql: str) -> pa.Table:
    """Run ``sql`` against the table ``runs`` of the store and return the result as an Arrow table.

    Raises :class:`ConfigError` (bad input, exit code 2) when DuckDB rejects the SQL (parse, binder, catalog,
    conversion errors…), with DuckDB's message on one line; :class:`ResultsError` when the files cannot be
    read.
    """
    con = connect(store)
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement without a result set (SET, CREATE …)
            return pa.table({})
        out: pa.Table = relation.to_arrow_table()
        return out
    except _STORE_ERRORS as exc:
        raise ResultsError(one_line(str(exc))) from exc
    except duckdb.Error as exc:
        raise ConfigError.single("query", "", one_line(str(exc))) from exc
    finally:
        con.close()
