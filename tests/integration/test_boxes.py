"""Sophgo TPU boxes, Ascend servers and SSH hosts end to end: the device kinds against a real OpenSSH sshd
(``tests/fixtures/ssh.py``) with the scripted box tools of ``farm/sim/boxes`` on its PATH, and the farm on a real
local Ray.

The module's own sshd (``box``) differs from the session's ``sshd_box`` in what the box's sessions see, set
server-side like the PATH: ``FARM_SIM_TPU_COUNT=2`` (``bm-smi`` and ``pipeline.py`` act as a two-chip box;
``npu-smi`` already lists two NPUs) and a private ``FARM_SIM_STATE`` (the stand-ins' "device memory" is not
shared with other test processes using the same tools). The one sshd plays a 2-chip Sophgo box, a 2-NPU Ascend
server and a plain host at once. The shipped jobs are copied into ``tmp_path`` with their workdir moved to a
scratch folder on the box (holding links to the demo stand-ins), dummy bmodels as artifacts, and grids trimmed
so the module stays within a few minutes; commands and templates are as shipped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from actors.ascend import AscendServer
from actors.host_probe import file_sha256
from actors.messages import ArtifactRef, RunRequest, RunResult
from actors.sophgo import SophgoBox
from actors.ssh_host import SshHost
from farm import runtime
from farm.controller import ControllerOptions
from farm.rows import classify
from farm.specs.inventory import AscendDevice, HostDevice, Inventory, SophgoDevice
from farm.specs.job import load_job
from farm.workloads import make_adapter
from tests.fixtures.ssh import BOXES_DIR, SshdBox, _keygen, make_sshd_box
from tests.runtime.helpers import device_states, rows, submit_and_wait, wait_until

pytestmark = pytest.mark.ssh
JOBS = Path(__file__).resolve().parents[2] / "jobs"
QWEN = [
    "qwen2.5-1.5b_int4_seq512_1dev.bmodel",
    "qwen2.5-1.5b_int4_seq2048_1dev.bmodel",
    "qwen2.5-1.5b_int4_share6144_unshare2560_seq8704_1dev.bmodel",
    "qwen2.5-1.5b_int4_share1536_unshare1024_seq2560_1dev.bmodel",
]
BMODEL_BYTES = 192 << 10  # the model_tool stand-in reports a dummy file's size as its weight size
LONGER = {"FARM_SIM_TOKENS": "96"}  # answers of 96 tokens, not 16: bm-smi polls see the run on a loaded VM


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdBox]:
    sshd = make_sshd_box(tmp_path_factory.mktemp("tpu-box"))
    state = sshd.root / "sim-state"
    state.mkdir()
    config = sshd.sshd_config.read_text()
    # sshd honours only the first SetEnv line: the variables join the one that sets PATH
    changed = config.replace("SetEnv PATH=", f"SetEnv FARM_SIM_TPU_COUNT=2 FARM_SIM_STATE={state} PATH=", 1)
    assert changed != config
    sshd.stop()
    sshd.sshd_config.write_text(changed)
    sshd.start()
    for tool in ("pipeline.py", "demo_bsz.py"):  # the demos' own folders on a real box
        (sshd.workdir / tool).symlink_to(BOXES_DIR / tool)
    try:
        yield sshd
    finally:
        sshd.stop()


@pytest.fixture
def up_box(box: SshdBox) -> Iterator[SshdBox]:
    """``box``, up before and after the test (for tests that stop it)."""
    box.start()
    try:
        yield box
    finally:
        box.start()


def ssh_block(box: SshdBox, **overrides: Any) -> dict[str, Any]:
    c = box.config
    return {"host": c.host, "port": c.port, "user": c.user, "key_file": c.key_file,
            "known_hosts": c.known_hosts, "connect_timeout_s": 5, **overrides}  # fmt: skip


def request(run_id: str, slot_id: str, argv: list[str], **kw: Any) -> RunRequest:
    return RunRequest(job="t", run_id=run_id, attempt=1, slot_id=slot_id, argv=argv, env=kw.pop("env", {}),
                      workdir=kw.pop("workdir", None), timeout_s=kw.pop("timeout_s", 60), **kw)  # fmt: skip


def bmodel(folder: Path, name: str, size: int = BMODEL_BYTES) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def artifact(path: Path, dst: str) -> ArtifactRef:
    return ArtifactRef(path.name, file_sha256(path), path.stat().st_size, dst, None, str(path))


def interval(r: RunResult | dict[str, Any]) -> tuple[float, float]:
    if isinstance(r, RunResult):
        return r.started_at, r.started_at + r.duration_s
    start = r["started_at"].timestamp()
    return start, start + r["duration_s"]


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


# -- the device kinds without Ray -------------------------------------------------------------------------------


def test_sophgo_box_runs_both_chips_at_once(box: SshdBox, tmp_path: Path) -> None:
    dev = SophgoBox(SophgoDevice.model_validate({"kind": "sophgo", "id": "tpu", "ssh": ssh_block(box)}))
    try:
        assert [(s.slot_id, s.index) for s in dev.slots()] == [("tpu/chip0", 0), ("tpu/chip1", 1)]
        assert dev.health() == {"tpu/chip0": "idle", "tpu/chip1": "idle"} and dev.synthetic
        remote = str(box.workdir / "direct")
        models = [bmodel(tmp_path, QWEN[0]), bmodel(tmp_path, QWEN[1], BMODEL_BYTES + 4096)]
        arts = [artifact(p, f"{remote}/{p.name}") for p in models]
        results: dict[int, RunResult] = {}

        def run(chip: int) -> None:
            argv = ["python3", str(box.workdir / "pipeline.py"), "--model_path", models[chip].name, "--devid",
                    str(chip), "--prompt", "hi"]  # fmt: skip
            req = request(f"r{chip}", f"tpu/chip{chip}", argv, workdir=remote, artifacts=arts, env=LONGER)
            results[chip] = dev.execute(req)

        threads = [threading.Thread(target=run, args=(chip,)) for chip in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for chip, res in results.items():
            assert res.exit_code == 0 and res.infra_error is None, res.stderr
            assert "TPS:" in res.stdout and res.synthetic
            s = res.samples
            # bm-smi while running: the demo's ~0.8 GB of weights on top of ~1-1.3 GB idle, on its own chip
            assert s["tpu_mem_peak_mb"] > 1500 and s["tpu_util_max_pct"] >= 70 and s["sampler_polls"] >= 1
            assert s["bmodel_weight_mib"] == round(models[chip].stat().st_size / (1 << 20), 3)
            assert s["bmodel_runtime_mib"] > 0 and s["bmodel_device_mem_mib"] > s["bmodel_weight_mib"]
            fp = res.fingerprint
            assert fp["fp_tpu_name"] == "1684X-SC7" and fp["fp_tpu_chips"] == "2" and fp["fp_tpu_sdk"]
            assert fp["fp_kernel"] == os.uname().release  # the box is this machine
        assert overlap(interval(results[0]), interval(results[1])) > 0.2

        # two bmodels loaded together must have identical weights: refused before the demo starts
        pair = ",".join(p.name for p in models)
        argv = ["python3", str(box.workdir / "pipeline.py"), "-m", pair, "-d", "0", "-p", "hi"]
        refused = dev.execute(request("mismatch", "tpu/chip0", argv, workdir=remote, artifacts=arts))
        assert refused.exit_code == 255 and refused.stdout == "" and refused.infra_error is None
        assert "must share identical weights" in refused.stderr and QWEN[1] in refused.stderr
        assert refused.samples["bmodel_weights_identical"] == 0.0
        twin = bmodel(tmp_path, QWEN[2])
        arts.append(artifact(twin, f"{remote}/{twin.name}"))
        argv[3] = f"{models[0].name},{twin.name}"
        shared = dev.execute(request("shared", "tpu/chip0", argv, workdir=remote, artifacts=arts))
        assert shared.exit_code == 0 and shared.bytes_pushed == BMODEL_BYTES, shared.stderr
        assert shared.samples["bmodel_weights_identical"] == 1.0 and shared.samples["bmodel_count"] == 2
    finally:
        dev.close()


def test_ascend_server_binds_each_run_to_its_npu(box: SshdBox) -> None:
    dev = AscendServer(AscendDevice.model_validate({"kind": "ascend", "id": "npu", "ssh": ssh_block(box)}))
    try:
        assert [s.slot_id for s in dev.slots()] == ["npu/npu0", "npu/npu1"] and dev.synthetic
        argv = ["python3", "demo_bsz.py"]
        env = {"BATCH_SIZE": "5", "FARM_SIM_ITERS": "2"}
        res = dev.execute(request("a", "npu/npu1", argv, env=env, workdir=str(box.workdir)))
        assert res.exit_code == 0, res.stderr
        assert "open device 1 success (ASCEND_RT_VISIBLE_DEVICES=1)" in res.stdout  # from the slot, not the job
        s = res.samples
        assert s["npu_mem_peak_mb"] > 6200 + 310 * 5 and s["npu_aicore_max_pct"] >= 60 and "npu_hbm_peak_mb" not in s
        fp = res.fingerprint
        assert fp["fp_npu_name"] == "310P3" and fp["fp_npu_count"] == "2" and fp["fp_npu_driver"] == "24.1.0"
        # a job that sets the variable itself wins
        env["ASCEND_RT_VISIBLE_DEVICES"] = "0"
        pinned = dev.execute(request("b", "npu/npu1", argv, env=env, workdir=str(box.workdir)))
        assert "open device 0 success" in pinned.stdout
        # ~ in a workdir is the box's home, not a folder named "~"
        home = dev.execute(request("c", "npu/npu0", ["sh", "-c", 'pwd; printf "%s" "$HOME"'], workdir="~"))
        assert home.exit_code == 0 and home.stdout.splitlines()[0] == home.stdout.splitlines()[1]
    finally:
        dev.close()


def test_ssh_host_fingerprint_memory_and_health(box: SshdBox) -> None:
    dev = SshHost(HostDevice.model_validate({"kind": "host", "id": "srv", "ssh": ssh_block(box)}))
    try:
        assert dev.health() == {"srv": "idle"}
        fp = dev.fingerprint()
        assert fp["fp_kernel"] == os.uname().release and fp["fp_cpu_count"] == str(len(os.sched_getaffinity(0)))
        assert fp["fp_cpu_model"] and fp["fp_hostname"] == os.uname().nodename
        grow = "import time; b = bytearray(96 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.2)"
        res = dev.execute(request("m", "srv", ["python3", "-c", grow]))
        assert res.exit_code == 0 and not res.synthetic
        assert 96 < res.samples["peak_rss_mib"] < 400 and res.samples["sampler_polls"] >= 2
    finally:
        dev.close()


def test_health_offline_when_the_box_is_down_untrusted_when_its_key_is_wrong(
    up_box: SshdBox, sshd_box: SshdBox, wrong_known_hosts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dev = SshHost(HostDevice.model_validate({"kind": "host", "id": "srv", "ssh": ssh_block(up_box)}))
    up_box.stop()
    assert dev.health() == {"srv": "offline"}
    up_box.start()
    assert dev.health() == {"srv": "idle"}
    dev.close()
    impostor = ssh_block(sshd_box, known_hosts=str(wrong_known_hosts))
    bad = SshHost(HostDevice.model_validate({"kind": "host", "id": "bad", "ssh": impostor}))
    with caplog.at_level(logging.ERROR, logger="actors.box"):
        assert bad.health() == {"bad": "untrusted"} and bad.health() == {"bad": "untrusted"}
    assert "HOST KEY CHANGED" in bad.health_reason
    refusals = [r for r in caplog.records if "HOST KEY CHANGED" in r.getMessage()]
    assert len(refusals) == 1  # logged once, not at every health round
    empty = wrong_known_hosts.parent / "known_hosts_empty"
    empty.write_text("")
    unknown_box = ssh_block(sshd_box, known_hosts=str(empty))
    unknown = SshHost(HostDevice.model_validate({"kind": "host", "id": "new", "ssh": unknown_box}))
    assert unknown.health() == {"new": "untrusted"} and "host key not in" in unknown.health_reason
    # a run handed to it anyway (before a health check ran) is refused: a failed row with the reason, no retry
    canary = sshd_box.workdir / f"canary-{uuid.uuid4().hex}"
    res = bad.execute(request("r", "bad", ["sh", "-c", f"touch {canary}; echo value=1"]))
    status, error, _ = classify(res, make_adapter("regex", {"patterns": {"value_count": r"value=(\d+)"}}))
    assert status == "failed" and error is not None and res.infra_error is None
    assert "HOST KEY CHANGED" in error and "Nothing was sent" in error
    assert not canary.exists()  # refused before authentication: the command never reached the box


# -- the farm on Ray --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def farm(box: SshdBox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """One controller for the module: a TPU box, an Ascend server, a plain host on ``box``, and a host whose
    known_hosts pins another key for ``box``'s address."""
    tmp = tmp_path_factory.mktemp("box-farm")
    impostor = _keygen(tmp / "impostor_key", "impostor").split()
    wrong = tmp / "known_hosts_wrong"
    wrong.write_text(f"[127.0.0.1]:{box.port} {impostor[0]} {impostor[1]}\n")
    inv = Inventory.model_validate(
        {
            "devices": [
                {"id": "tpu-box", "kind": "sophgo", "ssh": ssh_block(box)},
                {"id": "npu-server", "kind": "ascend", "ssh": ssh_block(box)},
                {"id": "sim-host", "kind": "host", "ssh": ssh_block(box)},
                {"id": "intercepted", "kind": "host", "ssh": ssh_block(box, known_hosts=str(wrong))},
            ]
        }
    )
    if ray.is_initialized():
        ray.shutdown()
    # "local": a Ray of our own even while another process on this machine runs one (a plain init would attach)
    runtime.init_ray(address="local")
    results = tmp / "res"
    options = ControllerOptions(health_interval_s=1.0, offline_grace_s=5.0)
    handle = runtime.start_controller(inv, str(results), options=options)
    try:
        yield handle, results
    finally:
        with contextlib.suppress(Exception):
            ray.get(handle.shutdown.remote(), timeout=30)
        ray.kill(handle)
        wait_until(lambda: runtime.find_controller() is None, timeout=30)
        ray.shutdown()


