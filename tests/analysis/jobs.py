"""Writers of small hand-made result datasets for the analysis tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from farm.analysis.jobdata import JobData, load_job_data
from farm.results import ResultsStore
from tests.results.rows import make_row


def write_job(root: Path, job: str, rows: Iterable[dict[str, Any]]) -> None:
    """Store ``rows`` (column overrides of :func:`make_row`) as ``job``; run ids default to ``<job>-<i>``."""
    with ResultsStore(str(root)).writer(job) as writer:
        for i, row in enumerate(rows):
            columns = dict(row)
            run_id = columns.pop("run_id", f"{job}-{i}")
            writer.add(make_row(job=job, run_id=run_id, **columns))


def job(root: Path, name: str, rows: Iterable[dict[str, Any]]) -> JobData:
    """Write ``rows`` as job ``name`` and read it back through DuckDB."""
    write_job(root, name, rows)
    return load_job_data(str(root), name)
