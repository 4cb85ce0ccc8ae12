"""The public front of a running farm: :class:`FarmClient` and the typed statuses it returns.

A client wraps the handle of the controller actor and turns each of its remote methods into a plain call that
returns a frozen dataclass (:class:`JobStatus`, :class:`DeviceStatus`, :class:`ControllerInfo`) instead of a dict;
run outcomes are :class:`RunStatus` and job states :class:`JobState` (both ``StrEnum``: they compare equal to the
strings the result rows hold). The CLI, the benchmarks and the tests talk to the controller through it only.

The rest of the Ray glue, in the order a run crosses it:

- :mod:`farm.runtime` — starting (or joining) Ray, creating the named controller actor, finding it again,
  describing a job's artifacts (and shipping their bytes through Ray's object store);
- :mod:`farm.controller` — the controller actor itself (job queue, dispatch, health, results writer);
- :mod:`farm.placement` — which Ray node a device actor runs on, and its actor options;
- :mod:`actors.ray_actor` — the device actor wrapping one :class:`~actors.device.Device`.

Everything else (specs, plan, scheduler, devices, transports, results) is plain Python that does not know Ray.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.messages import ArtifactRef
from farm import runtime
from farm.controller import ControllerOptions
from farm.scheduler import SlotState
from farm.specs.inventory import Inventory
from farm.specs.job import JobSpec

__all__ = [
    "ControllerInfo",
    "ControllerOptions",
    "DeviceStatus",
    "FarmClient",
    "JobState",
    "JobStatus",
    "RunStatus",
    "start_ray",
    "stop_ray",
]


class RunStatus(enum.StrEnum):
    """The outcome of one run, as its result row's ``status`` column records it (:func:`farm.rows.classify`)."""

    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INFRA_ERROR = "infra_error"
    PARSE_ERROR = "parse_error"
    CANCELLED = "cancelled"


class JobState(enum.StrEnum):
    """Where a job is: ``running`` → ``done``, or ``running`` → ``cancelling`` → ``cancelled``."""

    RUNNING = "running"
    CANCELLING = "cancelling"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (JobState.DONE, JobState.CANCELLED)


@dataclass(frozen=True)
class JobStatus:
    """One job's progress. ``finished`` runs have a row; ``skipped`` ones were already ``ok`` in the results;
    ``not_started`` ones were dropped by a cancel before reaching a device (no row each)."""

    job_id: str
    job: str
    state: JobState
    total: int
    skipped: int
    finished: int
    running: int
    queued: int
    not_started: int
    retries: int
    statuses: Mapping[RunStatus, int]
    submitted_at: float
    finished_at: float | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobStatus:
        """From the controller's wire form (``Controller.status``/``wait``/``cancel``)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["state"] = JobState(data["state"])
        values["statuses"] = {RunStatus(k): int(n) for k, n in data["statuses"].items()}
        values.setdefault("not_started", 0)
        return cls(**values)

    @property
    def ended(self) -> bool:
        return self.state.ended

    @property
    def done(self) -> int:
        """Runs behind us: finished plus skipped."""
        return self.finished + self.skipped

    def count(self, status: RunStatus) -> int:
        return self.statuses.get(status, 0)

    @property
    def all_ok(self) -> bool:
        """The job ran to its end and every one of its runs is ``ok`` (now or from before): the CLI's exit 0."""
        return self.state is JobState.DONE and self.count(RunStatus.OK) + self.skipped == self.total

    def counts_text(self) -> str:
        """``"failed 1, ok 3"``: the statuses in name order ("" when nothing finished)."""
        return ", ".join(f"{s} {n}" for s, n in sorted(self.statuses.items()))


@dataclass(frozen=True)
class DeviceStatus:
    """One device slot of the farm as the controller sees it: ``slot`` and the inventory device it belongs to."""

    slot: str
    device_id: str
    kind: str
    node: str
    node_id: str
    state: SlotState
    current_run: str
    reason: str = ""
    temperature_c: float | None = None  # the last temperature a run of the device reported
    holder: str = ""  # the job id whose run holds the slot's lease ("" when free)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceStatus:
        temperature = data.get("temperature_c")
        return cls(
            slot=str(data["slot"]),
            device_id=str(data["device_id"]),
            kind=str(data["kind"]),
            node=str(data["node"]),
            node_id=str(data.get("node_id", "")),
            state=SlotState(data["state"]),
            current_run=str(data["current_run"]),
            reason=str(data.get("reason") or ""),
            temperature_c=None if temperature is None else float(temperature),
            holder=str(data.get("holder") or ""),
        )


