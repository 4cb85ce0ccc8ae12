"""The parameter grid: axes, ranges, zipped groups, include/exclude — validated, then expanded lazily.

A grid's points are addressed by index over the full cartesian product (mixed radix over the axes and zip groups)
followed by the ``include`` points, so any order (including a seeded shuffle) can be produced without holding the
points in memory; ``exclude`` is applied as points are produced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Scalar = int | float | str | bool
Point = dict[str, Scalar]

RESERVED = frozenset({"zip", "include", "exclude"})
RESERVED_NAMES = frozenset({"device", "repeat", "run_id", "job", "warmup"})
_AXIS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_RANGE = 1_000_000


class GridError(ValueError):
    """A grid problem with the field path below ``grid`` it concerns."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Grid:
    """A validated grid. ``dims`` are the product's dimensions: one per axis, one per zip group."""

    dims: tuple[tuple[tuple[str, ...], tuple[tuple[Scalar, ...], ...]], ...]
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

    def count(self) -> int:
        if not self.exclude:
            return self.index_space
        return sum(1 for _ in self.points())

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
    """Validate the ``grid:`` mapping; raises :class:`GridError` with the path below ``grid``."""
    if not isinstance(raw, Mapping):
        raise GridError("", "expected a mapping of axis names to value lists")
    if not raw:
        raise GridError("", "the grid is empty; give at least one axis (or leave 'grid' out for a single run)")
    dims: list[tuple[tuple[str, ...], tuple[tuple[Scalar, ...], ...]]] = []
    for name, values in raw.items():
        if name in RESERVED:
            continue
        _check_name(str(name), str(name))
        dims.append(((str(name),), tuple((v,) for v in _axis_values(str(name), values))))
    if "zip" in raw:
        dims.extend(_zip_groups(raw["zip"], {n for keys, _ in dims for n in keys}))
    names = [n for keys, _ in dims for n in keys]
    if not names:
        raise GridError("", "the grid has no axes; 'zip', 'include' and 'exclude' need axes to act on")
    include = tuple(_include(raw.get("include", []), names))
    _check_includes_are_new(dims, include)
    exclude = tuple(_exclude(raw.get("exclude", []), names))
    grid = Grid(dims=tuple(dims), include=include, exclude=exclude)
    if grid.exclude and grid.count() == 0:
        raise GridError("exclude", "excludes every point of the grid")
    return grid


def _check_name(name: str, path: str) -> None:
    if not _AXIS_NAME.match(name):
        raise GridError(path, "axis names must be identifiers (letters, digits, '_')")
    if name in RESERVED_NAMES:
        raise GridError(path, f"'{name}' is reserved for templates; choose another axis name")


def _scalar(value: object, path: str) -> Scalar:
    if isinstance(value, bool | int | float | str):
        if isinstance(value, float) and not math.isfinite(value):
            raise GridError(path, "values must be finite numbers")
        return value
    raise GridError(path, f"expected a number, string or boolean, got {type(value).__name__}")


def _axis_values(name: str, values: object) -> list[Scalar]:
    if isinstance(values, Mapping):
        return _range(name, values)
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise GridError(name, "empty axis: give at least one value")
    out = [_scalar(v, f"{name}[{i}]") for i, v in enumerate(values)]
    seen: set[tuple[type, Scalar]] = set()
    for i, v in enumerate(out):
        if (type(v), v) in seen:
            raise GridError(f"{name}[{i}]", f"duplicate value {v!r}")
        seen.add((type(v), v))
    return out


def _range(name: str, spec: Mapping[Any, Any]) -> list[Scalar]:
    unknown = set(spec) - {"start", "stop", "step"}
    if unknown:
        raise GridError(f"{name}.{sorted(map(str, unknown))[0]}", "unknown key (a range has start, stop, step)")
    for key in ("start", "stop"):
        if key not in spec:
            raise GridError(f"{name}.{key}", "required key is missing")
    raw = {k: spec.get(k, 1) for k in ("start", "stop", "step")}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GridError(f"{name}.{key}", "expected a number")
    start, stop, step = (Decimal(str(raw[k])) for k in ("start", "stop", "step"))
    if step <= 0:
        raise GridError(f"{name}.step", "must be positive")
    if stop < start:
        raise GridError(f"{name}.stop", "must not be below start")
    count = int((stop - start) / step) + 1
    if count > MAX_RANGE:
        raise GridError(name, f"range has {count} values; the limit is {MAX_RANGE}")
    # Decimal arithmetic keeps 0.1 steps exact (no 0.30000000000000004); the stop is inclusive.
    as_int = all(isinstance(raw[k], int) for k in raw)
    return [int(start + i * step) if as_int else float(start + i * step) for i in range(count)]


def _zip_groups(raw: object, axis_names: set[str]) -> list[tuple[tuple[str, ...], tuple[tuple[Scalar, ...], ...]]]:
    if not isinstance(raw, list) or not raw:
        raise GridError("zip", "expected a non-empty list of mappings (or a list of such lists for several groups)")
    groups: list[tuple[str, list[Any]]] = (
        [(f"zip[{i}]", g) for i, g in enumerate(raw)] if all(isinstance(g, list) for g in raw) else [("zip", raw)]
    )
    out = []
    seen = set(axis_names)
    for gpath, rows in groups:
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
        out.append((keys, tuple(values)))
    return out


def _typed(values: Sequence[Scalar]) -> tuple[tuple[str, Scalar], ...]:
    # Keyed like run ids are: 1, 1.0 and true are different values.
    return tuple((type(v).__name__, v) for v in values)


def _check_includes_are_new(
    dims: Sequence[tuple[tuple[str, ...], tuple[tuple[Scalar, ...], ...]]], include: Sequence[Point]
) -> None:
    """An included point must not repeat a product point or an earlier include (it would run twice)."""
    rows = [(keys, {_typed(r) for r in values}) for keys, values in dims]
    seen: set[tuple[tuple[str, Scalar], ...]] = set()
    for i, point in enumerate(include):
        if all(_typed([point[k] for k in keys]) in values for keys, values in rows):
            raise GridError(f"include[{i}]", "this point is already in the grid")
        key = _typed([point[k] for keys, _ in dims for k in keys])
        if key in seen:
            raise GridError(f"include[{i}]", "duplicate included point")
        seen.add(key)


def _points_list(raw: object, key: str) -> Sequence[Mapping[str, Any]]:
    if not isinstance(raw, list):
        raise GridError(key, "expected a list of mappings")
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not item:
            raise GridError(f"{key}[{i}]", "expected a non-empty mapping of axis names to values")
    return raw


def _include(raw: object, names: list[str]) -> Iterator[Point]:
    for i, item in enumerate(_points_list(raw, "include")):
        missing = [n for n in names if n not in item]
        unknown = [str(k) for k in item if k not in names]
        if unknown:
            raise GridError(f"include[{i}].{unknown[0]}", "not an axis of this grid")
        if missing:
            raise GridError(f"include[{i}]", f"an included point must set every axis; missing {missing}")
        yield {n: _scalar(item[n], f"include[{i}].{n}") for n in names}


def _exclude(raw: object, names: list[str]) -> Iterator[Point]:
    for i, item in enumerate(_points_list(raw, "exclude")):
        unknown = [str(k) for k in item if k not in names]
        if unknown:
            raise GridError(f"exclude[{i}].{unknown[0]}", "not an axis of this grid")
        yield {str(k): _scalar(v, f"exclude[{i}].{k}") for k, v in item.items()}