def copy_job(tmp: Path, name: str, **changes: Any) -> Path:
    data = yaml.safe_load((JOBS / f"{name}.yaml").read_text())
    data.update(changes)
    path = tmp / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.ray
def test_llm_tpu_job_on_a_two_chip_box(farm: tuple[Any, Path], box: SshdBox, tmp_path: Path) -> None:
    handle, results = farm
    assert {k: v for k, v in device_states(handle).items() if k.startswith("tpu-box")} == {
        "tpu-box/chip0": "idle",
        "tpu-box/chip1": "idle",
    }  # discovered with bm-smi: the inventory lists no chips
    remote = box.workdir / "llm-tpu"
    remote.mkdir()
    (remote / "pipeline.py").symlink_to(BOXES_DIR / "pipeline.py")
    for name in QWEN:
        bmodel(tmp_path / "bmodels", name)  # same size: variants of one model share its weights
    path = copy_job(tmp_path, "llm-tpu-qwen", workdir=str(remote), repeat=1, env=LONGER,
                    artifacts=[{"src": f"bmodels/{n}", "dst": f"{remote}/"} for n in QWEN])  # fmt: skip
    st = submit_and_wait(handle, path)
    got = rows(results, "llm-tpu-qwen")
    assert st["statuses"] == {"ok": 8} and len(got) == 8, [r["error"] for r in got]
    assert Counter(r["device_id"] for r in got) == {"tpu-box/chip0": 4, "tpu-box/chip1": 4}
    for r in got:
        assert r["status"] == "ok" and r["device_kind"] == "sophgo" and r["synthetic"] is True
        assert r["first_token_latency_s"] > 0 and r["decode_tokens_per_s"] > 0 and r["load_s"] > 0
        assert r["tpu_mem_peak_mb"] > 0 and r["sampler_polls"] >= 1
        assert r["bmodel_weight_mib"] == round(BMODEL_BYTES / (1 << 20), 3) and r["bmodel_device_mem_mib"] > 0
        assert r["fp_tpu_name"] == "1684X-SC7" and r["fp_kernel"] == os.uname().release
        assert f"--devid {r['device_id'][-1]}" in r["command"]
    # bm-smi saw each chip's demo holding its weights (~0.8 GB over the idle ~1-1.3 GB); under heavy load a
    # poll may still land in the demo's start-up, so the peak over each chip's runs is what is asserted
    for chip in ("chip0", "chip1"):
        assert max(r["tpu_mem_peak_mb"] for r in got if r["device_id"].endswith(chip)) > 1500
    # the runtime buffer grows with the sequence length: 512 < 2048 < 2560 < 8704 (model_tool --info)
    runtime_mb = {r["p_bmodel"]: r["bmodel_runtime_mib"] for r in got}
    assert runtime_mb[QWEN[0]] < runtime_mb[QWEN[1]] < runtime_mb[QWEN[3]] < runtime_mb[QWEN[2]]
    # the two chips ran at the same time over the box's one connection
    chip0 = [interval(r) for r in got if r["device_id"].endswith("chip0")]
    chip1 = [interval(r) for r in got if r["device_id"].endswith("chip1")]
    assert max(overlap(a, b) for a in chip0 for b in chip1) > 0.3
    assert sum(r["bytes_pushed"] for r in got) >= len(QWEN) * BMODEL_BYTES

    # resubmitted with --rerun (the first variant only, to save time): the runs again, nothing uploaded
    first = copy_job(tmp_path, "llm-tpu-qwen", workdir=str(remote), repeat=1, env=LONGER, grid={"bmodel": QWEN[:1]},
                     artifacts=[{"src": f"bmodels/{n}", "dst": f"{remote}/"} for n in QWEN])  # fmt: skip
    submit_and_wait(handle, first, rerun=True)
    again = [r for r in rows(results, "llm-tpu-qwen") if r["attempt"] > 1]
    assert {r["run_id"] for r in again} == {r["run_id"] for r in got if r["p_bmodel"] == QWEN[0]}
    assert len(again) == 2 and all(r["status"] == "ok" and r["bytes_pushed"] == 0 for r in again)


