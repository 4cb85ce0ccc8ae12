"""The parameter grid: axes, ranges, zipped groups, include/exclude — validated, then expanded lazily.

A grid's points are addressed by index over the full cartesian product (mixed radix over the axes and zip groups)
followed by the ``include`` points, so any order (including a seeded shuffle) can be produced without holding the
points in memory; ``exclude`` is applied as points are produced.

Nothing here enumerates the product to check or count it: a range is arithmetic (:class:`RangeRows`, never a list),
the size is a product of lengths, and the points left after ``exclude`` are counted per dimension
(:meth:`Grid.count`). A grid above ``MAX_POINTS`` points (before ``exclude``) is refused, since planning walks them.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, overload

Scalar = int | float | str | bool
Point = dict[str, Scalar]
Rows = Sequence[tuple[Scalar, ...]]
Dim = tuple[tuple[str, ...], Rows]

RESERVED = frozenset({"zip", "include", "exclude"})
RESERVED_NAMES = frozenset({"device", "repeat", "run_id", "job", "warmup"})
_AXIS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_POINTS = 1_000_000
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # values become int64 result columns
_SHOWN_LIMIT = 10**60  # above this a size is reported as "more than 10^60"
_COUNT_BUDGET = 20_000_000  # mask-word steps the exclude count may take (about a second) before it gives up


class GridError(ValueError):
    """Grid problems, each with the field path below ``grid`` it concerns; ``path``/``reason`` are the first."""

    def __init__(self, path: str, reason: str, more: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason
        self.issues = [(path, reason), *more]

    def __reduce__(self) -> tuple[type[GridError], tuple[str, str, list[tuple[str, str]]]]:
        return (type(self), (self.path, self.reason, self.issues[1:]))

    @classmethod
    def of(cls, issues: Sequence[tuple[str, str]]) -> GridError:
        return cls(issues[0][0], issues[0][1], issues[1:])


@dataclass(frozen=True)
class RangeRows(Sequence[tuple[Scalar, ...]]):
    """The values of a ``{start, stop, step}`` axis as one-value rows, computed on demand (never a list)."""

    start: Decimal
    step: Decimal
    size: int
    as_int: bool

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> tuple[Scalar, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[Scalar, ...]]: ...
    def __getitem__(self, index: int | slice) -> tuple[Scalar, ...] | Sequence[tuple[Scalar, ...]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(index)
        # Decimal arithmetic keeps 0.1 steps exact (no 0.30000000000000004); the stop is inclusive.
        value = self.start + index * self.step
        return (int(value) if self.as_int else float(value),)

    def find(self, value: Scalar, typed: bool) -> int | None:
        """The index holding ``value`` (same type too when ``typed``), or None; arithmetic, no scan."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        if typed and isinstance(value, int) != self.as_int:
            return None
        offset = (Decimal(str(value)) - self.start) / self.step
        if offset != offset.to_integral_value() or not 0 <= offset < self.size:
            return None
        index = int(offset)
        return index if self[index][0] == value else None


def _norm(value: Scalar, typed: bool) -> tuple[str, Scalar]:
    # 1 == 1.0 == True in Python. Loose: numbers compare by value, booleans and strings only with their own kind.
    # Typed (as run ids are keyed): 1, 1.0 and true are three values.
    if typed or isinstance(value, bool | str):
        return (type(value).__name__, value)
    return ("number", value)


class _RowIndex:
    """Finds the rows of one dimension holding given values without scanning them (ranges: arithmetic)."""

    def __init__(self, keys: tuple[str, ...], rows: Rows, typed: bool) -> None:
        self.keys, self.rows, self.typed = keys, rows, typed
        self.by_key: dict[str, dict[tuple[str, Scalar], list[int]]] = {k: defaultdict(list) for k in keys}
        if not isinstance(rows, RangeRows):
            for i, row in enumerate(rows):
                for k, v in zip(keys, row, strict=True):
                    self.by_key[k][_norm(v, typed)].append(i)

    def find(self, wanted: Mapping[str, Scalar]) -> set[int]:
        """Indexes of the rows equal to ``wanted`` on the keys it names (a subset of this dimension's keys)."""
        if isinstance(self.rows, RangeRows):
            index = self.rows.find(wanted[self.keys[0]], self.typed)
            return set() if index is None else {index}
        found = [self.by_key[k].get(_norm(v, self.typed), []) for k, v in wanted.items()]
        return set(found[0]).intersection(*found[1:])


