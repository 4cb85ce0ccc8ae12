"""The pure energy maths (:mod:`farm.probes.power`): integration, fuel gauge conventions, RAPL wrap, meter lines."""

from __future__ import annotations

import pytest

from farm.errors import OutputParseError
from farm.probes.power import (
    GaugeReading,
    PowerSample,
    gauge_power,
    integrate_j,
    parse_watts,
    per_unit_columns,
    rapl_delta_uj,
    sampled_energy,
)


def test_integration_is_trapezoid_inside_and_holds_the_edge_readings() -> None:
    samples = [PowerSample(1.0, 2.0), PowerSample(2.0, 4.0), PowerSample(9.0, 0.0)]
    # [0, 1] held at 2 W; 1→2 trapezoid 3 J; [2, 3] held at 4 W; the reading at 9 s is outside the window
    assert integrate_j(samples, 0.0, 3.0) == pytest.approx(2.0 + 3.0 + 4.0)
    assert integrate_j(samples, 3.0, 8.0) is None
    reading = sampled_energy("meter", samples[:2], [PowerSample(-1.0, 1.0)], 0.0, 3.0)
    cols = reading.columns()
    assert cols["energy_j"] == pytest.approx(9.0) and cols["avg_power_w"] == pytest.approx(3.0)
    assert cols["energy_valid"] is True and cols["idle_power_w"] == 1.0 and cols["energy_period_s"] == 1.0


@pytest.mark.parametrize(
    ("current", "unit"),
    [(-850_000, "uA"), (850_000, "uA"), (-850, "mA"), (850, "mA")],
)
def test_gauge_unit_and_sign_are_detected(current: int, unit: str) -> None:
    readings = [GaugeReading(t, current, 3_900_000, "Discharging") for t in (0.0, 1.0)]
    power = gauge_power(readings)
    assert power.current_unit == unit and power.discharge_sign == (1 if current > 0 else -1)
    assert power.problem is None
    assert power.samples[0].watts == pytest.approx(0.85 * 3.9)


def test_gauge_voltage_in_millivolts_is_recognised() -> None:
    power = gauge_power([GaugeReading(0.0, -1000, 3900, "Discharging")])
    assert power.samples[0].watts == pytest.approx(3.9)


def test_charging_status_or_a_reversed_current_makes_the_energy_invalid() -> None:
    charging = gauge_power([GaugeReading(0.0, 500_000, 4_200_000, "Charging")])
    assert charging.problem is not None and "Charging" in charging.problem
    full = gauge_power([GaugeReading(0.0, 0, 4_300_000, "Full")])
    assert full.problem is not None
    mixed = [GaugeReading(float(t), -900_000, 3_900_000, "Discharging") for t in range(5)]
    mixed.append(GaugeReading(5.0, 600_000, 4_100_000, "Discharging"))  # a charger plugged mid-run
    problem = gauge_power(mixed).problem
    assert problem is not None and "charging sign" in problem
    # noise around zero on the other side is not a charger
    quiet = [*mixed[:5], GaugeReading(5.0, 2_000, 3_900_000, "Discharging")]
    assert gauge_power(quiet).problem is None


def test_rapl_counter_wraps_at_its_range() -> None:
    assert rapl_delta_uj(100, 350, 1000) == 250
    assert rapl_delta_uj(900, 50, 1000) == 150


@pytest.mark.parametrize("line", ["abc", "-1", "nan", "inf", "1.5 W"])
def test_a_meter_line_that_is_not_watts_is_refused_with_the_line(line: str) -> None:
    with pytest.raises(OutputParseError, match="energy meter printed"):
        parse_watts(line)
    assert parse_watts(" 2.25\n") == 2.25


def test_per_unit_columns_only_from_a_valid_energy() -> None:
    energy = {"energy_valid": True, "energy_j": 10.0, "avg_power_w": 2.0}
    metrics = {"prefill_tokens": 15.0, "decode_tokens": 25.0, "batch_tokens": 512.0, "throughput_pictures_per_s": 8.0}
    cols = per_unit_columns(metrics, energy)
    assert cols == {"tokens_per_j": 4.0, "j_per_token": 0.25, "pictures_per_j": 4.0}
    assert per_unit_columns(metrics, {**energy, "energy_valid": False}) == {}


def test_gauge_text_needs_three_lines_and_keeps_a_two_word_status() -> None:
    from farm.probes.power import parse_gauge

    reading = parse_gauge(1.0, "-420000\n3870000\nNot charging\n")
    assert reading is not None and reading.status == "Not charging"
    problem = gauge_power([reading]).problem  # on a charger that holds the battery: it does not feed the phone
    assert problem is not None and "Not charging" in problem
    assert parse_gauge(1.0, "-420000\n3870000\n") is None and parse_gauge(1.0, "x\n3870000\nFull\n") is None