@pytest.mark.ray
def test_ascend_adapter_job_batch_sizes_on_two_npus(farm: tuple[Any, Path], box: SshdBox, tmp_path: Path) -> None:
    handle, results = farm
    path = copy_job(tmp_path, "ascend-llama-adapter", workdir=str(box.workdir), repeat=1, warmup=0)
    st = submit_and_wait(handle, path)
    got = rows(results, "ascend-llama-adapter")
    assert st["statuses"] == {"ok": 4} and len(got) == 4, [r["error"] for r in got]
    assert {(r["device_id"], r["p_batch_size"]) for r in got} == {
        (f"npu-server/npu{n}", b) for n in (0, 1) for b in (1, 5)
    }
    for r in got:
        assert r["status"] == "ok" and r["device_kind"] == "ascend" and r["synthetic"] is True
        assert r["throughput_pictures_per_s"] > 0 and r["npu_mem_peak_mb"] > 0 and r["sampler_polls"] >= 1
        assert r["fp_npu_name"] == "310P3" and r["fp_npu_driver"] and r["fp_cpu_count"]
        log = Path(r["log_path"]).read_text()
        assert f"open device {r['device_id'][-1]} success" in log
    # npu-smi saw each NPU's demo holding its memory and AI cores (peak over the NPU's runs: see the TPU job)
    for npu in ("npu0", "npu1"):
        mine = [r for r in got if r["device_id"].endswith(npu)]
        assert max(r["npu_mem_peak_mb"] for r in mine) > 6200 + 310 and max(r["npu_aicore_max_pct"] for r in mine) > 0
    rate = {(r["device_id"], r["p_batch_size"]): r["throughput_pictures_per_s"] for r in got}
    assert all(rate[(d, 5)] > 1.5 * rate[(d, 1)] for d in ("npu-server/npu0", "npu-server/npu1"))


