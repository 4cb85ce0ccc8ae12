"""Bench mode on this machine as a ``host`` device: what it cannot change is recorded (or fails the run), never
pretended (host tests skipped where this machine's cpufreq is writable: a test must not re-clock its machine)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from actors.bench.host import BoxBench
from actors.host import LocalHost
from actors.lease import LEASE_DIR_ENV
from actors.messages import RunRequest
from farm.specs.bench import BenchMode
from farm.specs.inventory import HostDevice

POLICY0 = Path("/sys/devices/system/cpu/cpufreq/policy0/scaling_governor")
read_only_cpufreq = pytest.mark.skipif(
    os.access(POLICY0, os.W_OK), reason="this machine's cpufreq is writable: the test would re-clock it"
)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalHost:
    monkeypatch.setenv(LEASE_DIR_ENV, str(tmp_path / "leases"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the saved values go under ~/.cache/farm
    return LocalHost(HostDevice.model_validate({"kind": "host", "id": f"h-{uuid.uuid4().hex[:6]}"}))


def request(dev: LocalHost, on_failure: str) -> RunRequest:
    mode = {"governor": "performance", "pin": "max", "turbo": False, "on_failure": on_failure}
    return RunRequest(job="t", run_id="r", attempt=1, slot_id=dev.spec.id, argv=["true"], env={}, workdir=None,
                      timeout_s=60, bench_mode=mode)  # fmt: skip


@read_only_cpufreq
def test_a_host_that_cannot_be_pinned_says_why(host: LocalHost, tmp_path: Path) -> None:
    res = host.execute(request(host, "warn"))
    assert res.exit_code == 0 and res.bench_mode is not None
    assert res.bench_mode["ok"] is False
    warnings = res.bench_mode["warnings"]
    assert len(warnings) == 2 and warnings[0].startswith("governor/pin: not controllable (")
    assert warnings[1].startswith("turbo: not controllable (")
    saved = tmp_path / "home" / ".cache" / "farm" / f"bench-mode-{host.spec.id}.saved"
    assert saved.is_file()  # written before anything would change
    assert host.end_bench_mode("t") == [] and not saved.exists()


@read_only_cpufreq
def test_on_failure_error_fails_the_run(host: LocalHost) -> None:
    res = host.execute(request(host, "error"))
    assert res.exit_code == 255 and res.infra_error is None
    assert "bench mode on" in res.stderr and "not controllable" in res.stderr and "(on_failure: error)" in res.stderr


def test_a_box_applies_nothing_and_records_what_its_tool_reports() -> None:
    readings = {1: {"util_pct": 0.0, "temp_c": 41.5}, 0: {"util_pct": 3.0, "temp_c": 40.0}}
    box = BoxBench(lambda: readings, "bm-smi", "sophgo")
    report = box.apply(BenchMode(), box.capture())
    assert report.ok and report.applied == {}
    assert report.notes == ["nothing applied on a sophgo box; the state bm-smi reports is recorded"]
    assert report.readback == {"bm-smi.0.temp_c": "40", "bm-smi.0.util_pct": "3", "bm-smi.1.temp_c": "41.5",
                               "bm-smi.1.util_pct": "0"}  # fmt: skip
    assert box.restore({}) == []