@dataclass(frozen=True)
class ControllerInfo:
    """What a started controller holds; ``metrics_address`` is ``(host, port)`` when it serves metrics."""

    devices: int
    slots: int
    metrics_address: tuple[str, int] | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControllerInfo:
        address = data.get("metrics_address")
        return cls(int(data["devices"]), int(data["slots"]), (str(address[0]), int(address[1])) if address else None)


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address`` or start a private local Ray (see :func:`farm.runtime.init_ray`)."""
    runtime.init_ray(address, num_cpus)


def stop_ray() -> None:
    import ray

    ray.shutdown()


def cluster_address(address: str | None) -> str:
    """``address``, else ``$RAY_ADDRESS``, else ``auto`` (the cluster this machine belongs to)."""
    return address or os.environ.get("RAY_ADDRESS") or "auto"


class FarmClient:
    """A running controller, called like a local object: each method waits for the controller's answer."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle  # the controller's Ray actor handle, for what this front does not cover

    # ----- getting a client ----------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        inventory: Inventory,
        results_root: str,
        *,
        detached: bool = False,
        options: ControllerOptions | None = None,
    ) -> FarmClient:
        """Create the controller and its device actors on the Ray this process is connected to."""
        return cls(runtime.start_controller(inventory, results_root, detached=detached, options=options))

    @classmethod
    def connect(cls, address: str | None = None) -> FarmClient:
        """Join the cluster (:func:`cluster_address`) and find its running controller (ControllerError if none)."""
        start_ray(cluster_address(address))
        return cls(runtime.controller())

    # ----- the controller ------------------------------------------------------------------------------
    def info(self) -> ControllerInfo:
        """Devices, slots and metrics address of the controller (starting it if it was not started yet)."""
        return ControllerInfo.from_dict(self._get(self.handle.start.remote()))

    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel running jobs, flush results, close the devices' connections; the actor stays until killed."""
        self._get(self.handle.shutdown.remote(), timeout)

    def kill(self) -> None:
        """End the controller actor (a detached one lives on until this)."""
        import ray

        ray.kill(self.handle)

    # ----- jobs ----------------------------------------------------------------------------------------
    def submit(self, job: JobSpec, source: str, *, ship: bool, rerun: bool = False) -> str:
        """Queue a loaded job; its job id. ``ship``: send the artifacts' bytes (a cluster); ``rerun``: run again
        the runs already recorded ``ok``."""
        data = job.model_dump(mode="json", exclude_defaults=True)
        return self.submit_data(data, source, str(job.base_dir), runtime.artifact_refs(job, ship), rerun=rerun)

    def submit_data(
        self,
        job_data: Mapping[str, Any],
        source: str,
        base_dir: str,
        artifacts: list[ArtifactRef] | None = None,
        *,
        rerun: bool = False,
        single: Mapping[str, Any] | None = None,
    ) -> str:
        """Queue a job given as data (``Controller.submit``); ``single`` runs one recorded run again."""
        call = self.handle.submit.remote(
            dict(job_data), source, base_dir, list(artifacts or []), rerun, None if single is None else dict(single)
        )
        return str(self._get(call))

    def status(self, job_id: str) -> JobStatus:
        return JobStatus.from_dict(self._get(self.handle.status.remote(job_id)))

    def jobs(self) -> list[JobStatus]:
        """Every job the controller knows, in submission order."""
        return [JobStatus.from_dict(d) for d in self._get(self.handle.status.remote())]

    def wait(self, job_id: str, timeout: float | None = None) -> JobStatus:
        """The job's status once it has ended, or after ``timeout`` seconds (then it may still be running)."""
        return JobStatus.from_dict(self._get(self.handle.wait.remote(job_id, timeout)))

    def cancel(self, job_id: str) -> JobStatus:
        return JobStatus.from_dict(self._get(self.handle.cancel.remote(job_id)))

    def cancel_nowait(self, job_id: str) -> None:
        """Ask for the cancel without waiting for the answer (from a signal handler)."""
        self.handle.cancel.remote(job_id)

    # ----- devices -------------------------------------------------------------------------------------
    def devices(self) -> list[DeviceStatus]:
        return [DeviceStatus.from_dict(d) for d in self._get(self.handle.devices_status.remote())]

    def check_health(self) -> None:
        """Run one health round over every device now (instead of waiting for the next)."""
        self._get(self.handle.check_health.remote())

    def device_handles(self) -> dict[str, Any]:
        """The device actors' handles by device id (tests and benchmarks reach into them)."""
        return dict(self._get(self.handle.device_handles.remote()))

    def stats(self) -> dict[str, Any]:
        """Figures the benchmarks read (``Controller.stats``)."""
        return dict(self._get(self.handle.stats.remote()))

    @staticmethod
    def _get(ref: Any, timeout: float | None = None) -> Any:
        import ray

        return ray.get(ref, timeout=timeout)
