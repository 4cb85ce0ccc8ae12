"""The client's typed statuses, built from the controller's wire form (the Ray side: tests/runtime/)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from farm.client import ControllerInfo, DeviceStatus, JobState, JobStatus, RunStatus
from farm.scheduler import SlotState


def wire(**changes: Any) -> dict[str, Any]:
    """A status as ``Controller.status`` sends it."""
    data: dict[str, Any] = {
        "job_id": "sweep-1a2b3c4d",
        "job": "sweep",
        "state": "done",
        "total": 6,
        "skipped": 2,
        "finished": 4,
        "running": 0,
        "queued": 0,
        "not_started": 0,
        "retries": 1,
        "statuses": {"ok": 3, "timeout": 1},
        "submitted_at": 100.0,
        "finished_at": 160.5,
    }
    return data | changes


def test_job_status_is_typed_frozen_and_equal_to_the_strings_rows_hold() -> None:
    st = JobStatus.from_dict(wire())
    assert st.state is JobState.DONE and st.ended and st.done == 6
    assert st.statuses == {RunStatus.OK: 3, RunStatus.TIMEOUT: 1} == {"ok": 3, "timeout": 1}
    assert all(type(k) is RunStatus for k in st.statuses)
    assert st.count(RunStatus.OK) == 3 and st.count(RunStatus.FAILED) == 0
    assert st.counts_text() == "ok 3, timeout 1"
    assert not st.all_ok  # one run timed out
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.total = 7  # type: ignore[misc]


def test_all_ok_needs_every_run_ok_and_the_job_done() -> None:
    assert JobStatus.from_dict(wire(statuses={"ok": 4})).all_ok
    assert not JobStatus.from_dict(wire(statuses={"ok": 4}, state="cancelled")).all_ok
    running = JobStatus.from_dict(wire(statuses={"ok": 4}, state="running"))
    assert not running.all_ok and not running.ended


def test_an_unknown_status_or_state_is_refused_not_passed_on() -> None:
    with pytest.raises(ValueError, match="'exploded'"):
        JobStatus.from_dict(wire(statuses={"exploded": 1}))
    with pytest.raises(ValueError, match="'paused'"):
        JobStatus.from_dict(wire(state="paused"))


def test_run_status_names_every_status_a_row_can_hold() -> None:
    assert {s.value for s in RunStatus} == {"ok", "failed", "timeout", "infra_error", "parse_error", "cancelled"}


def test_device_status_and_controller_info() -> None:
    dev = DeviceStatus.from_dict(
        {"slot": "p1", "device_id": "p1", "kind": "android", "node": "lab-1", "node_id": "ab12", "state": "offline"}
        | {"current_run": "", "reason": "adb: device offline"}
    )
    assert dev.state is SlotState.OFFLINE and dev.reason == "adb: device offline"
    assert ControllerInfo.from_dict({"devices": 2, "slots": 3, "metrics_address": ["127.0.0.1", 9400]}) == (
        ControllerInfo(2, 3, ("127.0.0.1", 9400))
    )
    assert ControllerInfo.from_dict({"devices": 1, "slots": 1, "metrics_address": None}).metrics_address is None
