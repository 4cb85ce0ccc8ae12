"""Rows on their way into a part file: the writer's fast validator, row shapes, batches and their Arrow tables.

:mod:`farm.results.schema` says what a row is; this module makes many rows of one job cheap to check and to
turn into one Arrow table. :class:`RowValidator` checks a row by the exact types of its values against the
contract (falling back to :func:`~farm.results.schema.validate_row` for anything unusual) and hands out one
:class:`RowShape` per shape of row; :class:`RowBatch` holds the rows of one flush and builds their table in
file column order (:func:`rows_to_table` does the same for a list of validated rows).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from farm.errors import ResultsError
from farm.results.schema import (
    FILE_REQUIRED_SCHEMA,
    REQUIRED_COLUMNS,
    REQUIRED_TYPES,
    STATUSES,
    TYPES_BY_KIND,
    ColumnKinds,
    Kind,
    check_job_name,
    plain_column_name,
    validate_row,
)

_REQUIRED_SET = frozenset(REQUIRED_COLUMNS)
# Bound on cached row shapes: many optional columns could combine into very many None patterns.
_MAX_SHAPES = 4096


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
        self._accepts: dict[str, frozenset[type]] = dict(REQUIRED_TYPES)
        # Shapes of rows that passed the type check (and of slow-path rows, uncached).
        self._shapes = _ShapeCache()
        self._known = self._shapes.known
        for field in schema or ():
            kind = self.kinds.get(field.name)
            if kind is not None:
                self._accepts[field.name] = TYPES_BY_KIND[kind]

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
            if allowed is None:
                # A column of no known kind yet may be None ("not measured", e.g. a job without a build): in every
                # row of some jobs, and it must not send each of them down the slow path.
                if value is not None or not plain_column_name(column):
                    return False
            elif type(value) not in allowed:
                return False
        return True

    def learn(self, new: Sequence[tuple[str, Kind]]) -> None:
        # Learning only widens what is accepted (a column's kind never changes), so cached shapes stay valid.
        self.kinds.learn(new)
        for column, _ in new:
            kind = self.kinds.get(column)
            if kind is not None:
                self._accepts.setdefault(column, TYPES_BY_KIND[kind])
