"""The job spec: a workload, a command template, artifacts, env, a parameter grid and a device selector."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from farm import templates
from farm.errors import ConfigError
from farm.grid import RESERVED, Grid, GridError, RangeRows, parse_grid, single_point_grid
from farm.specs.inventory import Slot
from farm.specs.loading import Document, FieldIssues, read_document, validate_document
from farm.specs.types import Argument, Duration, FileMode, Ident, Int, Number, parse_core_list


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Artifact(_Spec):
    src: Argument = Field(min_length=1, description="local file, relative to the job file's folder")
    dst: Argument = Field(min_length=1, description="path on the device; a trailing '/' means into that folder")
    mode: FileMode | None = None

    def remote_path(self) -> str:
        return self.dst + Path(self.src).name if self.dst.endswith("/") else self.dst


class DeviceSelector(_Spec):
    kind: Literal["android", "sophgo", "ascend", "host"] | None = None
    ids: list[str] | None = Field(default=None, min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    placement: Literal["each", "any"] = "each"
    limit: Int | None = Field(default=None, ge=1, description="use at most this many matching slots")

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, int | float | bool) else v for k, v in value.items()}
        return value

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


class JobSpec(_Spec):
    name: Ident
    description: str = ""
    workload: str = Field(min_length=1)
    workload_options: dict[str, Any] = Field(default_factory=dict)
    devices: DeviceSelector = Field(default_factory=DeviceSelector)
    artifacts: list[Artifact] = Field(default_factory=list)
    workdir: Argument | None = None
    env: dict[str, Argument] = Field(default_factory=dict)
    command: list[Argument] = Field(min_length=1)
    grid: dict[str, Any] | None = None
    repeat: Int = Field(default=1, ge=1, le=10_000)
    warmup: Int = Field(default=0, ge=0, le=100)
    record_warmup: bool = False
    timeout: Duration = 600.0
    order: Literal["grid", "interleave", "shuffle"] = "interleave"
    seed: Int = 0
    cooldown: Cooldown | None = None
    retries: Int = Field(default=2, ge=0, le=20)
    synthetic: bool = False

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
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
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
        if isinstance(value, list):
            return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]
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
        if issues:
            raise ConfigError(source, issues)


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
    for path, text in _template_fields(values):
        issues += _template_issues(path, text, axes, kind)
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


def _template_fields(values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    command, env, workdir, artifacts = (values.get(k) for k in ("command", "env", "workdir", "artifacts"))
    if isinstance(command, list):
        yield from ((f"command[{i}]", a) for i, a in enumerate(command) if isinstance(a, str))
    if isinstance(env, Mapping):
        yield from ((f"env.{k}", v) for k, v in env.items() if isinstance(v, str))
    if isinstance(workdir, str):
        yield "workdir", workdir
    if isinstance(artifacts, list):
        for i, art in enumerate(artifacts):
            if isinstance(art, Mapping) and isinstance(art.get("dst"), str):
                yield f"artifacts[{i}].dst", art["dst"]


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
