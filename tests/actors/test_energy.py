"""Energy samplers on this host (``actors/energy.py``): RAPL against a recorded powercap tree, an external meter
from a scripted command, both through a real LocalHost run."""

from __future__ import annotations

import shlex
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from actors.host import LocalHost
from actors.lease import LEASE_DIR_ENV
from actors.messages import RunRequest, RunResult
from farm.errors import ConfigError
from farm.specs.inventory import HostDevice, inventory_from_document
from farm.specs.loading import Document

TREE = Path(__file__).resolve().parents[1] / "data" / "powercap" / "handmade_one_socket"
# A meter that prints 2.5 W twenty times a second until stopped (stands in for a Monsoon / Joulescope wrapper).
METER = "import sys, time\nwhile True:\n    print(2.5, flush=True)\n    time.sleep(0.05)\n"


@pytest.fixture(autouse=True)
def private_leases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEASE_DIR_ENV, str(tmp_path / "leases"))


def host(**spec: Any) -> LocalHost:
    return LocalHost(HostDevice.model_validate({"kind": "host", "id": f"h-{uuid.uuid4().hex[:6]}", **spec}))


def run(dev: LocalHost, argv: list[str]) -> RunResult:
    req = RunRequest(job="t", run_id="r", attempt=1, slot_id=dev.spec.id, argv=argv, env={}, workdir=None,
                     timeout_s=60)  # fmt: skip
    res = dev.execute(req)
    assert res.exit_code == 0 and res.infra_error is None, res.stderr
    return res


def test_rapl_package_and_dram_with_a_wrapped_counter(tmp_path: Path) -> None:
    tree = tmp_path / "powercap"
    shutil.copytree(TREE, tree)
    dev = host()
    dev.powercap = tree
    # the "benchmark" advances the counters: the package one past its range (it wraps), dram by 1 J
    pkg, dram = tree / "intel-rapl:0" / "energy_uj", tree / "intel-rapl:0:2" / "energy_uj"
    script = f"echo 5000000 > {shlex.quote(str(pkg))}; echo 6000000 > {shlex.quote(str(dram))}"
    e = run(dev, ["sh", "-c", script]).energy
    package = (262143328850 - 262143000000 + 5000000) / 1e6
    assert e["energy_source"] == "rapl" and e["energy_valid"] is True
    assert e["energy_package_j"] == pytest.approx(package) and e["energy_dram_j"] == pytest.approx(1.0)
    assert e["energy_j"] == pytest.approx(package + 1.0)  # core/uncore are inside the package; mmio duplicates it
    assert e["idle_power_w"] == 0.0  # the counters did not move in the idle window


def test_unreadable_rapl_counters_say_so_without_waiting(tmp_path: Path) -> None:
    tree = tmp_path / "powercap"
    shutil.copytree(TREE, tree)
    pkg = tree / "intel-rapl:0" / "energy_uj"
    pkg.unlink()
    pkg.mkdir()  # reading it fails as a root-only counter does for a user (EACCES), whoever runs the test
    dev = host()
    dev.powercap = tree
    e = run(dev, ["true"]).energy
    assert e["energy_valid"] is False and "RAPL counters not readable" in str(e["energy_invalid_reason"])
    assert "energy_j" not in e


def test_an_external_meter_is_read_during_the_run(tmp_path: Path) -> None:
    script = tmp_path / "meter.py"
    script.write_text(METER)
    dev = host(energy_meter={"command": [sys.executable, str(script)]})
    dev.powercap = tmp_path / "none"
    e = run(dev, ["sleep", "0.6"]).energy
    assert e["energy_source"] == "meter" and e["energy_valid"] is True, e
    assert e["avg_power_w"] == pytest.approx(2.5) and e["idle_power_w"] == pytest.approx(2.5)
    # 2.5 W over the span the meter's samples cover: most of the 0.6 s run (the edges before its first and after its
    # last sample are not extrapolated, so under load the span can fall a little short of the run)
    assert isinstance(e["energy_j"], float) and 2.5 * 0.5 <= e["energy_j"] <= 2.5 * 10
    assert e["energy_samples"] >= 3


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("print(2.0, flush=True)\nprint('W', flush=True)\nimport time; time.sleep(30)", "energy meter printed 'W'"),
        ("print(2.0, flush=True)", "energy meter exited with code 0"),
    ],
)
def test_a_meter_that_misbehaves_makes_the_energy_invalid(tmp_path: Path, program: str, reason: str) -> None:
    script = tmp_path / "meter.py"
    script.write_text(program)
    dev = host(energy_meter={"command": [sys.executable, str(script)]})
    dev.powercap = tmp_path / "none"
    e = run(dev, ["sleep", "0.2"]).energy
    assert e["energy_valid"] is False and reason in str(e["energy_invalid_reason"]), e


def test_a_meter_that_cannot_start_is_recorded_not_fatal(tmp_path: Path) -> None:
    dev = host(energy_meter={"command": [str(tmp_path / "no-such-meter")]})
    dev.powercap = tmp_path / "none"
    e = run(dev, ["true"]).energy
    assert e["energy_valid"] is False and "could not start" in str(e["energy_invalid_reason"])


def test_an_empty_meter_command_is_a_config_error_naming_the_field() -> None:
    doc = Document({"devices": [{"kind": "host", "id": "h", "energy_meter": {"command": []}}]}, "inv.yaml")
    with pytest.raises(ConfigError) as err:
        inventory_from_document(doc)
    assert "devices[0]" in str(err.value) and "energy_meter.command" in str(err.value)
