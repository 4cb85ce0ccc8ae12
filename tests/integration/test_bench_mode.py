"""Bench mode end to end on virtual phones through the real adb server: a rooted phone (sysfs as root through
``su``) and a stock one (fixed performance mode, refusals); applied and read back; restored after a normal end,
a cancel, a refused profile, and a ``kill -9`` of the device actor (restored by the next actor)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from actors.bench.phone import SAVED_PATH
from actors.messages import RunRequest
from actors.phone import Phone
from farm.client import JobState
from farm.sim.adb_server import AdbServer
from farm.sim.phone import VirtualPhone
from farm.specs.inventory import AndroidDevice, Inventory
from farm.specs.job import load_job
from tests.fixtures.adb import PhoneFactory
from tests.runtime.helpers import rows, wait_until

pytestmark = pytest.mark.adb

PINNED = {"governor": "performance", "pin": "max", "gpu": "max", "screen": False, "airplane": True,
          "stay_awake": False, "charging": False}  # fmt: skip


def state_of(phone: VirtualPhone) -> dict[str, Any]:
    """What bench mode may change on ``phone``, read from the simulation itself (not through adb)."""
    dev = phone.state.device
    return {
        "policies": {k: (p.governor, p.scaling_min, p.scaling_max) for k, p in dev.policies.items()},
        "gpu": (dev.gpu_governor, dev.gpu_min, dev.gpu_max),
        "settings": dict(dev.settings["global"]),
        "awake": dev.awake,
        "fixed_performance": dev.fixed_performance,
        "charging": dev.charging_enabled,
    }


def saved_file(phone: VirtualPhone) -> str:
    return phone.shell(f"cat {SAVED_PATH}").stdout


def phone_device(server: AdbServer, phone: VirtualPhone, **extra: Any) -> Phone:
    entry = {**phone.inventory_entry(server_port=server.port), **extra}
    spec = Inventory.model_validate({"devices": [entry]}).devices[0]
    assert isinstance(spec, AndroidDevice)
    return Phone(spec)


def request(phone: VirtualPhone, run_id: str, bench_mode: dict[str, Any] | None, job: str = "bench") -> RunRequest:
    return RunRequest(job=job, run_id=run_id, attempt=1, slot_id=phone.name, argv=["echo", "ran"], env={},
                      workdir=None, timeout_s=60, bench_mode=bench_mode)  # fmt: skip


# -- the Phone device without Ray -------------------------------------------------------------------------------


def test_rooted_phone_pinned_read_back_shared_by_runs_and_restored(
    adb_server: AdbServer, virtual_phones: PhoneFactory
) -> None:
    (phone,) = virtual_phones(1, rooted=True)
    before = state_of(phone)
    device = phone_device(adb_server, phone)
    first = device.execute(request(phone, "r1", PINNED))
    assert first.exit_code == 0 and first.bench_mode is not None, first.stderr
    record = first.bench_mode
    assert record["ok"] is True and record["warnings"] == [] and record["applied"]["root"] == "su-c"
    soc = phone.state.soc
    rb = record["readback"]
    assert rb["policy4.governor"] == "performance" and rb["policy4.min_khz"] == rb["policy4.max_khz"] == str(
        soc.big_max_khz
    )
    assert rb["policy0.min_khz"] == str(soc.little_max_khz) and rb["gpu.min"] == rb["gpu.max"] == "719000000"
    assert rb["airplane_mode_on"] == "1" and rb["stay_on_while_plugged_in"] == "0" and rb["wakefulness"] == "Asleep"
    assert rb["charge"] == "0"
    # the phone really is in that state, and its own values are saved on it before anything changed
    now = state_of(phone)
    assert now["policies"][4] == ("performance", soc.big_max_khz, soc.big_max_khz)
    assert now["charging"] is False and now["awake"] is False and now["settings"]["airplane_mode_on"] == "1"
    saved = json.loads(saved_file(phone))
    assert saved["job"] == "bench" and saved["saved"]["policies"]["policy4"]["governor"] == "schedutil"
    # a second run of the job is measured in the same state, without applying again
    second = device.execute(request(phone, "r2", PINNED))
    assert second.bench_mode == record
    assert device.end_bench_mode("bench") == []
    assert state_of(phone) == before and saved_file(phone) == ""


def test_stock_phone_uses_fixed_performance_mode_and_records_what_it_cannot_do(
    adb_server: AdbServer, virtual_phones: PhoneFactory
) -> None:
    (phone,) = virtual_phones(1)
    before = state_of(phone)
    device = phone_device(adb_server, phone)
    res = device.execute(request(phone, "r1", {**PINNED, "on_failure": "warn"}))
    assert res.exit_code == 0 and res.bench_mode is not None
    record = res.bench_mode
    assert record["ok"] is False and record["applied"]["root"] == "none"
    assert "set-fixed-performance-mode-enabled true" in record["applied"]["cpu"]
    assert record["warnings"] == [
        "gpu: not controllable (no root)",
        "charging: /sys/class/power_supply/battery/charging_enabled not writable without root",
    ]
    assert record["readback"]["charging"] == "on" and record["readback"]["wakefulness"] == "Asleep"
    assert phone.state.device.fixed_performance is True and phone.state.device.policies[4].governor == "schedutil"
    device.end_bench_mode("bench")
    assert state_of(phone) == before and saved_file(phone) == ""


def test_a_profile_that_does_not_take_fails_the_run_and_leaves_the_phone_as_it_was(
    adb_server: AdbServer, virtual_phones: PhoneFactory
) -> None:
    (phone,) = virtual_phones(1, rooted=True)
    before = state_of(phone)
    device = phone_device(adb_server, phone)
    res = device.execute(request(phone, "r1", {**PINNED, "governor": "turbo-boost"}))  # no such governor
    assert res.exit_code == 255 and res.infra_error is None
    assert "bench mode on" in res.stderr and "reads back schedutil, not turbo-boost" in res.stderr
    assert res.bench_mode is not None and res.bench_mode["ok"] is False  # the failed row shows what read back
    assert res.bench_mode["readback"]["policy4.governor"] == "schedutil"
    assert state_of(phone) == before and saved_file(phone) == ""


def test_settings_a_dead_actor_left_are_restored_by_the_next_one(
    adb_server: AdbServer, virtual_phones: PhoneFactory
) -> None:
    (phone,) = virtual_phones(1, rooted=True)
    before = state_of(phone)
    crashed = phone_device(adb_server, phone)
    assert crashed.execute(request(phone, "r1", PINNED)).exit_code == 0
    assert state_of(phone) != before and saved_file(phone)
    # the actor dies without restoring; a new one (inventory default profile: none) takes the next lease
    successor = phone_device(adb_server, phone)
    res = successor.execute(request(phone, "r2", None, job="other"))
    assert res.exit_code == 0 and res.bench_mode is None
    assert state_of(phone) == before and saved_file(phone) == ""


def test_the_inventory_profile_applies_when_the_job_names_none(
    adb_server: AdbServer, virtual_phones: PhoneFactory
) -> None:
    (phone,) = virtual_phones(1, rooted=True)
    device = phone_device(adb_server, phone, bench_mode={"governor": "powersave", "pin": None, "gpu": None,
                                                         "screen": None, "airplane": None, "stay_awake": None,
                                                         "charging": None})  # fmt: skip
    res = device.execute(request(phone, "r1", None))
    assert res.bench_mode is not None and res.bench_mode["ok"] is True
    assert {p.governor for p in phone.state.device.policies.values()} == {"powersave"}
    assert phone.state.device.awake is True  # knobs left out are not touched
    device.close_bench_mode()
    assert {p.governor for p in phone.state.device.policies.values()} == {"schedutil"}


# -- the farm on Ray ----------------------------------------------------------------------------------------------


def _job(tmp: Path, name: str, n: int, seconds: float, **extra: Any) -> Path:
    data = {
        "name": name,
        "workload": "regex",
        "workload_options": {"patterns": {"slept_s": r"slept_s=(\S+)"}},
        "devices": {"kind": "android"},
        "command": ["sh", "-c", f"sleep {seconds}; echo slept_s={seconds}"],
        "grid": {"i": list(range(n))},
        "bench_mode": {**PINNED, "on_failure": "warn"},
        **extra,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _inventory(server: AdbServer, phones: list[VirtualPhone]) -> Inventory:
    return Inventory.model_validate({"devices": [p.inventory_entry(server_port=server.port) for p in phones]})


@pytest.mark.ray
def test_a_job_on_a_rooted_and_a_stock_phone_records_bench_mode_and_restores_both(
    adb_server: AdbServer, virtual_phones: PhoneFactory, start_farm: Any, tmp_path: Path
) -> None:
    (rooted,) = virtual_phones(1, rooted=True)
    (stock,) = virtual_phones(1)
    before = {p.name: state_of(p) for p in (rooted, stock)}
    client = start_farm(_inventory(adb_server, [rooted, stock]))
    path = _job(tmp_path, "pinned", 2, 0.1)
    status = client.wait(client.submit(load_job(path), str(path), ship=False), 300)
    assert status.state is JobState.DONE and status.statuses == {"ok": 4}
    got = rows(tmp_path / "res", "pinned")
    by_phone = {r["device_id"]: r for r in got}
    assert len(got) == 4 and all(r["bench_mode"] for r in got)
    assert by_phone[rooted.name]["bench_mode_ok"] is True and by_phone[stock.name]["bench_mode_ok"] is False
    assert json.loads(by_phone[rooted.name]["bench_mode_warnings"]) == []
    assert "gpu: not controllable (no root)" in json.loads(by_phone[stock.name]["bench_mode_warnings"])
    recorded = json.loads(by_phone[rooted.name]["bench_mode"])
    assert (
        recorded["profile"]["governor"] == "performance" and recorded["readback"]["policy4.governor"] == "performance"
    )
    # the job is reported done once both phones are back to their own settings
    assert {p.name: state_of(p) for p in (rooted, stock)} == before
    assert saved_file(rooted) == saved_file(stock) == ""


@pytest.mark.ray
def test_cancel_restores_the_phone(
    adb_server: AdbServer, virtual_phones: PhoneFactory, start_farm: Any, tmp_path: Path
) -> None:
    (phone,) = virtual_phones(1, rooted=True)
    before = state_of(phone)
    client = start_farm(_inventory(adb_server, [phone]))
    path = _job(tmp_path, "cancelled", 5, 30)
    job_id = client.submit(load_job(path), str(path), ship=False)
    wait_until(lambda: client.status(job_id).running == 1 and saved_file(phone) != "", timeout=120)
    assert state_of(phone)["policies"][4][0] == "performance"
    status = client.cancel(job_id)
    status = client.wait(job_id, 120)
    assert status.state is JobState.CANCELLED
    assert state_of(phone) == before and saved_file(phone) == ""


@pytest.mark.ray
def test_kill_9_of_the_device_actor_is_restored_by_the_next_lease(
    adb_server: AdbServer, virtual_phones: PhoneFactory, start_farm: Any, tmp_path: Path
) -> None:
    (phone,) = virtual_phones(1, rooted=True)
    before = state_of(phone)
    client = start_farm(_inventory(adb_server, [phone]))
    path = _job(tmp_path, "killed", 2, 3, retries=2)
    job_id = client.submit(load_job(path), str(path), ship=False)
    wait_until(lambda: client.status(job_id).running == 1 and saved_file(phone) != "", timeout=120)
    actor = client.device_handles()[phone.name]
    os.kill(ray.get(actor.pid.remote()), signal.SIGKILL)
    # the phone stays pinned, its own values saved on it, while no actor is there to restore them
    assert state_of(phone)["policies"][4][0] == "performance" and json.loads(saved_file(phone))["job"] == "killed"
    status = client.wait(job_id, 300)
    assert status.state is JobState.DONE and status.statuses == {"ok": 2}, status
    got = rows(tmp_path / "res", "killed")
    assert any(r["attempt"] > 1 for r in got if r["status"] == "ok"), [(r["run_id"], r["attempt"]) for r in got]
    # the restarted actor's first run restored what the killed one left, then applied the profile again: the rows
    # measured in that application say so
    after_kill = [r for r in got if "restored the settings job killed left applied" in (r["bench_mode_warnings"] or "")]
    assert after_kill and {r["status"] for r in after_kill} == {"ok"}
    assert all(r["bench_mode_ok"] for r in got if r["status"] == "ok")
    assert state_of(phone) == before and saved_file(phone) == ""
