"""The generic run of a device (``actors/device.py``) on this host: what counts against the device, and the slot
lease that keeps one run per slot across processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.host import LocalHost
from actors.lease import LEASE_DIR_ENV, lease_path
from actors.messages import RunRequest, RunResult
from farm.rows import classify
from farm.specs.inventory import HostDevice
from farm.workloads import make_adapter
from tests.runtime.helpers import wait_until

ADAPTER = make_adapter("regex", {"patterns": {"value_count": r"value=(\d+)"}})


@pytest.fixture(autouse=True)
def private_leases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    leases = tmp_path / "leases"
    monkeypatch.setenv(LEASE_DIR_ENV, str(leases))
    return leases


@pytest.fixture
def host() -> LocalHost:
    return LocalHost(HostDevice.model_validate({"kind": "host", "id": f"h-{uuid.uuid4().hex[:6]}"}))


def request(dev: LocalHost, argv: list[str], **kw: object) -> RunRequest:
    return RunRequest(job="t", run_id=kw.pop("run_id", "r"), attempt=1, slot_id=dev.spec.id, argv=argv, env={},  # type: ignore[arg-type]
                      workdir=None, timeout_s=60, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_an_exception_in_the_device_actor_is_a_failed_run_not_an_infra_error(host: LocalHost) -> None:
    # a core list the device cannot bind to makes the device kind's code raise (ValueError)
    res = host.execute(request(host, ["sh", "-c", "echo value=1"], cores="big"))
    status, error, _ = classify(res, ADAPTER)
    assert res.infra_error is None and status == "failed", res
    assert error is not None and "ValueError" in error and "bad core list 'big'" in error


_HOLDER = """
import sys, time
from farm.locks import FileLock

lock = FileLock(sys.argv[1], "another farm")
assert lock.try_acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def lease_holder(host: LocalHost) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lease of ``host``'s slot until it is killed."""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lease_path(host.spec.id))], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    yield proc
    proc.kill()
    proc.wait(60)


def test_a_run_waits_for_a_slot_leased_by_another_process_until_that_process_dies(
    host: LocalHost, lease_holder: subprocess.Popen[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    started = tmp_path / "started"
    out: list[RunResult] = []
    with caplog.at_level(logging.INFO, logger="actors.lease"):
        t = threading.Thread(target=lambda: out.append(host.execute(request(host, ["touch", str(started)]))))
        t.start()
        wait_until(lambda: any("is leased by" in r.getMessage() for r in caplog.records), timeout=60)
    waiting = [r.getMessage() for r in caplog.records if "is leased by" in r.getMessage()]
    assert f"pid {lease_holder.pid} " in waiting[0] and "another farm" in waiting[0]
    assert not started.exists() and t.is_alive()  # it waits: the command has not run
    lease_holder.kill()  # a crash: its lease ends with it
    t.join(60)
    (res,) = out
    assert res.exit_code == 0 and started.exists() and res.samples["lease_wait_s"] > 0


def test_cancel_ends_the_wait_for_a_lease(
    host: LocalHost, lease_holder: subprocess.Popen[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    started = tmp_path / "started"
    out: list[RunResult] = []
    with caplog.at_level(logging.INFO, logger="actors.lease"):
        req = request(host, ["touch", str(started)], run_id="c")
        t = threading.Thread(target=lambda: out.append(host.execute(req)))
        t.start()
        wait_until(lambda: any("is leased by" in r.getMessage() for r in caplog.records), timeout=60)
    assert host.cancel("c")
    t.join(60)
    (res,) = out
    assert res.cancelled and classify(res, ADAPTER)[0] == "cancelled" and not started.exists()
    assert lease_holder.poll() is None  # still held by the other process, never taken from it


def test_two_devices_in_one_process_use_one_lease_per_slot(
    host: LocalHost, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the same slot id seen by two device objects (two controllers in one process): still one run at a time
    twin = LocalHost(host.spec)
    gate, inside, second_ran = tmp_path / "gate", tmp_path / "inside", tmp_path / "second"
    script = f"touch {inside}; while [ ! -e {gate} ]; do sleep 0.02; done; echo value=1"
    out: list[RunResult] = []
    first = threading.Thread(target=lambda: out.append(host.execute(request(host, ["sh", "-c", script]))))
    first.start()
    wait_until(inside.exists, timeout=60)
    with caplog.at_level(logging.INFO, logger="actors.lease"):
        req = request(twin, ["touch", str(second_ran)], run_id="r2")
        second = threading.Thread(target=lambda: out.append(twin.execute(req)))
        second.start()
        wait_until(lambda: any("is leased by" in r.getMessage() for r in caplog.records), timeout=60)
    assert not second_ran.exists() and second.is_alive()
    gate.touch()
    first.join(60)
    second.join(60)
    assert second_ran.exists() and [r.exit_code for r in out] == [0, 0]


def test_short_runs_start_no_thread_and_still_get_their_peak_rss(host: LocalHost) -> None:
    code = "b = bytearray(40 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    host.execute(request(host, ["true"], run_id="warm"))  # the one sampling thread of this process may start here
    before = {t.ident for t in threading.enumerate()}
    results = [host.execute(request(host, [sys.executable, "-c", code], run_id=f"r{i}")) for i in range(5)]
    assert {t.ident for t in threading.enumerate()} <= before  # nothing started per run, nothing left behind
    # Each run ends long before the first sample (50 ms): its peak is the kernel's, reported on reaping.
    assert all(r.exit_code == 0 and r.samples["peak_rss_mib"] >= 40 for r in results), [r.samples for r in results]


def test_a_lock_names_its_latest_holder_only(tmp_path: Path) -> None:
    from farm.locks import FileLock

    path = tmp_path / "slot.lock"
    long_holder = FileLock(path, "run " + "x" * 400)  # longer than the padded line
    assert long_holder.try_acquire()
    long_holder.release()
    short = FileLock(path, "run r2")
    assert short.try_acquire()
    assert short.current_holder().endswith(": run r2")
    short.release()
