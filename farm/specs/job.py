"""The job spec: a workload, a command template, artifacts, env, a parameter grid and a device selector."""

from __future__ import annotations

import re
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
from farm.grid import Grid, GridError, parse_grid, single_point_grid
from farm.specs.inventory import Slot
from farm.specs.loading import read_yaml, validate_model
from farm.specs.types import Duration, FileMode, Ident

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Artifact(_Spec):
    src: str = Field(min_length=1, description="local file, relative to the job file's folder")
    dst: str = Field(min_length=1, description="path on the device; a trailing '/' means into that folder")
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

    prepend: str = Field(min_length=1, description="the part put first; a template")
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
    Annotated[str, Tag("tag:text")] | Annotated[EnvPrependSpec, Tag("tag:prepend")], Discriminator(_env_kind)
]


class ExecWrapper(_Spec):
    """Where every command of the job runs on the device: ``docker: NAME`` runs it with ``docker exec`` inside
    that (already running) container."""

    docker: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description="container name or id")


class DeviceSelector(_Spec):
    kind: Literal["android", "sophgo", "ascend", "host"] | None = None
    ids: list[str] | None = Field(default=None, min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    placement: Literal["each", "any"] = "each"
    limit: int | None = Field(default=None, ge=1, description="use at most this many matching slots")

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

    max_temp_c: float | None = Field(default=None, gt=0, lt=150)
    margin_c: float = Field(default=2.0, ge=0)
    max_wait: Duration = 300.0
    poll: Duration = 2.0


class JobSpec(_Spec):
    name: Ident
    description: str = ""
    workload: str = Field(min_length=1)
    workload_options: dict[str, Any] = Field(default_factory=dict)
    devices: DeviceSelector = Field(default_factory=DeviceSelector)
    artifacts: list[Artifact] = Field(default_factory=list)
    workdir: str | None = None
    env: dict[str, EnvValue] = Field(default_factory=dict)
    command: list[str] = Field(min_length=1)
    axis_args: dict[str, list[str]] = Field(
        default_factory=dict, description="arguments appended to the command only when the grid has that axis"
    )
    grid: dict[str, Any] | None = None
    repeat: int = Field(default=1, ge=1, le=10_000)
    warmup: int = Field(default=0, ge=0, le=100)
    record_warmup: bool = False
    timeout: Duration = 600.0
    order: Literal["grid", "interleave", "shuffle"] = "interleave"
    seed: int = 0
    cooldown: Cooldown | None = None
    retries: int = Field(default=2, ge=0, le=20)
    synthetic: bool = False
    inputs: list[str] = Field(default_factory=list, description="files already on the device to sha256")
    collect: list[str] = Field(default_factory=list, description="globs of files to copy back after each run")
    collect_clear: bool = False
    exec: ExecWrapper | None = None

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
        try:
            grid = parse_grid(self.grid) if self.grid is not None else single_point_grid()
        except GridError as exc:
            raise _PathError(
                "grid" + ("." + exc.path if exc.path and not exc.path.startswith("[") else exc.path),
                exc.reason,
            ) from exc
        self._grid = grid
        axes = set(grid.names)
        fields: list[tuple[str, str]] = [(f"command[{i}]", a) for i, a in enumerate(self.command)]
        fields += [(f"env.{k}", v.prepend if isinstance(v, EnvPrependSpec) else v) for k, v in self.env.items()]
        for axis, extra in self.axis_args.items():
            if axis in axes:  # an axis that is not in the grid leaves its arguments out, unchecked
                fields += [(f"axis_args.{axis}[{i}]", a) for i, a in enumerate(extra)]
        if self.workdir is not None:
            fields.append(("workdir", self.workdir))
        fields += [(f"artifacts[{i}].dst", a.dst) for i, a in enumerate(self.artifacts)]
        for i, a in enumerate(self.artifacts):
            fields += [(f"artifacts[{i}].constants.{k}", v) for k, v in a.constants.items()]
        fields += [(f"inputs[{i}]", p) for i, p in enumerate(self.inputs)]
        fields += [(f"collect[{i}]", p) for i, p in enumerate(self.collect)]
        for path, text in fields:
            try:
                for name in templates.names(text):
                    if not templates.allowed(name, axes):
                        known = ", ".join(sorted(axes)) or "none"
                        raise _PathError(path, f"'{{{name}}}' is not a grid axis (axes: {known}) or device field")
            except templates.TemplateError as exc:
                raise _PathError(path, str(exc)) from exc
        for i, pattern in enumerate(self.collect):
            problem = collect_problem(pattern)
            if problem:
                raise _PathError(f"collect[{i}]", problem)
        if self.collect and self.workdir is None:
            raise _PathError("collect", "needs a workdir: files are collected from the run's working directory")
        if self.collect_clear and not self.collect:
            raise _PathError("collect_clear", "needs collect: globs naming the files to clear")
        for i, path in enumerate(self.inputs):
            if not path.strip():
                raise _PathError(f"inputs[{i}]", "empty path")
        try:
            from farm import workloads

            workloads.make_adapter(self.workload, self.workload_options)
        except ValueError as exc:
            raise _PathError("workload_options", str(exc)) from exc
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


class _PathError(ValueError):
    """Raised inside model validation to report an error at a field path below the model."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


def load_job(path: str | Path, *, check_artifacts: bool = False) -> JobSpec:
    path = Path(path)
    source = str(path)
    data = read_yaml(path)
    try:
        job = validate_model(JobSpec, data, source)
    except ConfigError as exc:
        raise _unwrap(exc) from exc.__cause__
    job._base_dir = path.resolve().parent
    if check_artifacts:
        job.check_artifacts(source)
    return job


def job_from_dict(data: dict[str, Any], source: str = "<job>", base_dir: Path | None = None) -> JobSpec:
    try:
        job = validate_model(JobSpec, data, source)
    except ConfigError as exc:
        raise _unwrap(exc) from exc.__cause__
    job._base_dir = base_dir or Path.cwd()
    return job


def _unwrap(exc: ConfigError) -> ConfigError:
    # Errors raised as _PathError inside the model validator surface at the model's root; move them to their path.
    cause = exc.__cause__
    fixed = []
    details: list[Any] = getattr(cause, "errors", lambda: [])() if cause is not None else []
    for (path, reason), detail in zip(exc.issues, details or [None] * len(exc.issues), strict=False):
        ctx_err = (detail or {}).get("ctx", {}).get("error") if isinstance(detail, dict) else None
        if isinstance(ctx_err, _PathError):
            fixed.append((ctx_err.path, ctx_err.reason))
        else:
            fixed.append((path, reason))
    return ConfigError(exc.source, fixed)