@dataclass(frozen=True)
class Grid:
    """A validated grid. ``dims`` are the product's dimensions: one per axis, one per zip group."""

    dims: tuple[Dim, ...]
    include: tuple[Point, ...] = ()
    exclude: tuple[Point, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for keys, _ in self.dims for name in keys)

    @property
    def product_size(self) -> int:
        return math.prod(len(rows) for _, rows in self.dims)

    @property
    def index_space(self) -> int:
        """How many point indexes exist (before ``exclude`` removes some)."""
        return self.product_size + len(self.include)

    def point_at(self, index: int) -> Point | None:
        """The point at ``index`` (mixed radix, last dimension fastest), or None if excluded."""
        if index >= self.product_size:
            point = dict(self.include[index - self.product_size])
        else:
            point = {}
            rest = index
            sizes = [len(rows) for _, rows in self.dims]
            digits = []
            for size in reversed(sizes):
                rest, digit = divmod(rest, size)
                digits.append(digit)
            for (keys, rows), digit in zip(self.dims, reversed(digits), strict=True):
                point.update(zip(keys, rows[digit], strict=True))
        return None if self._excluded(point) else point

    def points(self) -> Iterator[Point]:
        for i in range(self.index_space):
            point = self.point_at(i)
            if point is not None:
                yield point

    @cached_property
    def _left(self) -> int:
        return self._product_count_left() + sum(1 for p in self.include if not self._excluded(p))

    def count(self) -> int:
        """Points after ``exclude``, counted without producing them (computed once)."""
        return self._left if self.exclude else self.index_space

    def _product_count_left(self) -> int:
        # Each exclude rule is a box: per dimension, the rows it accepts. Walk the dimensions keeping, for each set
        # of rules a prefix of the point still satisfies (a bit mask), how many prefixes lead there. A prefix that
        # still satisfies a rule after the rule's last constrained dimension is excluded with all its completions
        # and dropped; the prefixes left at the end are the points no rule matches. Rows a dimension treats alike
        # (the same rules accept them) are one class.
        rules = self.exclude
        last_dim = {
            bit: max(d for d, (keys, _) in enumerate(self.dims) if set(rule) & set(keys))
            for bit, rule in enumerate(rules)
        }
        states: dict[int, int] = {(1 << len(rules)) - 1: 1}
        width = 1 + len(rules) // 64  # machine words per mask: what one step costs
        work = 0
        for d, (keys, rows) in enumerate(self.dims):
            index = _RowIndex(keys, rows, typed=False)
            free = 0
            special: dict[int, int] = defaultdict(int)
            for bit, rule in enumerate(rules):
                wanted = {k: v for k, v in rule.items() if k in keys}
                if not wanted:
                    free |= 1 << bit
                    continue
                for i in index.find(wanted):
                    special[i] |= 1 << bit
            classes: Counter[int] = Counter({free: len(rows) - len(special)})
            for mask in special.values():
                classes[free | mask] += 1
            work += len(states) * len(classes) * width
            if work > _COUNT_BUDGET:
                raise GridError("exclude", f"{len(rules)} exclude rules are too intricate to count; use fewer")
            done = sum(1 << bit for bit, last in last_dim.items() if last == d)
            new: dict[int, int] = defaultdict(int)
            for active, n in states.items():
                for mask, m in classes.items():
                    if m and not (still := active & mask) & done:
                        new[still] += n * m
            states = new
        return sum(states.values())

    def _excluded(self, point: Mapping[str, Scalar]) -> bool:
        return any(all(_same(point.get(k), v) for k, v in ex.items()) for ex in self.exclude)


