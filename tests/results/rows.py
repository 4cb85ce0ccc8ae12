"""Builders of contract-conforming result rows for the results-store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from farm.results.schema import slot_device

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_row(job: str = "sweep", run_id: str = "r0", attempt: int = 1, **extra: Any) -> dict[str, Any]:
    """A valid row of ``job``; ``extra`` overrides or adds columns (a ``slot`` alone also sets its ``device_id``)."""
    row: dict[str, Any] = {
        "job": job,
        "run_id": run_id,
        "device_id": "phone-1",
        "slot": "phone-1",
        "device_kind": "phone",
        "node": "node-a",
        "status": "ok",
        "error": None,
        "attempt": attempt,
        "repeat": 0,
        "warmup": False,
        "started_at": T0 + timedelta(seconds=attempt),
        "duration_s": 1.25,
        "synthetic": True,
        "command": "./llama-cli -t 4",
        "log_path": f"/logs/{run_id}-{attempt}.log",
    }
    row.update(extra)
    if "slot" in extra and "device_id" not in extra:
        row["device_id"] = slot_device(extra["slot"])
    return row
