"""The job spec: a workload, a command template, artifacts, env, a parameter grid and a device selector."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from farm import templates
from farm.errors import ConfigError
from farm.grid import RESERVED, Grid, GridError, RangeRows, parse_grid, single_point_grid
from farm.specs.bench import BenchMode
from farm.specs.inventory import Slot
from farm.specs.loading import Document, FieldIssues, read_document, validate_document
from farm.specs.types import Argument, Duration, FileMode, Ident, Int, Labels, Number, parse_core_list

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Artifact(_Spec):
    src: Argument = Field(min_length=1, description="local file, relative to the job file's folder")
    dst: Argument = Field(min_length=1, description="path on the device; a trailing '/' means into that folder")
    mode: FileMode | None = None
    constants: dict[str, str] = Field(
        default_factory=dict,
        description="module constants to set in a rendered copy of this text file: NAME → template",
    )

    @field_validator("constants", mode="before")
    @classmethod
    def _constants_as_strings(cls, value: object) -> object:
        return JobSpec._env_as_strings(value)  # numbers written as they would be typed

    @field_validator("constants")
    @classmethod
    def _constant_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _IDENTIFIER.fullmatch(key):
                raise ValueError(f"{key!r} is not a constant name (a Python identifier such as BATCH_SIZE)")
        return value

    def remote_path(self) -> str:
        return self.dst + Path(self.src).name if self.dst.endswith("/") else self.dst


class EnvPrependSpec(_Spec):
    """``{prepend: VALUE, sep: ":"}``: VALUE in front of the device's existing value of the variable."""

    prepend: Argument = Field(min_length=1, description="the part put first; a template")
    sep: Literal[":", ";", ","] = ":"

    @field_validator("prepend", mode="before")
    @classmethod
    def _number_as_string(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _numbers_as_strings(value: object) -> object:
    """A list of arguments with numbers written as strings (``-t 4`` in YAML is an int)."""
    if isinstance(value, list):
        return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]
    return value


def _env_kind(value: object) -> str:
    return "tag:prepend" if isinstance(value, dict | EnvPrependSpec) else "tag:text"


# A plain value or a prepend; the tag picks the member so an error names the field, not every union member.
EnvValue = Annotated[
    Annotated[Argument, Tag("tag:text")] | Annotated[EnvPrependSpec, Tag("tag:prepend")], Discriminator(_env_kind)
]


class ExecWrapper(_Spec):
    """Where every command of the job runs on the device: ``docker: NAME`` runs it with ``docker exec`` inside
    that (already running) container."""

    docker: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description="container name or id")


class DeviceSelector(_Spec):
    kind: Literal["android", "sophgo", "ascend", "host"] | None = None
    ids: list[str] | None = Field(default=None, min_length=1)
    labels: Labels = Field(default_factory=dict)
    placement: Literal["each", "any"] = "each"
    limit: Int | None = Field(default=None, ge=1, description="use at most this many matching slots")

    def matches(self, slot: Slot) -> bool:
        if self.kind is not None and slot.kind != self.kind:
            return False
        if self.ids is not None and slot.device_id not in self.ids and slot.slot_id not in self.ids:
            return False
        return all(slot.labels.get(k) == v for k, v in self.labels.items())

    def select(self, slots: list[Slot]) -> list[Slot]:
        chosen = [s for s in slots if self.matches(s)]
        return chosen[: self.limit] if self.limit is not None else chosen


class Cooldown(_Spec):
    """Thermal gate: before each run wait until the device is near its idle temperature (or ``max_temp_c``)."""

    max_temp_c: Number | None = Field(default=None, gt=0, lt=150)
    margin_c: Number = Field(default=2.0, ge=0, le=100)
    max_wait: Duration = 300.0
    poll: Duration = 2.0


class AdaptiveRepeat(_Spec):
    """``repeat: {min: N, max: M, ci: X%}``: at least N, at most M measured repeats per point and slot, stopping
    once the confidence interval of the headline metric is within ±X % of its center (``farm.stability``)."""

    min: Int = Field(ge=2, le=1000, description="repeats before the first decision (an interval needs two)")
    max: Int = Field(ge=2, le=1000, description="repeats at most, stable or not")
    ci: Number = Field(gt=0, le=100, description="target half-width of the interval, percent of its center")
    confidence: Number = Field(default=0.95, ge=0.5, lt=1)
    method: Literal["t", "bootstrap"] = "t"
    metric: str | None = Field(default=None, min_length=1, description="default: the workload's first headline")

    @field_validator("ci", mode="before")
    @classmethod
    def _percent(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1])
            except ValueError:
                raise ValueError(f"expected a percentage such as 5% or 2.5, got {value!r}") from None
        return value

    @model_validator(mode="after")
    def _bounds(self) -> AdaptiveRepeat:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is less than min ({self.min})")
        return self


