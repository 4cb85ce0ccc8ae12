"""The shape of a result row: required columns, their Arrow types, row validation and rows → Arrow batches.

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

import itertools
import numbers
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
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
# Bound on cached row shapes: many optional columns could combine into very many None patterns.
_MAX_SHAPES = 4096
_NONE = type(None)
_KIND_BY_TYPE: dict[type, Kind] = {bool: "bool", int: "number", float: "number", str: "str"}
# Exact Python types the fast path of RowValidator accepts per column (other types take the slow path).
_TYPES_BY_KIND: dict[Kind, frozenset[type]] = {
    "bool": frozenset({bool, _NONE}),
    "number": frozenset({int, float, _NONE}),
    "str": frozenset({str, _NONE}),
}
_REQUIRED_TYPES: dict[str, frozenset[type]] = {
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
        if not isinstance(column, str) or not _COLUMN_NAME.match(column):
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


def _column_order(columns: Iterable[str]) -> list[str]:
    # Readable files: required columns, then grid parameters, metrics and extras, then fingerprints.
    params: list[str] = []
    extras: list[str] = []
    fingerprints: list[str] = []
    for c in columns:
        if c in _REQUIRED_SET:
            continue
        (params if c.startswith("p_") else fingerprints if c.startswith("fp_") else extras).append(c)
    return [*FILE_REQUIRED_SCHEMA.names, *params, *extras, *fingerprints]


class RowShape:
    """The column names of validated rows and the types of their values, as :class:`RowValidator` accepted them.

    The validator hands out one object per shape it has seen, and every shape with the same column names
    shares one ``layout`` (the first such shape): a :class:`RowBatch` groups rows by identity, without hashing
    40 names per row.
    """

    __slots__ = ("columns", "float_columns", "layout", "started_index")

    def __init__(self, columns: tuple[str, ...], types: Iterable[type], layout: RowShape | None = None) -> None:
        self.columns = columns
        # Grid parameters holding a float: a file stores such a parameter as float64, else as int64.
        self.float_columns = frozenset(
            c for c, t in zip(columns, types, strict=True) if t is float and c.startswith("p_")
        )
        self.layout: RowShape = self if layout is None else layout
        self.started_index = columns.index("started_at") if "started_at" in columns else -1


class _ShapeCache:
    """One :class:`RowShape` per (column names, value types), and one layout per column names; bounded."""

    def __init__(self) -> None:
        #: (column names, value types) → its shape; read directly on the hot path.
        self.known: dict[tuple[tuple[str, ...], tuple[type, ...]], RowShape] = {}
        self._layouts: dict[tuple[str, ...], RowShape] = {}

    def make(self, key: tuple[tuple[str, ...], tuple[type, ...]], cache: bool = True) -> RowShape:
        """A new shape for ``key``, kept in :attr:`known` if ``cache`` and there is room."""
        columns = key[0]
        shape = RowShape(columns, key[1], self._layouts.get(columns))
        if len(self._layouts) < _MAX_SHAPES:
            self._layouts.setdefault(columns, shape)
        if cache and len(self.known) < _MAX_SHAPES:
            self.known[key] = shape
        return shape


class RowBatch:
    """Validated rows held for one part file, in the order they came, converted to Arrow in one go.

    Each row is kept as a tuple of its values (a copy the caller cannot change afterwards) beside its shape.
    Arrow reads the tuples straight into a struct array whose children are the columns, a fraction of the
    cost of ``pa.Table.from_pylist`` on the same rows (docs/results.md, Benchmarks).
    """

    __slots__ = ("_shapes", "_values")

    def __init__(self) -> None:
        self._shapes: list[RowShape] = []
        self._values: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self._values)

    def append(self, shape: RowShape, values: tuple[Any, ...]) -> None:
        self._shapes.append(shape)
        self._values.append(values)

    def to_table(self, kinds: ColumnKinds) -> pa.Table:
        """The Arrow table of the batch (see :func:`rows_to_table`)."""
        if not self._values:
            return FILE_REQUIRED_SCHEMA.empty_table()
        per_shape = Counter(self._shapes)
        floats = frozenset().union(*(s.float_columns for s in per_shape))
        per_layout: Counter[RowShape] = Counter()
        for shape, count in per_shape.items():
            per_layout[shape.layout] += count
        if len(per_layout) == 1:
            (layout,) = per_layout
            return _struct_table(layout.columns, self._values, floats, kinds)
        # Rows with other columns (a failed run has no metrics) are spread over the columns of the most common
        # layout plus any it lacks: a few tuples rebuilt in Python rather than several tables merged.
        major = per_layout.most_common(1)[0][0]
        columns = list(dict.fromkeys(itertools.chain(major.columns, *(lay.columns for lay in per_layout))))
        pad = (None,) * (len(columns) - len(major.columns))
        spread: dict[RowShape, list[int | None]] = {}
        for layout in per_layout:
            index = {c: i for i, c in enumerate(layout.columns)}
            spread[layout] = [index.get(c) for c in columns]
        values = [
            row + pad if shape.layout is major else tuple(None if i is None else row[i] for i in spread[shape.layout])
            for shape, row in zip(self._shapes, self._values, strict=True)
        ]
        return _struct_table(tuple(columns), values, floats, kinds)


def _struct_table(
    columns: tuple[str, ...], values: list[tuple[Any, ...]], floats: frozenset[str], kinds: ColumnKinds
) -> pa.Table:
    """Rows of ``columns`` as a table in file column order; columns of unknown kind (all ``None``) left out."""
    fields = []
    for column in columns:
        if column == "job":  # read, then dropped: the partition directory carries it
            fields.append(pa.field(column, pa.string()))
            continue
        if column in _REQUIRED_SET:
            fields.append(FILE_REQUIRED_SCHEMA.field(column))
            continue
        kind = kinds.get(column)
        dtype = (
            pa.null()
            if kind is None
            else pa.bool_()
            if kind == "bool"
            else pa.string()
            if kind == "str"
            else pa.int64()
            if column.startswith("p_") and column not in floats
            else pa.float64()
        )
        fields.append(pa.field(column, dtype))
    try:
        table = pa.Table.from_struct_array(pa.array(values, pa.struct(fields)))
    except (pa.ArrowInvalid, OverflowError):
        # A huge int (beyond int64, or beyond 2**53 in a float column): the column-wise path stores it as float.
        return _columns_to_table(dict(zip(columns, zip(*values, strict=True), strict=True)), kinds)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ResultsError(f"result rows cannot be stored: {exc}") from exc
    table = table.select(_column_order(f.name for f in fields if f.type != pa.null()))
    for i, field in enumerate(table.schema):
        if field.type == pa.float64() and not field.name.startswith("p_") and field.name not in _REQUIRED_SET:
            table = table.set_column(i, field, _finite_or_null(table.column(i)))
    return table


def _finite_or_null(column: Any) -> Any:
    """A float column (array or chunked) with NaN and infinities as nulls: no measurement (see rows_to_table)."""
    bad = pc.invert(pc.is_finite(column))
    if not pc.any(bad).as_py():
        return column
    return pc.if_else(bad, pa.scalar(None, pa.float64()), column)


def rows_to_table(rows: Sequence[Mapping[str, Any]], kinds: ColumnKinds) -> pa.Table:
    """Build the Arrow table of one part file from validated rows (without the ``job`` column).

    Columns that are ``None`` in every row and whose kind is unknown are left out: union-by-name readers fill
    them with nulls, and writing them as Arrow ``null`` would give later files a conflicting type. NaN and
    infinite metrics become nulls: a parser's "no measurement" must not poison averages and quantiles.
    """
    batch = RowBatch()
    shapes = _ShapeCache()
    for row in rows:
        values = tuple(row.values())
        key = (tuple(row), tuple(map(type, values)))
        batch.append(shapes.known.get(key) or shapes.make(key), values)
    return batch.to_table(kinds)


def _columns_to_table(columns: Mapping[str, Sequence[Any]], kinds: ColumnKinds) -> pa.Table:
    fields: list[pa.Field] = []
    arrays: list[pa.Array] = []
    try:
        for column in _column_order(columns):
            values = columns.get(column)
            if values is None:
                raise ResultsError(f"result rows cannot be stored: required column {column!r} is missing")
            if column in _REQUIRED_SET:
                field = FILE_REQUIRED_SCHEMA.field(column)
                array = pa.array(values, field.type)
            else:
                kind = kinds.get(column)
                if kind is None:
                    continue
                array = _extra_array(column, kind, values)
                field = pa.field(column, array.type)
            fields.append(field)
            arrays.append(array)
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise ResultsError(f"result rows cannot be stored: {exc}") from exc


def _extra_array(column: str, kind: Kind, values: Sequence[Any]) -> pa.Array:
    """One extra column as Arrow: bool, string, int64 (grid parameters without floats) or float64."""
    if kind == "bool":
        return pa.array(values, pa.bool_())
    if kind == "str":
        return pa.array(values, pa.string())
    is_param = column.startswith("p_")
    try:
        if is_param and float not in set(map(type, values)):
            return pa.array(values, pa.int64())
        array = pa.array(values, pa.float64())
    except (pa.ArrowInvalid, OverflowError):
        # An int beyond int64, or beyond 2**53 in a float column: Arrow refuses to round it, but the column is
        # a number and stays one. Refusing would leave the row in the writer's buffer and fail every flush.
        array = pa.array([None if v is None else float(v) for v in values], pa.float64())
    if is_param:
        return array
    return _finite_or_null(array)


#: A validated row as the writer takes it: its shape, its normalized values, its ``(run_id, attempt)``, and the
#: columns it brings that the job did not have (pass them to :meth:`RowValidator.learn` once it is accepted).
Checked = tuple[RowShape, tuple[Any, ...], tuple[str, int], list[tuple[str, Kind]]]

_REQUIRED_VALUES = itemgetter("job", "status", "run_id", "attempt", "repeat", "duration_s", "started_at")


class RowValidator:
    """Validates the rows of one job, fast for rows shaped like those already seen.

    The fast path checks each value's exact type against the types its column accepts (required columns, and
    extras whose kind is known) plus the required columns' value rules; anything else — a new column, a
    subclass or foreign scalar, a bad value — goes through :func:`validate_row` and :class:`ColumnKinds`,
    which give the precise error. Not thread-safe: the writer calls it under its lock.
    """

    def __init__(self, job: str, schema: pa.Schema | None = None) -> None:
        self.job = check_job_name(job)
        self.kinds = ColumnKinds(schema)
        self._accepts: dict[str, frozenset[type]] = dict(_REQUIRED_TYPES)
        # Shapes of rows that passed the type check (and of slow-path rows, uncached).
        self._shapes = _ShapeCache()
        self._known = self._shapes.known
        for field in schema or ():
            kind = self.kinds.get(field.name)
            if kind is not None:
                self._accepts[field.name] = _TYPES_BY_KIND[kind]

    def validate(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, Kind]]]:
        """Return the normalized row and the new columns it brings; raise :class:`ResultsError` if invalid.

        Call :meth:`learn` with the new columns once the row is accepted.
        """
        shape, values, _, new = self.check(row)
        return dict(zip(shape.columns, values, strict=True)), new

    def check(self, row: Mapping[str, Any]) -> Checked:
        """Like :meth:`validate`, returning the row as a :class:`RowShape` and a tuple of its values, with its
        ``(run_id, attempt)``: what :class:`RowBatch` and the writer's deduplication take."""
        if type(row) is dict:
            # Rows of one job come in few shapes (same keys, same value types up to None-ness); a shape that
            # passed the per-column type check once needs no second check.
            values = tuple(row.values())
            key = (tuple(row), tuple(map(type, values)))
            shape = self._known.get(key)
            if shape is None and self._types_ok(row):
                shape = self._shapes.make(key)
            if shape is not None:
                job, status, run_id, attempt, repeat, duration, started = _REQUIRED_VALUES(row)
                offset = started.utcoffset()
                if (
                    job == self.job
                    and status in STATUSES
                    and run_id
                    and attempt >= 1
                    and repeat >= 0
                    and duration >= 0
                    and offset is not None
                ):
                    if offset:
                        fixed = list(values)
                        fixed[shape.started_index] = started.astimezone(UTC)
                        values = tuple(fixed)
                    return shape, values, (run_id, attempt), []
        out = validate_row(row)
        if out["job"] != self.job:
            raise ResultsError(
                f"result row {out['run_id']!r} of job {out['job']!r} given to the writer of {self.job!r}"
            )
        new = self.kinds.check(out)
        values = tuple(out.values())
        # Not cached: the row may bring columns whose kind is learnt only once the writer accepts it.
        shape = self._shapes.make((tuple(out), tuple(map(type, values))), cache=False)
        return shape, values, (out["run_id"], out["attempt"]), new

    def _types_ok(self, row: Mapping[str, Any]) -> bool:
        if not row.keys() >= _REQUIRED_SET:
            return False
        accepts = self._accepts
        for column, value in row.items():
            allowed = accepts.get(column)
            if allowed is None or type(value) not in allowed:
                return False
        return True

    def learn(self, new: Sequence[tuple[str, Kind]]) -> None:
        # Learning only widens what is accepted (a column's kind never changes), so cached shapes stay valid.
        self.kinds.learn(new)
        for column, _ in new:
            kind = self.kinds.get(column)
            if kind is not None:
                self._accepts.setdefault(column, _TYPES_BY_KIND[kind])


def empty_table() -> pa.Table:
    """A table with the required columns and no rows (what readers return for an empty dataset)."""
    return REQUIRED_SCHEMA.empty_table()
