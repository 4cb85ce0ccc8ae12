"""Android phones end to end: the Phone device and the farm on a real local Ray, through the real adb server, on
virtual phones (``tests/fixtures/adb.py``).

Every phone job of ``jobs/`` runs as shipped: its file copied byte for byte into ``tmp_path/jobs``, its artifacts
stood in for by ``farm sim artifacts`` (labelled placeholders; the virtual phone's scripted binaries go by the
recipe's own file names), on three virtual phones with the three storage profiles, then the analysis its header
comment names (``# analysis: farm …``).
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from actors.host_probe import file_sha256
from actors.messages import ArtifactRef, RunRequest
from actors.phone import Phone, relevant_zones
from farm.analysis.bound import analyze_bound
from farm.analysis.jobdata import load_job_data
from farm.cli.main import main
from farm.discover import discover_on_cluster, discover_phones
from farm.sim.adb_server import AdbServer
from farm.sim.phone import VirtualPhone
from farm.specs.inventory import AndroidDevice, Inventory
from farm.specs.job import load_job
from tests.analysis.codl_trainer import load as load_trainer_file
from tests.fixtures.adb import PhoneFactory
from tests.runtime.helpers import device_states, rows, submit_and_wait, wait_until

pytestmark = pytest.mark.adb
JOBS = Path(__file__).resolve().parents[2] / "jobs"


def inventory(server: AdbServer, phones: list[VirtualPhone], **overrides: Any) -> Inventory:
    # synthetic: false on purpose: rows must be marked synthetic because the phone says so (ro.farm.synthetic)
    entries = [{**p.inventory_entry(server_port=server.port), "synthetic": False, **overrides} for p in phones]
    return Inventory.model_validate({"devices": entries})


def phone_jobs() -> list[Path]:
    """The job files of ``jobs/`` that select Android phones."""
    return [
        p
        for p in sorted(JOBS.glob("*.yaml"))
        if (yaml.safe_load(p.read_text()).get("devices") or {}).get("kind") == "android"
    ]


ANALYSIS = re.compile(r"^# analysis: (farm .+)$", re.M)


# -- the Phone device without Ray -------------------------------------------------------------------------------


def request(run_id: str, argv: list[str], **kw: Any) -> RunRequest:
    return RunRequest(job="t", run_id=run_id, attempt=1, slot_id=kw.pop("slot_id"), argv=argv, env=kw.pop("env", {}),
                      workdir=kw.pop("workdir", None), timeout_s=kw.pop("timeout_s", 60), **kw)  # fmt: skip


def test_phone_run_samples_fingerprint_and_binding(
    adb_server: AdbServer, virtual_phones: PhoneFactory, tmp_path: Path
) -> None:
    (vp,) = virtual_phones(1)
    spec = inventory(adb_server, [vp]).devices[0]
    assert isinstance(spec, AndroidDevice)
    phone = Phone(spec)
    model = tmp_path / "llama-2-7b.Q4_0.gguf"
    model.write_bytes(os.urandom(1 << 20))
    binary = tmp_path / "mymain"
    binary.write_bytes(b"scripted")
    arts = [
        ArtifactRef(p.name, file_sha256(p), p.stat().st_size, f"/data/local/tmp/e/{p.name}", m, str(p))
        for p, m in ((binary, 0o755), (model, None))
    ]
    argv = ["./mymain", "-m", model.name, "-p", "Once upon a time", "-n", "64", "-t", "4"]
    req = request("r1", argv, slot_id=vp.name, workdir="/data/local/tmp/e", artifacts=arts, cores="4,5,6,7")
    res = phone.execute(req)
    assert res.infra_error is None and res.exit_code == 0, res.stderr
    assert "llama_print_timings:" in res.stderr and res.synthetic
    assert res.bytes_pushed == binary.stat().st_size + model.stat().st_size
    s = res.samples
    assert s["peak_rss_mib"] > 100  # the stand-in grows to ~4 GB for a 7B model; the first poll alone sees ~2 MB
    assert 30 < s["temp_start_c"] <= s["temp_max_c"] < 100 and "temp_end_c" in s
    assert s["throttled"] == 0.0 and s["big_freq_ratio_min"] >= 0.9 and s["sampler_polls"] >= 2
    fp = res.fingerprint
    assert fp["fp_model"] == "Farm Virtual Phone" and fp["fp_board_platform"] == "kalama"
    assert fp["fp_soc"] == "sm8550" and fp["fp_synthetic"] == "1" and fp["fp_kernel"].endswith("farm-sim")
    assert fp["fp_cpu_max_freq_khz"].startswith("0:2016000,") and "7:2803200" in fp["fp_cpu_max_freq_khz"]
    # a cores parameter becomes a taskset mask: the command (and what it starts) may only use those cores
    status = "grep Cpus_allowed: /proc/$$/status"
    bound = phone.execute(request("aff", ["sh", "-c", status], slot_id=vp.name, cores="4,5,6,7"))
    assert bound.exit_code == 0 and bound.stdout.split() == ["Cpus_allowed:", "f0"]

    again = phone.execute(request("r2", argv, slot_id=vp.name, workdir="/data/local/tmp/e", artifacts=arts))
    assert again.exit_code == 0 and again.bytes_pushed == 0


def test_phone_health_temperature_and_throttling(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    skew = [0.0]  # the thermal model's clock, pushed forward to heat the phone at once
    (ok,) = virtual_phones(1, clock=lambda: time.monotonic() + skew[0])
    (locked,) = virtual_phones(1, refuse_auth=True)
    phone, unauthorized = (Phone(d) for d in inventory(adb_server, [ok, locked]).devices)  # type: ignore[arg-type]
    assert phone.health() == {ok.name: "idle"}
    assert unauthorized.health() == {locked.name: "unauthorized"}
    idle = phone.temperature_c()
    assert idle is not None and 30 < idle < 45
    # a run that leaves the big cores idle (at their minimum clock) says nothing about throttling
    idle_run = phone.execute(request("cool", ["sleep", "0.8"], slot_id=ok.name))
    assert idle_run.exit_code == 0 and "throttled" not in idle_run.samples
    ok.state.thermal.set_load("heater", cpu=1.0, gpu=1.0)
    skew[0] += 120.0
    try:
        hot = phone.temperature_c()
        assert hot is not None and hot > 75
        # hot big cores step their clock down: a run now reads as throttled
        res = phone.execute(request("hot", ["sleep", "0.8"], slot_id=ok.name))
        assert res.exit_code == 0 and res.samples["throttled"] == 1.0 and res.samples["big_freq_ratio_min"] < 0.9
        assert res.samples["temp_max_c"] > 75
    finally:
        ok.state.thermal.clear_load("heater")
    ok.stop()
    # the adb server notices the closed connection on its own time (quickly, unless the machine is busy)
    wait_until(lambda: phone.health() == {ok.name: "offline"}, timeout=15)
    res = phone.execute(request("gone", ["true"], slot_id=ok.name))
    assert res.infra_error is not None and res.exit_code is None


def _running(phone: VirtualPhone, word: str) -> bool:
    return any(word in " ".join(p.argv) for p in list(phone.state.procs.running()))


def test_a_benchmark_a_lost_link_left_running_is_killed_when_the_phone_is_back(
    adb_server: AdbServer, virtual_phones: PhoneFactory
) -> None:
    (vp,) = virtual_phones(1)
    spec = inventory(adb_server, [vp]).devices[0]
    assert isinstance(spec, AndroidDevice)
    phone = Phone(spec)
    # the phone does not notice this drop (a Wi-Fi link gone silent): nothing on it hangs the benchmark up
    vp.drop_on_command("sleep 1009", delay=0.3, hang_up=False)
    res = phone.execute(request("lost", ["sleep", "1009"], slot_id=vp.name))
    assert res.infra_error is not None and "connection lost" in res.infra_error and vp.faults.drops == 1
    # the adb server brings the phone back; the first health check after that stops the leftover benchmark
    wait_until(lambda: phone.health() == {vp.name: "idle"}, timeout=60)
    wait_until(lambda: not _running(vp, "sleep 1009"), timeout=30)
    assert phone._transport.orphans_killed == 1
    # a benchmark that ends normally leaves nothing to kill
    assert phone.execute(request("fine", ["sleep", "0.1"], slot_id=vp.name)).exit_code == 0
    assert phone._transport.orphans_killed == 1


def test_relevant_zones_skip_board_sensors() -> None:
    assert relevant_zones({0: "cpu-0-0-usr", 1: "battery", 2: "gpuss-0", 3: "xo-therm"}) == {
        0: "cpu-0-0-usr",
        2: "gpuss-0",
    }
    assert relevant_zones({0: "battery", 1: "case-therm", 2: "usb"}) == {1: "case-therm"}


def test_discover_lists_ready_phones_as_inventory_entries(
    adb_server: AdbServer, virtual_phones: PhoneFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    ready = virtual_phones(2)
    (locked,) = virtual_phones(1, refuse_auth=True)
    found = discover_phones("127.0.0.1", adb_server.port)
    by_serial = {e["adb"]["serial"]: e for e in found.entries}
    for phone in ready:
        entry = by_serial[phone.serial]
        assert entry["kind"] == "android" and entry["synthetic"] is True
        assert entry["labels"] == {"soc": "sm8550", "model": "Farm Virtual Phone"}
        assert entry["cores"] == {"little": [0, 1, 2, 3], "big": [4, 5, 6, 7]}
        assert entry["adb"]["server_port"] == adb_server.port and "node" not in entry
    assert locked.serial not in by_serial and ("this machine", locked.serial, "unauthorized") in found.not_ready

    assert main(["devices", "discover", "--adb-port", str(adb_server.port)]) == 0
    out, err = capsys.readouterr()
    inv = Inventory.model_validate(yaml.safe_load(out))
    assert {d.adb.serial for d in inv.devices if isinstance(d, AndroidDevice)} >= {p.serial for p in ready}
    assert f"{locked.serial} is unauthorized" in err


# -- the farm on Ray --------------------------------------------------------------------------------------------


@pytest.mark.ray
# Six shipped jobs run end to end on three phones (hundreds of runs): ~7 min on a lightly loaded 2-core machine,
# past the suite's 600 s default when the machine is shared. Each job's own wait is bounded at 900 s below.
@pytest.mark.timeout(3600)
def test_every_phone_job_as_shipped_then_its_analysis(
    adb_server: AdbServer,
    virtual_phones: PhoneFactory,
    start_farm: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shipped = phone_jobs()
    assert {p.stem for p in shipped} >= {"elastic-infer-baseline", "elastic-infer-sparsity", "elastic-infer-bound",
                                         "codl-op-latency", "codl-split-ratio", "codl-data-sharing"}  # fmt: skip
    # one phone per storage profile: the elastic-infer stand-in is sync-, Flash-IO- and RAM-IO-bound on them
    phones = [virtual_phones(1, storage=storage)[0] for storage in ("sync", "flash", "ram")]
    regime = {p.name: p.state.storage.name for p in phones}
    client = start_farm(inventory(adb_server, phones))
    results = tmp_path / "res"
    (tmp_path / "jobs").mkdir()
    monkeypatch.chdir(tmp_path)  # relative --out paths of the analyses land here
    for src in shipped:
        path = tmp_path / "jobs" / src.name
        path.write_bytes(src.read_bytes())
        assert main(["sim", "artifacts", str(path)]) == 0
        job = load_job(path)
        name = job.name
        status = submit_and_wait(client, path, timeout=900)
        got = rows(results, name)
        assert Counter(r["status"] for r in got) == {"ok": len(got)}, (name, [r["error"] for r in got][:3])
        # every planned run ended ok; warm-ups are not stored
        assert status.statuses == {"ok": len(got) * (job.repeat + job.warmup) // job.repeat}
        assert len(got) == job.grid_spec.count() * job.repeat * len(phones) and {r["device_id"] for r in got} == set(
            regime
        )
        assert all(r["synthetic"] is True and r["fp_synthetic"] == "1" for r in got)
        # every run read the virtual phone's fuel gauge; a run over before the first poll has no reading to use
        assert all(r["energy_source"] == "fuel_gauge" and r["energy_valid"] in (True, False) for r in got)
        valid = [r for r in got if r["energy_valid"]]
        assert valid and all(r["energy_j"] > 0 and r["idle_power_w"] > 0 for r in valid), name
        if name.startswith("elastic-infer"):
            assert all(r["j_per_token"] > 0 for r in valid)
        if name.startswith("elastic-infer"):
            assert all(r["prefill_ms_per_token"] > 0 and r["decode_ms_per_token"] > 0 for r in got)
        else:
            assert all(r["latency_ms"] > 0 for r in got)
        # the analysis its header names, on these results
        (command,) = ANALYSIS.findall(src.read_text())
        capsys.readouterr()
        assert main([*shlex.split(command)[1:], "--results", str(results)]) == 0, command
        out = capsys.readouterr().out
        if name == "elastic-infer-bound":
            result = analyze_bound(load_job_data(str(results), name))
            assert {row.verdict: regime[row.device] for row in result.rows} == {
                "synchronization-bound": "sync", "Flash-IO-bound": "flash", "RAM-IO-bound": "ram"
            }, out  # fmt: skip
            # each side named by the env its runs recorded: step 4-1 has loading off and the cache as in step 3
            off = re.search(r"loading-off run\(s\) \[env ([^\]]*)\]", out)
            on = re.search(r"loading-on run\(s\) \[env ([^\]]*)\]", out)
            assert off and on, out
            assert "LLAMA_LOAD_SPARSE_TENSOR=0" in off[1] and "LLAMA_USE_OUT_DIM_INDEX_CACHE=1" in off[1], out
            assert "LLAMA_LOAD_SPARSE_TENSOR=1" in on[1] and "LLAMA_USE_OUT_DIM_INDEX_CACHE=1" in on[1], out
        if command.startswith("farm export codl-dataset"):
            out_dir = tmp_path / shlex.split(command)[shlex.split(command).index("--out") + 1]
            written = sorted(out_dir.glob("sm8550*/t_*.csv"))
            assert written and all(load_trainer_file(p).rows > 0 for p in written), written
            soc_yaml = (out_dir / "soc" / "sm8550.yaml").read_text()
            assert "compute_units: 6" in soc_yaml and "kernel_wave_size: 64" in soc_yaml
        if name == "codl-split-ratio":
            assert "best part_ratio" in out


def _sleep_job(tmp: Path, name: str, n: int, seconds: float, **extra: Any) -> Path:
    data = {
        "name": name,
        "workload": "regex",
        "workload_options": {"patterns": {"slept_s": r"slept_s=(\S+)"}},
        "devices": {"kind": "android", **extra.pop("devices", {})},
        "command": ["sh", "-c", f"sleep {seconds}; echo slept_s={seconds}"],
        "grid": {"i": list(range(n))},
        **extra,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.ray
def test_phone_dropped_mid_run_is_retried_to_one_ok_row(
    adb_server: AdbServer, virtual_phones: PhoneFactory, start_farm: Any, tmp_path: Path
) -> None:
    (phone,) = virtual_phones(1)
    client = start_farm(inventory(adb_server, [phone]))
    phone.drop_on_command("slept_s=0.5", delay=0.2)  # the run's own command line; the phone keeps listening
    submit_and_wait(client, _sleep_job(tmp_path, "dropped", 1, 0.5, retries=2), timeout=120)
    got = sorted(rows(tmp_path / "res", "dropped"), key=lambda r: r["attempt"])
    # usually [infra_error, ok]; on a busy machine the retry may find the phone still reconnecting once more
    assert [r["status"] for r in got][-1] == "ok" and Counter(r["status"] for r in got)["ok"] == 1
    assert {r["status"] for r in got[:-1]} == {"infra_error"} and len(got) >= 2
    assert "connection lost" in got[0]["error"] and phone.faults.drops == 1


@pytest.mark.ray
def test_phone_that_never_comes_back(
    adb_server: AdbServer, virtual_phones: PhoneFactory, start_farm: Any, tmp_path: Path
) -> None:
    alive, dead = virtual_phones(2)
    client = start_farm(inventory(adb_server, [alive, dead]))
    dead.stop()  # switched off for good (stops listening, processes killed)
    wait_until(lambda: device_states(client)[dead.name] == "offline", timeout=30)
    assert device_states(client)[alive.name] == "idle"

    submit_and_wait(
        client, _sleep_job(tmp_path, "anyjob", 4, 0.1, devices={"placement": "any"}, retries=1), timeout=120
    )
    got = rows(tmp_path / "res", "anyjob")
    assert Counter(r["status"] for r in got) == {"ok": 4} and {r["device_id"] for r in got} == {alive.name}

    submit_and_wait(client, _sleep_job(tmp_path, "eachjob", 2, 0.1, retries=1), timeout=90)
    final = {}
    for r in sorted(rows(tmp_path / "res", "eachjob"), key=lambda r: r["attempt"]):
        final[(r["device_id"], r["run_id"])] = r["status"]
    assert Counter(final.values()) == {"ok": 2, "infra_error": 2}
    assert {d for (d, _), s in final.items() if s == "infra_error"} == {dead.name}


@pytest.mark.ray
def test_unauthorized_phone_gets_no_runs(
    adb_server: AdbServer, virtual_phones: PhoneFactory, start_farm: Any, tmp_path: Path
) -> None:
    (ok,) = virtual_phones(1)
    (locked,) = virtual_phones(1, refuse_auth=True)
    client = start_farm(inventory(adb_server, [ok, locked]))
    wait_until(lambda: device_states(client)[locked.name] == "unauthorized", timeout=30)
    submit_and_wait(client, _sleep_job(tmp_path, "authjob", 4, 0.05, devices={"placement": "any"}), timeout=120)
    got = rows(tmp_path / "res", "authjob")
    assert len(got) == 4 and {r["device_id"] for r in got} == {ok.name} and {r["status"] for r in got} == {"ok"}
    assert device_states(client)[locked.name] == "unauthorized"


@pytest.mark.ray
def test_thermal_gate_waits_for_a_hot_phone(
    adb_server: AdbServer, virtual_phones: PhoneFactory, start_farm: Any, tmp_path: Path
) -> None:
    (phone,) = virtual_phones(1)
    client = start_farm(inventory(adb_server, [phone]))
    idle = max(phone.state.thermal.temperatures_c()[:4])
    phone.state.thermal.set_load("heater", cpu=1.0)
    wait_until(lambda: max(phone.state.thermal.temperatures_c()[:4]) > idle + 12, timeout=30)
    phone.state.thermal.clear_load("heater")
    target = idle + 6
    path = _sleep_job(tmp_path, "gated", 1, 0.1, cooldown={"max_temp_c": target, "max_wait": "60s", "poll": "0.5s"})
    submit_and_wait(client, path, timeout=120)
    (row,) = rows(tmp_path / "res", "gated")
    assert row["status"] == "ok"
    assert row["cooldown_wait_s"] > 1.0 and row["cooldown_capped"] == 0.0
    assert row["temp_gate_first_c"] > target >= row["temp_start_c"]


@pytest.mark.ray
def test_discover_on_each_ray_node(adb_server: AdbServer, virtual_phones: PhoneFactory, local_ray: None) -> None:
    (phone,) = virtual_phones(1)
    found = discover_on_cluster(adb_server.port)
    (entry,) = [e for e in found.entries if e["adb"]["serial"] == phone.serial]
    (node,) = [n for n in ray.nodes() if n["Alive"]]
    assert entry["node"] == node["NodeManagerHostname"]
    Inventory.model_validate({"devices": found.entries})
