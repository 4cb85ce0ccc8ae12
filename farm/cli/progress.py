"""Following a job until it ends: a progress bar on a terminal, a log line per change otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from farm.cli.common import stderr

if TYPE_CHECKING:
    from farm.client import FarmClient, JobStatus


def follow(client: FarmClient, job_id: str, bar: bool) -> JobStatus:
    """Follow the job on stderr until it is done or cancelled; its final status."""
    status = client.status(job_id)
    if not bar:
        last = -1
        while not status.ended:
            status = client.wait(job_id, 5.0)
            if status.finished != last:
                last = status.finished
                stderr().print(_line(status))
        return status
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr(), transient=False) as progress:
        task = progress.add_task(status.job, total=status.total, detail="")
        while True:
            # the total grows while adaptive repeats add runs
            progress.update(task, total=status.total, completed=status.done, detail=_detail(status))
            if status.ended:
                break
            status = client.wait(job_id, 0.5)
    return status


def _detail(status: JobStatus) -> str:
    parts = [status.counts_text()] if status.statuses else []
    if status.running:
        parts.append(f"running {status.running}")
    if status.skipped:
        parts.append(f"skipped {status.skipped} (done before)")
    if status.retries:
        parts.append(f"retries {status.retries}")
    return ", ".join(parts)


def _line(status: JobStatus) -> str:
    return f"{status.job}: {status.done}/{status.total} {_detail(status)}"