@pytest.mark.ray
def test_lightcode_search_on_a_host_over_ssh(farm: tuple[Any, Path], box: SshdBox, tmp_path: Path) -> None:
    handle, results = farm
    search = tmp_path / "artifacts" / "lightcode" / "search.py"
    search.parent.mkdir(parents=True)
    # the job's entry point, delegating to the simulator stand-in (which spells the flag --seq_len)
    search.write_text(
        "import runpy, sys\n"
        "sys.argv = [a.replace('--seq-len', '--seq_len') for a in sys.argv]\n"
        f"runpy.run_path({str(BOXES_DIR / 'lightcode_sim.py')!r}, run_name='__main__')\n"
    )
    remote = box.workdir / "lightcode"
    shipped = yaml.safe_load((JOBS / "lightcode-search.yaml").read_text())
    (tmp_path / "jobs").mkdir()
    path = copy_job(tmp_path / "jobs", "lightcode-search", workdir=str(remote), devices={"ids": ["sim-host"]},
                    artifacts=[{**a, "dst": f"{remote}/"} for a in shipped["artifacts"]],
                    grid={"target": ["time", "energy"], "seq_len": [128, 512]})  # fmt: skip
    st = submit_and_wait(handle, path)
    got = rows(results, "lightcode-search")
    assert st["statuses"] == {"ok": 4} and len(got) == 4, [r["error"] for r in got]
    for r in got:
        assert r["device_id"] == "sim-host" and r["device_kind"] == "host" and r["synthetic"] is True
        assert r["makespan_s"] > 0 and r["energy_pj"] > 0 and r["nodes_count"] == 144
        assert r["fp_kernel"] == os.uname().release and r["fp_cpu_model"] and r["fp_sha256_search_py"]
    makespan = {(r["p_target"], r["p_seq_len"]): r["makespan_s"] for r in got}
    assert makespan[("time", 512)] > makespan[("time", 128)]


