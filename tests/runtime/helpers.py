"""Helpers for runtime tests: write a job file, start the embedded farm, read rows back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from farm.client import ControllerOptions, FarmClient, JobState, JobStatus
from farm.results import ResultsStore
from farm.specs.inventory import Inventory
from farm.specs.job import JobSpec, load_job


def write_job(tmp: Path, data: dict[str, Any], name: str = "job.yaml") -> tuple[JobSpec, str]:
    path = tmp / name
    path.write_text(yaml.safe_dump(data))
    return load_job(path), str(path)


def hosts(*ids: str, nodes: list[str | None] | None = None) -> Inventory:
    nodes = nodes or [None] * len(ids)
    return Inventory.model_validate(
        {"devices": [{"id": i, "kind": "host", **({"node": n} if n else {})} for i, n in zip(ids, nodes, strict=True)]}
    )


def start(inv: Inventory, results: Path, **opts: Any) -> FarmClient:
    return FarmClient.start(inv, str(results), options=ControllerOptions(**opts))


def wait_until(predicate: Any, timeout: float = 60.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def rows(results: Path, job: str) -> list[dict[str, Any]]:
    table = ResultsStore(str(results)).table(job)
    return table.to_pylist() if table is not None else []


def submit_and_wait(client: FarmClient, path: Path, *, rerun: bool = False, timeout: float = 300) -> JobStatus:
    """Submit the job file to a running controller and wait until it is done (asserted)."""
    job = load_job(path)
    job_id = client.submit(job, str(path), ship=False, rerun=rerun)
    status = client.wait(job_id, timeout)
    assert status.state is JobState.DONE, status
    return status


def device_states(client: FarmClient) -> dict[str, str]:
    return {d.slot: d.state for d in client.devices()}
