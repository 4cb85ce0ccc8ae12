"""The shapes of the API's answers, as its OpenAPI schema publishes them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Job(BaseModel):
    """One job's progress (``farm status``): ``done`` = ``finished`` + ``skipped``, out of ``total`` runs."""

    job_id: str
    job: str
    state: str = Field(description="running, cancelling, done or cancelled")
    total: int
    done: int
    finished: int = Field(description="runs with a row")
    skipped: int = Field(description="runs already ok in the results")
    running: int
    queued: int
    not_started: int = Field(description="runs a cancel dropped before they reached a device")
    retries: int
    statuses: dict[str, int] = Field(description="finished runs by status: ok, failed, timeout, …")
    submitted_at: float
    finished_at: float | None


class Device(BaseModel):
    """One device slot (``farm devices``)."""

    device_id: str
    kind: str
    node: str
    node_id: str
    state: str = Field(description="idle, busy, offline, unauthorized, untrusted or quarantined")
    current_run: str = Field(description="JOB_ID:RUN_ID of the run on it, or ''")
    reason: str = Field(description="why it is not usable, or ''")
    temperature_c: float | None = Field(description="the last temperature a run of the device reported")
    holder: str = Field(description="the job whose run holds the slot's lease, or ''")


class Artifact(BaseModel):
    name: str
    sha256: str
    size: int
    src: str = Field(description="upload:NAME for an uploaded file, else its path under the artifact root")


class Submitted(BaseModel):
    job_id: str
    artifacts: list[Artifact]


class RowsPage(BaseModel):
    total: int = Field(description="rows of the job (with the filter)")
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last one")
    headline_metric: str | None = Field(description="the job's headline metric column, if any was measured")
    rows: list[dict[str, Any]]


class Refused(BaseModel):
    """A job refused as bad input: the lines ``farm submit`` prints for that file."""

    detail: str
    lines: list[str]
    source: str
    issues: list[dict[str, str]] = Field(description="{path, reason} per problem")
