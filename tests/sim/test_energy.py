"""Energy of a run on a virtual phone, measured through the real adb server, against the phone's own power model.

The fuel gauge of :mod:`farm.sim.battery` follows the CPU load; the Phone device's sampler reads it through adb
while a scripted llama.cpp run holds the CPU, and integrates. The model integrates its own power exactly, so the
two must agree within 2 % over the window the sampler watched. A charger switched on flags the run invalid.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from actors.device import RunSampler
from actors.host_probe import file_sha256
from actors.messages import ArtifactRef, RunRequest, RunResult
from actors.phone import Phone, PhoneSampler
from farm.probes.power import per_unit_columns
from farm.sim import SimConfig, VirtualPhone
from farm.sim.adb_server import AdbServer
from farm.specs.inventory import AndroidDevice, Inventory
from farm.workloads import make_adapter
from tests.fixtures.adb import PhoneFactory

pytestmark = pytest.mark.adb
# The benchmark holds the CPU for 3 s of wall time: long against the lag between the process's start and exit
# and the sampler's, which the integration cannot see (it holds the first and last readings to the edges).
LONG_RUN = SimConfig(time_scale=1.0, min_wall_s=3.0, max_wall_s=3.0)


class RecordingPhone(Phone):
    """A Phone that keeps its last sampler, so a test can ask the model about the same window."""

    last: PhoneSampler | None = None

    def sampler(self, slot_id: str) -> RunSampler:
        sampler = super().sampler(slot_id)
        assert isinstance(sampler, PhoneSampler)
        self.last = sampler
        return sampler


def _run(server: AdbServer, vp: VirtualPhone, tmp_path: Path, **overrides: Any) -> tuple[RunResult, PhoneSampler]:
    entry = {**vp.inventory_entry(server_port=server.port), **overrides}
    spec = Inventory.model_validate({"devices": [entry]}).devices[0]
    assert isinstance(spec, AndroidDevice)
    phone = RecordingPhone(spec)
    model = tmp_path / "llama-2-7b.Q4_0.gguf"
    model.write_bytes(os.urandom(1 << 16))
    binary = tmp_path / "mymain"
    binary.write_bytes(b"scripted")
    arts = [
        ArtifactRef(p.name, file_sha256(p), p.stat().st_size, f"/data/local/tmp/e/{p.name}", m, str(p))
        for p, m in ((binary, 0o755), (model, None))
    ]
    argv = ["./mymain", "-m", model.name, "-p", "Once upon a time", "-n", "64", "-t", "8"]
    req = RunRequest(job="t", run_id="e1", attempt=1, slot_id=vp.name, argv=argv, env={},
                     workdir="/data/local/tmp/e", timeout_s=60, artifacts=arts)  # fmt: skip
    res = phone.execute(req)
    assert res.infra_error is None and res.exit_code == 0, res.stderr
    assert phone.last is not None
    return res, phone.last


@pytest.mark.parametrize("soc", ["sm8550", "mt6983"])  # µA negative on discharge; mA positive on discharge
def test_fuel_gauge_energy_matches_the_model_within_2_percent(
    adb_server: AdbServer, virtual_phones: PhoneFactory, tmp_path: Path, soc: str
) -> None:
    (vp,) = virtual_phones(1, config=LONG_RUN, soc=soc)
    res, sampler = _run(adb_server, vp, tmp_path)
    e = res.energy
    assert e["energy_source"] == "fuel_gauge" and e["energy_valid"] is True, e
    assert e["energy_gauge_unit"] == ("mA" if soc == "mt6983" else "uA")
    assert vp.state.battery is not None
    dissipated = vp.state.battery.energy_between(*sampler.window)
    measured = e["energy_j"]
    assert isinstance(measured, float)
    assert abs(measured - dissipated) <= 0.02 * dissipated, (measured, dissipated)
    # the idle window read the phone at rest: well below the run's average power
    assert isinstance(e["idle_power_w"], float) and isinstance(e["avg_power_w"], float)
    assert 0.3 < e["idle_power_w"] < 0.8 * e["avg_power_w"]
    assert e["energy_samples"] >= 4 and e["energy_period_s"] > 0
    # tokens from the llama.cpp timing lines over the run's energy
    metrics = make_adapter("llama_cpp").parse(res.stdout + "\n" + res.stderr)
    derived = per_unit_columns(metrics, e)
    tokens = metrics["prefill_tokens"] + metrics["decode_tokens"]
    assert derived["tokens_per_j"] == pytest.approx(tokens / measured)
    assert derived["j_per_token"] == pytest.approx(measured / tokens)


def test_a_run_while_charging_is_flagged_invalid(
    adb_server: AdbServer, virtual_phones: PhoneFactory, tmp_path: Path
) -> None:
    (vp,) = virtual_phones(1, config=SimConfig(time_scale=1.0, min_wall_s=1.0, max_wall_s=1.0))
    assert vp.state.battery is not None
    vp.state.battery.charging = True
    res, _ = _run(adb_server, vp, tmp_path)
    e = res.energy
    assert e["energy_valid"] is False and "Charging" in str(e["energy_invalid_reason"])
    assert per_unit_columns({"decode_tokens": 64.0}, e) == {}  # no joules per token from an invalid energy
