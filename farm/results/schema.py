"""The shape of a result row: required columns, their Arrow types, row validation (rows → Arrow: ``batches``).

One row per run outcome. Beside the required columns a row may carry any number of

- ``p_<axis>`` grid parameters (bool, int, float or str; an axis mixing int and float is stored as float),
- ``fp_*`` environment fingerprint columns (str),
- flat, unit-suffixed metrics and other extras (``decode_tokens_per_s``, ``peak_rss_mib``, ``temp_start_c``):
  numbers are stored as float64 whatever their Python type, so a metric that is sometimes an int never gives
  two files two different types for one column; bool and str extras keep their type.

A column keeps one *kind* (bool, number, str) within a job; :class:`ColumnKinds` enforces that across the rows
of a writer and the files already in the job's partition. ``None`` means "not measured" and is allowed
everywhere except in required non-nullable columns. The ``job`` column is not stored inside the files: the
hive partition directory ``job=<name>`` carries it, and every reader adds it back.

``device_id`` is the inventory device a run used and ``slot`` the leased unit of it: the same text for a phone
or a host, ``<device>/chip<N>`` / ``<device>/npu<N>`` on a box (:mod:`farm.specs.inventory`). Files written
before ``slot`` existed stored the slot id as ``device_id``; :func:`with_slot` reads such a file as today's rows
(``slot`` = the stored value, ``device_id`` = its part before ``/``), and the DuckDB view does the same.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from farm.errors import ResultsError

STATUSES: frozenset[str] = frozenset({"ok", "failed", "timeout", "infra_error", "parse_error", "cancelled"})

#: Required columns in the order files store them; ``job`` comes from the partition directory.
REQUIRED_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("job", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("slot", pa.string(), nullable=False),
        pa.field("device_kind", pa.string(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=True),
        pa.field("attempt", pa.int64(), nullable=False),
        pa.field("repeat", pa.int64(), nullable=False),
        pa.field("warmup", pa.bool_(), nullable=False),
        pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("synthetic", pa.bool_(), nullable=False),
        pa.field("command", pa.string(), nullable=False),
        pa.field("log_path", pa.string(), nullable=False),
    ]
)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(REQUIRED_SCHEMA.names)
#: Required columns written inside each part file (all but the partition column).
FILE_REQUIRED_SCHEMA: pa.Schema = pa.schema([f for f in REQUIRED_SCHEMA if f.name != "job"])

_REQUIRED_SET = frozenset(REQUIRED_COLUMNS)
_STR_COLUMNS = ("run_id", "device_id", "slot", "device_kind", "node", "command", "log_path")
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Job names become directory names and DuckDB hive partition values: keep them free of characters that need
# URL-encoding or path handling, and never starting with '.' or '_' (readers skip such names as hidden files).
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")

Kind = Literal["bool", "number", "str"]
_NONE = type(None)
_KIND_BY_TYPE: dict[type, Kind] = {bool: "bool", int: "number", float: "number", str: "str"}
#: Exact Python types the fast path of :class:`~farm.results.batches.RowValidator` accepts per column kind and
#: per required column (other types take the slow path, :func:`validate_row`).
TYPES_BY_KIND: dict[Kind, frozenset[type]] = {
    "bool": frozenset({bool, _NONE}),
    "number": frozenset({int, float, _NONE}),
    "str": frozenset({str, _NONE}),
}
REQUIRED_TYPES: dict[str, frozenset[type]] = {
    **{c: frozenset({str}) for c in ("job", "run_id", "device_id", "slot", "device_kind", "node", "status")},
    **{c: frozenset({str}) for c in ("command", "log_path")},
    "error": frozenset({str, _NONE}),
    "attempt": frozenset({int}),
    "repeat": frozenset({int}),
    "warmup": frozenset({bool}),
    "started_at": frozenset({datetime}),
    "duration_s": frozenset({int, float}),
    "synthetic": frozenset({bool}),
}


def slot_device(slot: str) -> str:
    """The inventory device id of a slot id: device ids never contain ``/`` (``farm.specs.types.Ident``)."""
    return slot.split("/", 1)[0]


def with_slot(table: pa.Table) -> pa.Table:
    """``table`` (one part file) as today's rows: a file from before the ``slot`` column stored the slot id as
    ``device_id``; it gets ``slot`` = that value and ``device_id`` = :func:`slot_device` of it. Other tables, and
    tables without ``device_id`` (a read of a few columns), are returned as they are."""
    names = table.column_names
    if "slot" in names or "device_id" not in names:
        return table
    i = names.index("device_id")
    slots = table.column(i)
    devices = pc.list_element(pc.split_pattern(slots, "/", max_splits=1), 0)
    field = table.schema.field(i)
    table = table.set_column(i, field, devices.cast(field.type))
    return table.add_column(i + 1, pa.field("slot", field.type, nullable=field.nullable), slots)


def check_job_name(job: str) -> str:
    """Return ``job`` if it can name a partition directory, else raise :class:`ResultsError`."""
    if not isinstance(job, str) or not _JOB_NAME.match(job) or len(job) > 200:
        raise ResultsError(
            f"job name {job!r} cannot name a results partition: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return job


def plain_column_name(column: Any) -> bool:
    """Whether ``column`` can name a column: a plain identifier."""
    return isinstance(column, str) and _COLUMN_NAME.match(column) is not None


def _kind_of(value: Any) -> Kind:
    kind = _KIND_BY_TYPE.get(type(value))
    if kind is not None:
        return kind
    # Subclasses and foreign scalars (numpy, decimal): bool before number, as bool is an int subclass.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Real):
        return "number"
    if isinstance(value, str):
        return "str"
    raise TypeError(type(value).__name__)


def kind_of_arrow(dtype: pa.DataType) -> Kind | None:
    """The kind an Arrow column type stores, or ``None`` for types rows never produce (e.g. null)."""
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "str"
    return None


def validate_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Check one row against the contract and return a normalized copy.

    Normalization: ``started_at`` converted to UTC, ``duration_s`` to float. Raises :class:`ResultsError`
    naming the row's ``run_id`` and the offending column.
    """
    if not isinstance(row, Mapping):
        raise ResultsError(f"a result row must be a mapping, got {type(row).__name__}")
    rid = row.get("run_id", "?")
    missing = [c for c in REQUIRED_COLUMNS if c not in row]
    if missing:
        raise ResultsError(f"result row {rid!r}: missing required column(s) {', '.join(missing)}")

    def bad(column: str, reason: str) -> ResultsError:
        return ResultsError(f"result row {rid!r}: {column}: {reason} (got {row.get(column)!r})")

    out = dict(row)
    check_job_name(row["job"])
    for column in _STR_COLUMNS:
        if not isinstance(row[column], str):
            raise bad(column, "expected a string")
    if not row["run_id"]:
        raise bad("run_id", "must not be empty")
    if row["status"] not in STATUSES:
        raise bad("status", f"expected one of {', '.join(sorted(STATUSES))}")
    if row["error"] is not None and not isinstance(row["error"], str):
        raise bad("error", "expected a string or None")
    for column, low in (("attempt", 1), ("repeat", 0)):
        value = row[column]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or low > int(value):
            raise bad(column, f"expected an integer >= {low}")
        out[column] = int(value)
    for column in ("warmup", "synthetic"):
        if not isinstance(row[column], bool):
            raise bad(column, "expected a bool")
    started = row["started_at"]
    if not isinstance(started, datetime) or started.tzinfo is None or started.utcoffset() is None:
        raise bad("started_at", "expected a timezone-aware datetime")
    out["started_at"] = started.astimezone(UTC)
    duration = row["duration_s"]
    if isinstance(duration, bool) or not isinstance(duration, numbers.Real) or not float(duration) >= 0:
        raise bad("duration_s", "expected a number >= 0")
    out["duration_s"] = float(duration)

    for column, value in row.items():
        if column in _REQUIRED_SET:
            continue
        if not plain_column_name(column):
            raise ResultsError(f"result row {rid!r}: column name {column!r} is not a plain identifier")
        if value is None:
            continue
        try:
            kind = _kind_of(value)
        except TypeError:
            raise bad(column, "expected a scalar (bool, int, float, str) or None") from None
        if column.startswith("fp_") and kind != "str":
            raise bad(column, "fingerprint columns hold strings")
        if type(value) not in _KIND_BY_TYPE:  # e.g. numpy.float32, a str subclass: store the plain value
            out[column] = (
                bool(value)
                if kind == "bool"
                else str(value)
                if kind == "str"
                else int(value)
                if isinstance(value, numbers.Integral)
                else float(value)
            )
    return out