def _sleep_job(tmp: Path, name: str, command: str, **extra: Any) -> Path:
    data = {
        "name": name,
        "workload": "regex",
        "workload_options": {"patterns": {"value_count": r"value=(\d+)"}},
        "command": ["sh", "-c", command],
        **extra,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.ray
def test_changed_host_key_makes_the_device_untrusted_at_once(
    farm: tuple[Any, Path], box: SshdBox, tmp_path: Path
) -> None:
    handle, results = farm
    # the controller's first health check, before any run, met the refusal: untrusted, with the reason shown
    (dev,) = [d for d in ray.get(handle.devices_status.remote()) if d["device_id"] == "intercepted"]
    assert dev["state"] == "untrusted" and "HOST KEY CHANGED" in dev["reason"] and "Nothing was sent" in dev["reason"]
    canary = box.workdir / f"canary-{uuid.uuid4().hex}"
    path = _sleep_job(tmp_path, "intercepted", f"touch {canary}; echo value=1", devices={"ids": ["intercepted"]},
                      retries=3)  # fmt: skip
    st = submit_and_wait(handle, path)
    assert st["statuses"] == {"infra_error": 1} and st["retries"] == 0  # no retry loop, no grace period
    (row,) = rows(results, "intercepted")
    assert row["status"] == "infra_error" and row["attempt"] == 1
    assert "device intercepted is untrusted: " in row["error"] and "HOST KEY CHANGED" in row["error"]
    assert not canary.exists()
    assert device_states(handle)["intercepted"] == "untrusted"


@pytest.mark.ray
def test_sshd_stopped_mid_run_is_retried_to_one_ok_row(farm: tuple[Any, Path], up_box: SshdBox, tmp_path: Path) -> None:
    handle, results = farm
    seconds = f"2.{uuid.uuid4().int % 10_000:04d}"  # a sleep this test alone runs on the box
    command = f"sleep {seconds}; echo value=7"
    path = _sleep_job(tmp_path, "unplugged", command, devices={"ids": ["sim-host"]}, retries=6)
    job_id = runtime.submit(handle, load_job(path), str(path), ship=False)
    wait_until(lambda: up_box.remote_processes(f"sleep {seconds}") != [], timeout=60)
    time.sleep(0.3)
    up_box.stop()
    wait_until(lambda: device_states(handle)["sim-host"] == "offline", timeout=60)
    up_box.start()
    st = ray.get(handle.wait.remote(job_id, 300))
    assert st["state"] == "done" and st["statuses"] == {"ok": 1} and st["retries"] >= 1
    got = sorted(rows(results, "unplugged"), key=lambda r: r["attempt"])
    assert [r["status"] for r in got] == ["infra_error"] * (len(got) - 1) + ["ok"]
    assert "connection lost" in got[0]["error"] and got[-1]["value_count"] == 7
    assert len({r["run_id"] for r in got}) == 1


@pytest.mark.ray
def test_remote_timeout_leaves_no_process_behind(farm: tuple[Any, Path], box: SshdBox, tmp_path: Path) -> None:
    handle, results = farm
    marker = f"{uuid.uuid4().int % 10_000 + 1000}.{os.getpid()}"
    # a grandchild that would outlive a kill of the direct child only
    path = _sleep_job(tmp_path, "stuck", f"sleep {marker} & sleep {marker}; echo value=1",
                      devices={"ids": ["sim-host"]}, timeout="1s", retries=0)  # fmt: skip
    st = submit_and_wait(handle, path)
    assert st["statuses"] == {"timeout": 1}
    (row,) = rows(results, "stuck")
    assert row["status"] == "timeout" and 0.9 <= row["duration_s"] < 10
    assert row["started_at"] > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    assert box.remote_processes(f"sleep {marker}") == []