def _same(a: object, b: object) -> bool:
    # 1 == 1.0 == True in Python; a grid compares values of the same YAML type only.
    return (type(a) is type(b) and a == b) or (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def single_point_grid() -> Grid:
    return Grid(dims=())


def parse_grid(raw: object) -> Grid:
    """Validate the ``grid:`` mapping; raises :class:`GridError` with every problem's path below ``grid``."""
    if not isinstance(raw, Mapping):
        raise GridError("", "expected a mapping of axis names to value lists")
    if not raw:
        raise GridError("", "the grid is empty; give at least one axis (or leave 'grid' out for a single run)")
    issues: list[tuple[str, str]] = []
    dims: list[Dim] = []
    for name, values in raw.items():
        if name in RESERVED:
            continue
        dim = _collect(issues, _axis, str(name), values)
        if dim is not None:
            dims.append(dim)
    if "zip" in raw:
        groups = _collect(issues, _zip_groups, raw["zip"], {n for keys, _ in dims for n in keys})
        dims.extend(groups or [])
    if issues:
        raise GridError.of(issues)
    names = [n for keys, _ in dims for n in keys]
    if not names:
        raise GridError("", "the grid has no axes; 'zip', 'include' and 'exclude' need axes to act on")
    include = _collect(issues, _points, raw.get("include", []), names, "include") or []
    if not issues:
        _collect(issues, _check_includes_are_new, dims, include)
    exclude = _collect(issues, _points, raw.get("exclude", []), names, "exclude") or []
    if issues:
        raise GridError.of(issues)
    grid = Grid(dims=tuple(dims), include=tuple(include), exclude=tuple(exclude))
    size = _capped_size(dims) + len(include)
    if size > MAX_POINTS:
        shown = f"more than 10^{math.ceil(math.log10(_SHOWN_LIMIT))}" if size > _SHOWN_LIMIT else str(size)
        raise GridError("", f"the grid has {shown} points (before exclude); the limit is {MAX_POINTS}")
    if grid.exclude and grid.count() == 0:
        raise GridError("exclude", "excludes every point of the grid")
    return grid


def _collect(issues: list[tuple[str, str]], fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``; a :class:`GridError` is added to ``issues`` (and None returned) so checking goes on."""
    try:
        return fn(*args)
    except GridError as exc:
        issues.extend(exc.issues)
        return None


def _capped_size(dims: Sequence[Dim]) -> int:
    size = 1
    for _, rows in dims:
        size *= len(rows)
        if size > _SHOWN_LIMIT:
            return size
    return size


def _axis(name: str, values: object) -> Dim:
    _check_name(name, name)
    rows: Rows = (
        _range(name, values) if isinstance(values, Mapping) else tuple((v,) for v in _axis_values(name, values))
    )
    return ((name,), rows)


def _check_name(name: str, path: str) -> None:
    if not _AXIS_NAME.match(name):
        raise GridError(path, "axis names must be identifiers (letters, digits, '_')")
    if name in RESERVED_NAMES:
        raise GridError(path, f"'{name}' is reserved for templates; choose another axis name")


def _scalar(value: object, path: str) -> Scalar:
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        raise GridError(path, "integers must fit in 64 bits")
    if isinstance(value, bool | int | float | str):
        if isinstance(value, float) and not math.isfinite(value):
            raise GridError(path, "values must be finite numbers")
        if isinstance(value, str) and "\x00" in value:
            raise GridError(path, "a NUL character cannot be passed to a command")
        return value
    raise GridError(path, f"expected a number, string or boolean, got {type(value).__name__}")


def _axis_values(name: str, values: object) -> list[Scalar]:
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise GridError(name, "empty axis: give at least one value")
    issues: list[tuple[str, str]] = []
    out = [_collect(issues, _scalar, v, f"{name}[{i}]") for i, v in enumerate(values)]
    seen: set[tuple[str, Scalar]] = set()
    for i, v in enumerate(out):
        if v is None:
            continue
        if _norm(v, typed=True) in seen:
            issues.append((f"{name}[{i}]", f"duplicate value {v!r}"))
        seen.add(_norm(v, typed=True))
    if issues:
        raise GridError.of(issues)
    return out


def _range(name: str, spec: Mapping[Any, Any]) -> RangeRows:
    unknown = set(spec) - {"start", "stop", "step"}
    if unknown:
        raise GridError(f"{name}.{sorted(map(str, unknown))[0]}", "unknown key (a range has start, stop, step)")
    issues = [(f"{name}.{key}", "required key is missing") for key in ("start", "stop") if key not in spec]
    raw = {k: spec.get(k, 1) for k in ("start", "stop", "step")}
    for key, value in raw.items():
        if key in spec and (isinstance(value, bool) or not isinstance(value, int | float)):
            issues.append((f"{name}.{key}", "expected a number"))
        elif key in spec:
            _collect(issues, _scalar, value, f"{name}.{key}")
    if issues:
        raise GridError.of(issues)
    start, stop, step = (Decimal(str(raw[k])) for k in ("start", "stop", "step"))
    if step <= 0:
        raise GridError(f"{name}.step", "must be positive")
    if stop < start:
        raise GridError(f"{name}.stop", "must not be below start")
    try:
        count = int((stop - start) / step) + 1
    except (ArithmeticError, InvalidOperation):
        count = _SHOWN_LIMIT + 1
    if count > MAX_POINTS:
        shown = f"more than 10^{math.ceil(math.log10(_SHOWN_LIMIT))}" if count > _SHOWN_LIMIT else str(count)
        raise GridError(name, f"range has {shown} values; a grid has at most {MAX_POINTS} points")
    as_int = all(isinstance(raw[k], int) for k in raw)
    return RangeRows(start, step, count, as_int)


def _zip_groups(raw: object, axis_names: set[str]) -> list[Dim]:
    if not isinstance(raw, list) or not raw:
        raise GridError("zip", "expected a non-empty list of mappings (or a list of such lists for several groups)")
    groups: list[tuple[str, list[Any]]] = (
        [(f"zip[{i}]", g) for i, g in enumerate(raw)] if all(isinstance(g, list) for g in raw) else [("zip", raw)]
    )
    issues: list[tuple[str, str]] = []
    seen = set(axis_names)
    out = [_collect(issues, _zip_group, gpath, rows, seen) for gpath, rows in groups]
    if issues:
        raise GridError.of(issues)
    return out


def _zip_group(gpath: str, rows: list[Any], seen: set[str]) -> Dim:
    if not rows:
        raise GridError(gpath, "empty zip group")
    keys: tuple[str, ...] | None = None
    values: list[tuple[Scalar, ...]] = []
    seen_rows: set[tuple[tuple[str, Scalar], ...]] = set()
    for i, row in enumerate(rows):
        rpath = f"{gpath}[{i}]"
        if not isinstance(row, Mapping) or not row:
            raise GridError(rpath, "expected a non-empty mapping of axis names to values")
        row_keys = tuple(str(k) for k in row)
        if keys is None:
            keys = row_keys
            for k in keys:
                _check_name(k, f"{rpath}.{k}")
                if k in seen:
                    raise GridError(f"{rpath}.{k}", f"axis '{k}' is defined twice")
                seen.add(k)
        elif set(row_keys) != set(keys):
            raise GridError(rpath, f"keys {sorted(row_keys)} differ from the group's first row {sorted(keys)}")
        row_values = tuple(_scalar(row[k], f"{rpath}.{k}") for k in keys)
        # A repeated row would plan the same point (hence the same run_id) twice.
        if _typed(row_values) in seen_rows:
            raise GridError(rpath, "duplicate row: the group already has these values")
        seen_rows.add(_typed(row_values))
        values.append(row_values)
    assert keys is not None
    return (keys, tuple(values))


def _typed(values: Sequence[Scalar]) -> tuple[tuple[str, Scalar], ...]:
    # Keyed like run ids are: 1, 1.0 and true are different values.
    return tuple(_norm(v, typed=True) for v in values)


def _check_includes_are_new(dims: Sequence[Dim], include: Sequence[Point]) -> None:
    """An included point must not repeat a product point or an earlier include (it would run twice)."""
    issues: list[tuple[str, str]] = []
    seen: set[tuple[tuple[str, Scalar], ...]] = set()
    indexes = [_RowIndex(keys, rows, typed=True) for keys, rows in dims]
    for i, point in enumerate(include):
        if all(index.find({k: point[k] for k in index.keys}) for index in indexes):
            issues.append((f"include[{i}]", "this point is already in the grid"))
            continue
        key = _typed([point[k] for keys, _ in dims for k in keys])
        if key in seen:
            issues.append((f"include[{i}]", "duplicate included point"))
        seen.add(key)
    if issues:
        raise GridError.of(issues)


def _points_list(raw: object, key: str) -> Sequence[Mapping[str, Any]]:
    if not isinstance(raw, list):
        raise GridError(key, "expected a list of mappings")
    issues = [
        (f"{key}[{i}]", "expected a non-empty mapping of axis names to values")
        for i, item in enumerate(raw)
        if not isinstance(item, Mapping) or not item
    ]
    if issues:
        raise GridError.of(issues)
    return raw


def _points(raw: object, names: list[str], key: str) -> list[Point]:
    """The ``include`` or ``exclude`` list, every bad point reported at once."""
    check = _include_point if key == "include" else _exclude_point
    issues: list[tuple[str, str]] = []
    out = [_collect(issues, check, i, item, names) for i, item in enumerate(_points_list(raw, key))]
    if issues:
        raise GridError.of(issues)
    return out


def _include_point(i: int, item: Mapping[Any, Any], names: list[str]) -> Point:
    missing = [n for n in names if n not in item]
    unknown = [str(k) for k in item if k not in names]
    if unknown:
        raise GridError(f"include[{i}].{unknown[0]}", "not an axis of this grid")
    if missing:
        raise GridError(f"include[{i}]", f"an included point must set every axis; missing {missing}")
    return {n: _scalar(item[n], f"include[{i}].{n}") for n in names}


def _exclude_point(i: int, item: Mapping[Any, Any], names: list[str]) -> Point:
    unknown = [str(k) for k in item if k not in names]
    if unknown:
        raise GridError(f"exclude[{i}].{unknown[0]}", "not an axis of this grid")
    return {str(k): _scalar(v, f"exclude[{i}].{k}") for k, v in item.items()}
