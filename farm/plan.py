"""From a job and the selected slots to RunSpecs: deterministic run ids, run order, warm-ups, rendered commands.

Everything here is lazy: a 100,000-point grid is planned without holding its points or runs in memory.
Orders:
- ``grid``: each point's repeats back to back (warm-ups first), points in grid order;
- ``interleave``: repeat rounds — every point once per round — so slow drift (heat, background load) spreads over
  all points instead of biasing the last ones;
- ``shuffle``: like ``interleave`` with a seeded permutation of the points in every round (a randomized complete
  block design); the same seed gives the same order.
Warm-ups: ``warmup: N`` runs each point N times, unrecorded (or recorded flagged), right before its first measured
repeat on a slot.
Adaptive repeats (``repeat: {min, max, ci}``): the plan holds ``min`` repeats per point; the scheduler adds the
others one at a time (:class:`AdaptiveRepeats`), with the run ids a fixed ``repeat: max`` would have given them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from farm import templates
from farm.envvars import EnvPrepend
from farm.errors import ConfigError
from farm.grid import Point, Scalar
from farm.specs.inventory import Slot
from farm.specs.job import EnvPrependSpec, JobSpec
from farm.stability import StoppingRule

ANY_SLOT = "*"


@dataclass(frozen=True)
class RunSpec:
    """One benchmark execution to schedule. ``slot_id`` is None for placement ``any`` (chosen at dispatch)."""

    run_id: str
    slot_id: str | None
    params: Mapping[str, Scalar]
    repeat: int
    warmup: bool = False
    seq: int = 0  # position in the job's order; the scheduler dispatches lower first
    candidates: tuple[str, ...] = field(default=())  # slots allowed for placement ``any``


@dataclass(frozen=True)
class Rendered:
    argv: list[str]
    env: dict[str, str]
    workdir: str | None
    artifacts: list[tuple[str, str, int | None]]  # (local src, remote dst, mode)
    constants: list[dict[str, str]] = field(default_factory=list)  # per artifact: constant name → value
    inputs: list[str] = field(default_factory=list)
    collect: list[str] = field(default_factory=list)


def run_id(job: str, slot: str, params: Mapping[str, Scalar], repeat: int, warmup: bool = False) -> str:
    """Stable across processes, Python versions and YAML key order; changes with job, slot, point or repeat."""
    canon = json.dumps(
        [job, slot, sorted((k, [type(v).__name__, v]) for k, v in params.items()), repeat, warmup],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canon.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class AdaptiveRepeats:
    """What the scheduler needs to add repeats to a point lazily: the stopping rule, the metric it decides on,
    and how to make repeat ``k`` of a run's point on the same slot (deterministic run ids)."""

    job: str
    metric: str
    rule: StoppingRule

    def point_key(self, run: RunSpec) -> str:
        """One key per grid point and slot (``*`` for placement ``any``): the run id of its repeat 0."""
        return run_id(self.job, run.slot_id or ANY_SLOT, run.params, 0)

    def repeat_run(self, run: RunSpec, repeat: int) -> RunSpec:
        rid = run_id(self.job, run.slot_id or ANY_SLOT, run.params, repeat)
        return RunSpec(rid, run.slot_id, run.params, repeat, False, run.seq, run.candidates)


def adaptive_repeats(job: JobSpec) -> AdaptiveRepeats | None:
    """The job's adaptive repeat plan, or None for a fixed ``repeat: N``."""
    spec, metric = job.adaptive, job.headline
    if spec is None or metric is None:
        return None
    rule = StoppingRule(spec.min, spec.max, spec.ci, spec.confidence, spec.method, job.seed)
    return AdaptiveRepeats(job.name, metric, rule)