def _repeat_kind(value: object) -> str:
    return "tag:adaptive" if isinstance(value, dict | AdaptiveRepeat) else "tag:fixed"


# ``repeat: N`` or ``repeat: {min, max, ci, ...}``; the tag picks the member so an error names the field.
RepeatValue = Annotated[
    Annotated[Int, Field(ge=1, le=10_000), Tag("tag:fixed")] | Annotated[AdaptiveRepeat, Tag("tag:adaptive")],
    Discriminator(_repeat_kind),
]


class JobSpec(_Spec):
    name: Ident
    description: str = ""
    workload: str = Field(min_length=1)
    workload_options: dict[str, Any] = Field(default_factory=dict)
    devices: DeviceSelector = Field(default_factory=DeviceSelector)
    artifacts: list[Artifact] = Field(default_factory=list)
    workdir: Argument | None = None
    env: dict[str, EnvValue] = Field(default_factory=dict)
    command: list[Argument] = Field(min_length=1)
    axis_args: dict[str, list[Argument]] = Field(
        default_factory=dict, description="arguments appended to the command only when the grid has that axis"
    )
    grid: dict[str, Any] | None = None
    repeat: RepeatValue = 1
    warmup: Int = Field(default=0, ge=0, le=100)
    record_warmup: bool = False
    timeout: Duration = 600.0
    order: Literal["grid", "interleave", "shuffle"] = "interleave"
    seed: Int = 0
    cooldown: Cooldown | None = None
    bench_mode: BenchMode | None = None  # device state to run in, restored after the job (docs/measurement.md)
    retries: Int = Field(default=2, ge=0, le=20)
    synthetic: bool = False
    inputs: list[Argument] = Field(default_factory=list, description="files already on the device to sha256")
    collect: list[Argument] = Field(default_factory=list, description="globs of files to copy back after each run")
    collect_clear: bool = False
    exec: ExecWrapper | None = None
    build: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f]+$",
        description="the build under test (a commit, a version); default: the sha256 of the benchmark binary",
    )

    _grid: Grid = PrivateAttr(default_factory=single_point_grid)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("env", mode="before")
    @classmethod
    def _env_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in value.items()
            }
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, EnvValue]) -> dict[str, EnvValue]:
        import re

        for key in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return value

    @field_validator("command", mode="before")
    @classmethod
    def _command_is_argv(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("command must be a list of arguments (argv), not one shell string")
        return _numbers_as_strings(value)

    @field_validator("axis_args", mode="before")
    @classmethod
    def _axis_args_are_argv(cls, value: object) -> object:
        return {k: _numbers_as_strings(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("axis_args")
    @classmethod
    def _axis_args_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        import re

        for key, extra in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{key!r} is not an axis name")
            if not extra:
                raise ValueError(f"{key!r}: give at least one argument")
        return value

    @field_validator("workload")
    @classmethod
    def _known_workload(cls, value: str) -> str:
        from farm import workloads

        known = workloads.available()
        if value not in known:
            raise ValueError(f"unknown workload {value!r}; known: {', '.join(known) or '(none registered)'}")
        return value

    @model_validator(mode="after")
    def _check(self) -> JobSpec:
        grid, issues = _whole_job_check(self.model_dump())
        if issues or grid is None:
            raise FieldIssues(issues)
        self._grid = grid
        return self

    @model_validator(mode="after")
    def _adaptive_metric(self) -> JobSpec:
        if isinstance(self.repeat, AdaptiveRepeat):
            from farm.workloads import headline_metrics

            heads = headline_metrics(self.workload, self.workload_options)
            if self.repeat.metric is None and not heads:
                raise FieldIssues([("repeat.metric", f"workload {self.workload!r} has no headline metric: name one")])
            metric = self.repeat.metric
            if metric is not None and self.workload in ("regex", "json") and metric not in heads:
                raise FieldIssues([("repeat.metric", f"{metric!r} is not a metric of this job: {', '.join(heads)}")])
        return self

    @property
    def adaptive(self) -> AdaptiveRepeat | None:
        """The adaptive repeat rule, or None for a fixed ``repeat: N``."""
        return self.repeat if isinstance(self.repeat, AdaptiveRepeat) else None

    @property
    def repeat_min(self) -> int:
        """Measured repeats every point gets (``repeat: N``: N; adaptive: its ``min``)."""
        return self.repeat.min if isinstance(self.repeat, AdaptiveRepeat) else self.repeat

    @property
    def repeat_max(self) -> int:
        return self.repeat.max if isinstance(self.repeat, AdaptiveRepeat) else self.repeat

    @property
    def headline(self) -> str | None:
        """The metric adaptive repeats decide on (None for a fixed repeat count)."""
        rule = self.adaptive
        if rule is None:
            return None
        from farm.workloads import headline_metrics

        return rule.metric or headline_metrics(self.workload, self.workload_options)[0]

    @property
    def grid_spec(self) -> Grid:
        return self._grid

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def artifact_path(self, artifact: Artifact) -> Path:
        src = Path(artifact.src).expanduser()
        return src if src.is_absolute() else self._base_dir / src

    def check_artifacts(self, source: str) -> None:
        """Every artifact's source must be a readable file; called before anything is submitted."""
        issues = []
        for i, art in enumerate(self.artifacts):
            path = self.artifact_path(art)
            if not path.is_file():
                issues.append((f"artifacts[{i}].src", f"no such file: {path}"))
            elif art.constants:
                from farm.script_constants import check_constants

                try:
                    check_constants(path, art.constants, str(path))
                except (ConfigError, OSError, UnicodeDecodeError) as exc:
                    issues.append((f"artifacts[{i}].constants", str(exc)))
        if issues:
            raise ConfigError(source, issues)


def collect_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a ``collect:`` glob (relative to the workdir, inside it), or None."""
    if not pattern or not pattern.strip():
        return "empty glob"
    if pattern.startswith("/") or pattern.startswith("~"):
        return "must be relative to the workdir (files are collected from the run's working directory)"
    if ".." in pattern.split("/"):
        return "must stay inside the workdir (no '..')"
    if "**" in pattern:
        return "'**' is not supported: name each folder level ('dumps/*/*.npz')"
    return None


def _whole_job_check(values: Mapping[str, Any]) -> tuple[Grid | None, list[tuple[str, str]]]:
    """The checks across fields: the grid, the ``cores`` axis, templates against the axes, workload options.

    Works on the model's fields or, when some field is invalid, on the raw YAML data (skipping what has the wrong
    shape), so every problem of a file is reported in one go.
    """
    issues: list[tuple[str, str]] = []
    grid: Grid | None = single_point_grid()
    if values.get("grid") is not None:
        try:
            grid = parse_grid(values["grid"])
        except GridError as exc:
            issues += [(_grid_path(path), reason) for path, reason in exc.issues]
            grid = None
    if grid is not None and "cores" in grid.names:
        issues += _core_list_issues(values["grid"], grid)
    devices = values.get("devices")
    kind = devices.get("kind") if isinstance(devices, Mapping) else None
    axes = set(grid.names) if grid is not None else _declared_axes(values["grid"])
    for path, text in _template_fields(values, axes):
        issues += _template_issues(path, text, axes, kind)
    issues += _collect_issues(values)
    workload, options = values.get("workload"), values.get("workload_options", {})
    from farm import workloads

    if isinstance(workload, str) and workload in workloads.available() and isinstance(options, Mapping):
        try:
            workloads.make_adapter(workload, options)
        except (ValueError, TypeError, OverflowError) as exc:  # OverflowError: e.g. a regex repeat count
            issues.append(("workload_options", str(exc)))
    return grid, issues


def _declared_axes(raw: object) -> set[str] | None:
    """The axis names an invalid grid declares (plain keys and zip row keys), or None if it has no usable shape."""
    if not isinstance(raw, Mapping):
        return None
    names = {k for k in raw if isinstance(k, str) and k not in RESERVED}
    rows = raw.get("zip")
    for row in [r for g in rows for r in (g if isinstance(g, list) else [g])] if isinstance(rows, list) else []:
        if isinstance(row, Mapping):
            names.update(k for k in row if isinstance(k, str))
    return names


def _grid_path(path: str) -> str:
    return "grid" + ("." + path if path and not path.startswith("[") else path)


def _core_list_issues(raw: Mapping[str, Any], grid: Grid) -> list[tuple[str, str]]:
    """The ``cores`` axis pins runs to CPUs (``taskset``): each value must be a core list such as ``"4-7"``."""
    issues = []
    for path, value in _axis_values(raw, grid, "cores"):
        try:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(f"expected a core list such as '0-3' or '4,5,6,7', got {value!r}")
            parse_core_list(str(value))
        except ValueError as exc:
            issues.append((_grid_path(path), f"{exc} (the 'cores' axis pins each run to these CPUs)"))
    return issues


def _axis_values(raw: Mapping[str, Any], grid: Grid, name: str) -> Iterator[tuple[str, object]]:
    """Every value ``name`` takes in a valid grid, with its path below ``grid`` (a range: its two ends)."""
    for keys, rows in grid.dims:
        if name not in keys:
            continue
        if isinstance(rows, RangeRows):
            yield f"{name}.start", rows[0][0]
            yield f"{name}.stop", rows[-1][0]
        elif name in raw:  # a plain axis (a scalar is a one-value list)
            yield from ((f"{name}[{i}]" if isinstance(raw[name], list) else name, row[0]) for i, row in enumerate(rows))
        else:
            several = all(isinstance(g, list) for g in raw["zip"])
            groups = raw["zip"] if several else [raw["zip"]]
            prefixes = [f"zip[{g}]" for g in range(len(groups))] if several else ["zip"]
            for gpath, group in zip(prefixes, groups, strict=True):
                if name in group[0]:
                    yield from ((f"{gpath}[{i}].{name}", row[name]) for i, row in enumerate(group))
    yield from ((f"include[{i}].{name}", point[name]) for i, point in enumerate(grid.include))


def _template_fields(values: Mapping[str, Any], axes: set[str] | None) -> Iterator[tuple[str, str]]:
    """Every field that is a template, with its path: what ``_template_issues`` checks."""
    command, env, workdir, artifacts = (values.get(k) for k in ("command", "env", "workdir", "artifacts"))
    if isinstance(command, list):
        yield from ((f"command[{i}]", a) for i, a in enumerate(command) if isinstance(a, str))
    if isinstance(env, Mapping):
        for k, v in env.items():
            text = v.get("prepend") if isinstance(v, Mapping) else v
            if isinstance(text, str):
                yield f"env.{k}", text
    axis_args = values.get("axis_args")
    if isinstance(axis_args, Mapping):
        for axis, extra in axis_args.items():
            if axes is not None and axis in axes and isinstance(extra, list):
                # an axis that is not in the grid leaves its arguments out, unchecked
                yield from ((f"axis_args.{axis}[{i}]", a) for i, a in enumerate(extra) if isinstance(a, str))
    if isinstance(workdir, str):
        yield "workdir", workdir
    if isinstance(artifacts, list):
        for i, art in enumerate(artifacts):
            if isinstance(art, Mapping) and isinstance(art.get("dst"), str):
                yield f"artifacts[{i}].dst", art["dst"]
            constants = art.get("constants") if isinstance(art, Mapping) else None
            if isinstance(constants, Mapping):
                yield from ((f"artifacts[{i}].constants.{k}", v) for k, v in constants.items() if isinstance(v, str))
    for key in ("inputs", "collect"):
        items = values.get(key)
        if isinstance(items, list):
            yield from ((f"{key}[{i}]", p) for i, p in enumerate(items) if isinstance(p, str))


def _collect_issues(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``collect:`` globs stay inside the workdir; ``inputs:`` name files."""
    issues = []
    collect, inputs = values.get("collect"), values.get("inputs")
    collect = collect if isinstance(collect, list) else []
    for i, pattern in enumerate(collect):
        problem = collect_problem(pattern) if isinstance(pattern, str) else None
        if problem:
            issues.append((f"collect[{i}]", problem))
    if collect and values.get("workdir") is None:
        issues.append(("collect", "needs a workdir: files are collected from the run's working directory"))
    if values.get("collect_clear") is True and not collect:
        issues.append(("collect_clear", "needs collect: globs naming the files to clear"))
    for i, path in enumerate(inputs if isinstance(inputs, list) else []):
        if isinstance(path, str) and not path.strip():
            issues.append((f"inputs[{i}]", "empty path"))
    return issues


_KIND_FIELDS = {"device.chip": "sophgo", "device.npu": "ascend"}


def _template_issues(path: str, text: str, axes: set[str] | None, kind: object) -> list[tuple[str, str]]:
    """Every bad name in one template (``axes`` None: the grid is invalid, so only the syntax is checked)."""
    issues = []
    try:
        for name in templates.names(text):
            if axes is not None and not templates.allowed(name, axes):
                known = ", ".join(sorted(axes)) or "none"
                issues.append((path, f"'{{{name}}}' is not a grid axis (axes: {known}) or device field"))
            elif kind is not None and name in _KIND_FIELDS and kind != _KIND_FIELDS[name]:
                issues.append((path, f"'{{{name}}}' exists only on {_KIND_FIELDS[name]} devices, not {kind}"))
    except templates.TemplateError as exc:
        issues.append((path, str(exc)))
    return issues


def load_job(path: str | Path, *, check_artifacts: bool = False) -> JobSpec:
    path = Path(path)
    return job_from_document(read_document(path), path.resolve().parent, check_artifacts=check_artifacts)


def job_from_document(doc: Document, base_dir: Path, *, check_artifacts: bool = False) -> JobSpec:
    job = validate_document(JobSpec, doc, lambda data: _whole_job_check(data)[1])
    job._base_dir = base_dir
    if check_artifacts:
        job.check_artifacts(doc.source)
    return job


def job_from_dict(data: dict[str, Any], source: str = "<job>", base_dir: Path | None = None) -> JobSpec:
    return job_from_document(Document(data, source), base_dir or Path.cwd())
