"""What the controller sends a device actor and what comes back: plain dataclasses that cross Ray as bytes.

A run's request and result cross Ray once each per call, so how they serialise is part of every run's cost. A call
carries one run, or a batch of short runs the device runs one after another (``farm.batching``). Handed
to Ray as dataclasses they go through cloudpickle (its per-object Python hook); packed here with the standard
pickle first (:func:`pack_requests`, :func:`pack_results`) they reach Ray as one ``bytes`` value, which it passes
through untouched: measured on the dev VM, about 0.2-0.3 ms less CPU per run on each side. The one exception is an
artifact's Ray object reference (cluster mode), which must travel as itself for Ray to track it: it is sent beside
the bytes and put back on arrival.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact to place on the device. ``ref`` is a Ray ObjectRef of the bytes, used when ``local_path`` is
    not readable on the device actor's node (cluster mode); ``sha256`` names the content."""

    name: str
    sha256: str
    size: int
    dst: str
    mode: int | None
    local_path: str
    ref: Any = None
    constants: tuple[tuple[str, str], ...] = ()  # set in a rendered copy (see actors.rendered_files)


@dataclass(frozen=True)
class ThermalGate:
    max_temp_c: float | None
    margin_c: float
    max_wait_s: float
    poll_s: float


@dataclass(frozen=True)
class RunRequest:
    job: str
    run_id: str
    attempt: int
    slot_id: str
    argv: list[str]
    env: dict[str, str]
    workdir: str | None
    timeout_s: float
    artifacts: list[ArtifactRef] = field(default_factory=list)
    cores: str | None = None
    thermal: ThermalGate | None = None
    dispatched_at: float = 0.0  # controller's time.time() when the run was handed out
    inputs: list[str] = field(default_factory=list)  # files already on the device whose sha256 the row records
    collect: list[str] = field(default_factory=list)  # globs (relative to workdir) copied back after the run
    collect_clear: bool = False  # remove files matching ``collect`` before the run
    docker: str | None = None  # run the command inside this container (``docker exec``)
    bench_mode: dict[str, Any] | None = None  # the job's bench profile (farm.specs.bench.BenchMode as data)


@dataclass
class RunResult:
    """Everything observed about one run. ``infra_error`` set means the device failed, not the benchmark."""

    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    started_at: float = 0.0
    duration_s: float = 0.0
    timed_out: bool = False
    cancelled: bool = False
    infra_error: str | None = None
    bytes_pushed: int = 0
    dispatch_latency_s: float | None = None  # run handed out → process started on the device
    held_s: float = 0.0  # how long the run held the device actor (lease, pushes, gate, run, samples): batch sizing
    samples: dict[str, float] = field(default_factory=dict)  # peak_rss_mib, temp_start_c, temp_max_c, …
    fingerprint: dict[str, str] = field(default_factory=dict)
    synthetic: bool = False
    node: str = ""
    # What the device executed: the argv after core binding and the env it set (device env + the job's);
    # None when the command never started.
    argv: list[str] | None = None
    env: dict[str, str] | None = None
    collected: list[CollectedFile] = field(default_factory=list)
    collect_error: str | None = None
    bench_mode: dict[str, Any] | None = None  # profile, applied, readback, ok, warnings (actors.bench.session)
    # energy_j, avg_power_w, idle_power_w, energy_source, energy_valid, … (see farm.probes.power)
    energy: dict[str, float | bool | str] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectedFile:
    """A file a run left in its workdir, copied back from the device (``path`` relative to the workdir)."""

    path: str
    sha256: str
    size: int
    data: bytes


def pack_requests(reqs: list[RunRequest]) -> tuple[bytes, list[Any]]:
    """``reqs`` (one call: a run, or a batch of short runs) as bytes, plus their artifacts' object references in
    order, or ``[]`` when none has one (see the module docstring)."""
    refs = [a.ref for req in reqs for a in req.artifacts]
    if not any(ref is not None for ref in refs):
        return pickle.dumps(reqs, protocol=pickle.HIGHEST_PROTOCOL), []
    bare = [dataclasses.replace(r, artifacts=[dataclasses.replace(a, ref=None) for a in r.artifacts]) for r in reqs]
    return pickle.dumps(bare, protocol=pickle.HIGHEST_PROTOCOL), refs


def unpack_requests(data: bytes, refs: list[Any]) -> list[RunRequest]:
    # Bytes from the controller over Ray, which unpickles every message between the two anyway: no new trust boundary.
    reqs: list[RunRequest] = pickle.loads(data)  # noqa: S301
    if not refs:
        return reqs
    it = iter(refs)
    return [dataclasses.replace(r, artifacts=[dataclasses.replace(a, ref=next(it)) for a in r.artifacts]) for r in reqs]


def pack_results(results: list[RunResult | None]) -> bytes:
    """One result per request of the call, in order; None for a run the device did not start."""
    return pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_results(data: bytes) -> list[RunResult | None]:
    results: list[RunResult | None] = pickle.loads(data)  # noqa: S301 - from the device actor (see unpack_requests)
    return results
