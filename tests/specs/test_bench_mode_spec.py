"""The ``bench_mode:`` profile of jobs and inventory devices: defaults, YAML on/off, errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import ConfigError
from farm.specs.inventory import load_inventory
from farm.specs.job import load_job

JOB = "name: j\nworkload: regex\nworkload_options: {patterns: {x_ms: 'x=(\\\\d+)'}}\ncommand: [x]\n"


def test_defaults_and_yaml_on_off(tmp_path: Path) -> None:
    path = tmp_path / "j.yaml"
    path.write_text(JOB + "bench_mode:\n  screen: on\n  airplane: off\n  gpu: null\n")
    mode = load_job(path).bench_mode
    assert mode is not None
    assert (mode.governor, mode.pin, mode.gpu, mode.screen, mode.airplane, mode.charging, mode.on_failure) == (
        "performance", "max", None, True, False, False, "error"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ("  pin: top\n", "bench_mode.pin", "'max' or 'min'"),
        ("  volume: 0\n", "bench_mode.volume", "unknown key"),
        ("  on_failure: ignore\n", "bench_mode.on_failure", "'error' or 'warn'"),
        ("  governor: 'perf ormance'\n", "bench_mode.governor", "pattern"),
        ("  screen: dim\n", "bench_mode.screen", "boolean"),
    ],
)
def test_bad_profiles_name_file_and_field(tmp_path: Path, body: str, field: str, reason: str) -> None:
    path = tmp_path / "j.yaml"
    path.write_text(JOB + "bench_mode:\n" + body)
    with pytest.raises(ConfigError) as err:
        load_job(path)
    line = next(x for x in err.value.lines() if field in x)
    assert str(path) in line and reason in line


def test_an_inventory_device_carries_a_default_profile(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("devices:\n- {id: p, kind: android, adb: {serial: X1}, bench_mode: {governor: powersave}}\n")
    (device,) = load_inventory(path).devices
    assert device.bench_mode is not None and device.bench_mode.governor == "powersave"
    path.write_text("devices:\n- {id: p, kind: android, adb: {serial: X1}, bench_mode: {pin: 3}}\n")
    with pytest.raises(ConfigError, match=r"devices\[0\]\.bench_mode\.pin"):
        load_inventory(path)
