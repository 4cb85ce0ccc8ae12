"""The thermal model against its closed form, with a hand-driven clock."""

from __future__ import annotations

import math

import pytest

from farm.sim.thermal import ThermalModel, ZoneSpec


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_heats_toward_target_and_cools_exponentially_to_idle() -> None:
    clock = FakeClock()
    zone = ZoneSpec("cpu", idle_c=30.0, cpu_gain_c=40.0, gpu_gain_c=0.0)
    model = ThermalModel((zone,), heat_tau_s=2.0, cool_tau_s=5.0, clock=clock)
    assert model.temperatures_c() == [30.0]

    model.set_load("run", cpu=0.5)  # target 50 °C
    clock.t += 2.0
    hot = model.temperature_c(0)
    assert hot == pytest.approx(50.0 - 20.0 * math.exp(-1.0))

    model.clear_load("run")
    clock.t += 5.0
    assert model.temperature_c(0) == pytest.approx(30.0 + (hot - 30.0) * math.exp(-1.0))
    clock.t += 1000.0
    assert model.temperature_c(0) == pytest.approx(30.0)
    assert not model.busy()


def test_same_clock_same_temperatures() -> None:
    def run() -> list[float]:
        clock = FakeClock()
        model = ThermalModel(clock=clock)
        model.set_load(1, cpu=1.0, gpu=0.3)
        clock.t += 3.3
        model.set_load(2, gpu=0.5)
        clock.t += 1.1
        model.clear_load(1)
        clock.t += 7.0
        return model.temperatures_c()

    assert run() == run()
    assert all(t > z.idle_c for t, z in zip(run(), ThermalModel().zones, strict=True))