def _feistel_permutation(n: int, seed: int) -> Iterator[int]:
    """A seeded permutation of range(n) produced lazily (balanced Feistel network + cycle walking)."""
    if n <= 1:
        yield from range(n)
        return
    bits = max(2, (n - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    mask = (1 << half) - 1
    keys = [hashlib.blake2b(f"{seed}:{r}".encode(), digest_size=8).digest() for r in range(4)]

    def f(x: int, key: bytes) -> int:
        return int.from_bytes(hashlib.blake2b(x.to_bytes(8, "little"), key=key, digest_size=8).digest(), "little")

    for i in range(1 << bits):
        left, right = i >> half, i & mask
        for key in keys:
            left, right = right, left ^ (f(right, key) & mask)
        x = (left << half) | right
        if x < n:
            yield x


def _point_order(job: JobSpec, round_index: int) -> Iterator[Point]:
    grid = job.grid_spec
    if job.order == "shuffle":
        for idx in _feistel_permutation(grid.index_space, job.seed * 1_000_003 + round_index):
            point = grid.point_at(idx)
            if point is not None:
                yield point
    else:
        yield from grid.points()


def _sequence(job: JobSpec) -> Iterator[tuple[Point, int, bool]]:
    """(point, repeat, warmup) in the job's order, independent of devices."""
    if job.order == "grid":
        for point in job.grid_spec.points():
            for w in range(job.warmup):
                yield point, w, True
            for r in range(job.repeat_min):
                yield point, r, False
        return
    for r in range(job.repeat_min):
        for point in _point_order(job, r):
            if r == 0:
                for w in range(job.warmup):
                    yield point, w, True
            yield point, r, False


def plan_runs(job: JobSpec, slots: Sequence[Slot]) -> Iterator[RunSpec]:
    """Every run of ``job`` on the selected ``slots``: per slot for placement ``each``, once for ``any``."""
    chosen = job.devices.select(list(slots))
    if not chosen:
        return
    seq = 0
    if job.devices.placement == "any":
        candidates = tuple(s.slot_id for s in chosen)
        for point, rep, warm in _sequence(job):
            yield RunSpec(
                run_id(job.name, ANY_SLOT, point, rep, warm),
                None,
                point,
                rep,
                warm,
                seq,
                candidates,
            )
            seq += 1
        return
    for point, rep, warm in _sequence(job):
        for slot in chosen:
            yield RunSpec(
                run_id(job.name, slot.slot_id, point, rep, warm),
                slot.slot_id,
                point,
                rep,
                warm,
                seq,
            )
        seq += 1


def template_values(job: JobSpec, run: RunSpec, slot: Slot) -> dict[str, str]:
    values = {k: templates.as_text(v) for k, v in run.params.items()}
    values.update(
        {
            "device.id": slot.device_id,
            "device.slot": slot.slot_id,
            "device.kind": slot.kind,
            "device.node": slot.node or "",
            "repeat": str(run.repeat),
            "job": job.name,
            "run_id": run.run_id,
        }
    )
    if slot.index is not None:
        values["device.chip" if slot.kind == "sophgo" else "device.npu"] = str(slot.index)
    values.update({f"device.label.{k}": v for k, v in slot.labels.items()})
    return values


def render(job: JobSpec, run: RunSpec, slot: Slot, source: str = "<job>") -> Rendered:
    """The concrete argv/env/workdir/artifacts for ``run`` on ``slot``; ConfigError if a field has no value."""
    values = template_values(job, run, slot)

    def one(path: str, text: str) -> str:
        try:
            return templates.render(text, values)
        except templates.TemplateError as exc:
            raise ConfigError.single(source, path, f"{exc} on device {slot.slot_id}") from exc

    argv = [one(f"command[{i}]", a) for i, a in enumerate(job.command)]
    for axis, extra in job.axis_args.items():
        if axis in job.grid_spec.names:  # arguments of an axis the grid leaves out are left out too
            argv += [one(f"axis_args.{axis}[{i}]", a) for i, a in enumerate(extra)]
    env: dict[str, str] = {}
    for k, v in job.env.items():
        env[k] = EnvPrepend(one(f"env.{k}", v.prepend), v.sep) if isinstance(v, EnvPrependSpec) else one(f"env.{k}", v)
    workdir = one("workdir", job.workdir) if job.workdir is not None else None
    artifacts = [
        (str(job.artifact_path(a)), one(f"artifacts[{i}].dst", a.remote_path()), a.mode)
        for i, a in enumerate(job.artifacts)
    ]
    constants = [
        {k: one(f"artifacts[{i}].constants.{k}", v) for k, v in a.constants.items()}
        for i, a in enumerate(job.artifacts)
    ]
    inputs = [one(f"inputs[{i}]", p) for i, p in enumerate(job.inputs)]
    collect = [one(f"collect[{i}]", p) for i, p in enumerate(job.collect)]
    return Rendered(argv, env, workdir, artifacts, constants, inputs, collect)


def repeat_text(job: JobSpec, noun: str = "") -> str:
    """``3`` or ``3..10 (adaptive: …)``: the measured repeats per point, as ``farm plan`` and ``validate`` say;
    ``noun`` goes after the count (``" repeats"``)."""
    rule = job.adaptive
    if rule is None:
        return f"{job.repeat}{noun}"
    return (
        f"{rule.min}..{rule.max}{noun} (adaptive: until the {rule.confidence:.0%} {rule.method} interval of "
        f"{job.headline} is within ±{rule.ci:g} %)"
    )


def count_runs(job: JobSpec, slots: Sequence[Slot], most: bool = False) -> dict[str, int]:
    """Runs per slot (``*`` for placement ``any``) without materialising them; adaptive repeats count ``min``
    (``most``: ``max``)."""
    chosen = job.devices.select(list(slots))
    per_point = (job.repeat_max if most else job.repeat_min) + job.warmup
    points = job.grid_spec.count()
    if job.devices.placement == "any":
        return {ANY_SLOT: points * per_point} if chosen else {}
    return {s.slot_id: points * per_point for s in chosen}


def check_job_on(job: JobSpec, slots: Sequence[Slot], source: str, farm: str = "the inventory") -> None:
    """Refuse, before anything is submitted, a job that matches no slot or whose templates some selected slot
    cannot fill (a ``{device.label.x}`` the device lacks, ``{device.chip}`` on a phone)."""
    chosen = job.devices.select(list(slots))
    if not chosen:
        raise ConfigError.single(source, "devices", f"matches no device of {farm}")
    point, rep, warm = next(_sequence(job))
    issues: list[tuple[str, str]] = []
    for slot in chosen:
        run = RunSpec(run_id(job.name, slot.slot_id, point, rep, warm), slot.slot_id, point, rep, warm)
        try:
            render(job, run, slot, source)
        except ConfigError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ConfigError(source, issues)