class ColumnKinds:
    """The kind (bool, number, str) of every extra column seen so far; refuses a row that changes one."""

    def __init__(self, schema: pa.Schema | None = None) -> None:
        self._kinds: dict[str, Kind] = {}
        if schema is not None:
            for field in schema:
                kind = kind_of_arrow(field.type)
                if field.name not in _REQUIRED_SET and kind is not None:
                    self._kinds[field.name] = kind

    def get(self, column: str) -> Kind | None:
        return self._kinds.get(column)

    def check(self, row: Mapping[str, Any]) -> list[tuple[str, Kind]]:
        """Raise if ``row`` changes a known column's kind; return the new columns it would introduce."""
        new: list[tuple[str, Kind]] = []
        for column, value in row.items():
            if value is None or column in _REQUIRED_SET:
                continue
            kind = _kind_of(value)
            known = self._kinds.get(column)
            if known is None:
                new.append((column, kind))
            elif known != kind:
                raise ResultsError(
                    f"result row {row.get('run_id')!r}: column {column!r} holds {known} values in this job, "
                    f"got {kind} {value!r}"
                )
        return new

    def learn(self, new: Iterable[tuple[str, Kind]]) -> None:
        for column, kind in new:
            self._kinds.setdefault(column, kind)


def empty_table() -> pa.Table:
    """A table with the required columns and no rows (what readers return for an empty dataset)."""
    return REQUIRED_SCHEMA.empty_table()
