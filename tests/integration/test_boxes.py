"""Sophgo TPU boxes, Ascend servers and SSH hosts end to end: the device kinds against a real OpenSSH sshd
(``tests/fixtures/ssh.py``) with the scripted box tools of ``farm/sim/boxes`` on its PATH, and the farm on a real
local Ray.

The module's own sshd (``box``) differs from the session's ``sshd_box`` in what the box's sessions see, set
server-side like the PATH: ``FARM_SIM_TPU_COUNT=2`` (``bm-smi`` and ``pipeline.py`` act as a two-chip box;
``npu-smi`` already lists two NPUs), a private ``FARM_SIM_STATE`` (the stand-ins' "device memory" is not shared
with other test processes using the same tools), a CANN toolkit version file and torch / torch_npu package metadata
(what the Ascend fingerprint reads), and the one container the ``docker`` stand-in knows. The one sshd plays a
2-chip Sophgo box, a 2-NPU Ascend server and a plain host at once; the LightCode jobs run on this machine as a
local host with the stand-in ``lightcode`` package on PYTHONPATH. The shipped jobs are copied into ``tmp_path``
with their workdir moved to a scratch folder on the box (holding links to the demo stand-ins, dummy bmodels kept
there), the stand-in demo as the artifact, and grids trimmed so the module stays within a few minutes; commands and
templates are as shipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import shlex
import shutil
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from actors.ascend import AscendServer
from actors.host_probe import column_suffix, file_sha256
from actors.messages import ArtifactRef, RunRequest, RunResult
from actors.sophgo import SophgoBox
from actors.ssh_host import SshHost
from farm import runtime
from farm.client import ControllerOptions, FarmClient
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
CONTAINER = "llama-adapter"  # the container the docker stand-in knows (the name jobs/ascend-llama-adapter.yaml uses)
LIGHTCODE = BOXES_DIR.parent / "lightcode"  # the stand-in lightcode package


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdBox]:
    sshd = make_sshd_box(tmp_path_factory.mktemp("tpu-box"))
    state = sshd.root / "sim-state"
    state.mkdir()
    config = sshd.sshd_config.read_text()
    # sshd honours only the first SetEnv line: the variables join the one that sets PATH
    toolkit = sshd.root / "toolkit"  # what `source set_env.sh` points ASCEND_TOOLKIT_HOME at
    (toolkit / "aarch64-linux").mkdir(parents=True)
    (toolkit / "aarch64-linux" / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\nversion=7.0.T3\n"
    )
    site = sshd.root / "site"  # installed-package metadata only (no modules): what importlib.metadata reads
    for name, version in (("torch", "1.11.0"), ("torch_npu", "1.11.0.post4")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    extra = f"FARM_SIM_CONTAINERS={CONTAINER} ASCEND_TOOLKIT_HOME={toolkit} PYTHONPATH={site}"
    changed = config.replace("SetEnv PATH=", f"SetEnv FARM_SIM_TPU_COUNT=2 FARM_SIM_STATE={state} {extra} PATH=", 1)
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
            e = res.energy  # the chip's TPU_P over the run; its idle poll came before the chip was loaded
            assert e["energy_source"] == "bm_smi" and e["energy_valid"] is True, e
            assert isinstance(e["idle_power_w"], float) and isinstance(e["avg_power_w"], float)
            assert e["idle_power_w"] < 8 < e["avg_power_w"] < 22, e  # 6.6 W idle, 20.6 W while the model is held
            assert s["bmodel_weight_mib"] == round(models[chip].stat().st_size / (1 << 20), 3)
            assert s["bmodel_runtime_mib"] > 0 and s["bmodel_device_mem_mib"] > s["bmodel_weight_mib"]
            fp = res.fingerprint
            assert fp["fp_tpu_name"] == "1684X-SC7" and fp["fp_tpu_chips"] == "2" and fp["fp_tpu_sdk"]
            assert fp["fp_kernel"] == os.uname().release  # the box is this machine
            # memory_edit.sh -p, read only (the stand-in refuses -c)
            assert (fp["fp_tpu_mem_npu_mib"], fp["fp_tpu_mem_vpu_mib"], fp["fp_tpu_mem_vpp_mib"]) == (
                "7615",
                "3072",
                "4096",
            )
            assert s["bmodel_weight_bytes"] == models[chip].stat().st_size  # exact, not rounded MiB
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


def test_ascend_server_binds_each_run_to_its_npu(box: SshdBox, tmp_path: Path) -> None:
    dev = AscendServer(AscendDevice.model_validate({"kind": "ascend", "id": "npu", "ssh": ssh_block(box)}))
    try:
        assert [s.slot_id for s in dev.slots()] == ["npu/npu0", "npu/npu1"] and dev.synthetic
        # the demo's constants set in a rendered copy of the pushed script, the way the job does it
        remote = box.workdir / "ascend-direct"
        demo = dataclasses.replace(
            artifact(BOXES_DIR / "demo_bsz.py", f"{remote}/demo_b5.py"),
            constants=(("DEVICE_ID", "0"), ("BATCH_SIZE", "5"), ("INFER_LOOP", "2")),
        )
        argv = ["python3", "demo_b5.py"]
        res = dev.execute(request("a", "npu/npu1", argv, workdir=str(remote), artifacts=[demo]))
        assert res.exit_code == 0, res.stderr
        pushed = (remote / "demo_b5.py").read_text()
        assert "\nBATCH_SIZE = 5\n" in pushed and "\nINFER_LOOP = 2\n" in pushed
        assert res.fingerprint["fp_sha256_demo_bsz_py"] == file_sha256(remote / "demo_b5.py") != demo.sha256
        metrics = make_adapter("ascend_llama_adapter").parse(res.stdout)
        assert metrics["pictures_per_batch"] == 5 and metrics["trials_count"] == 2 and metrics["forward_time_ms"] > 0
        s = res.samples  # npu-smi saw card 1 (the slot's) hold the demo: ASCEND_RT_VISIBLE_DEVICES=1, DEVICE_ID 0
        assert s["npu_mem_peak_mb"] > 6200 + 310 * 5 and s["npu_aicore_max_pct"] >= 60 and "npu_hbm_peak_mb" not in s
        assert s["npu_power_max_w"] > 20  # 310P3: ~15 W idle, more while the demo runs
        e = res.energy  # npu-smi's Power(W) integrated over the run; the idle poll right before it read ~15 W
        assert e["energy_source"] == "npu_smi" and e["energy_valid"] is True and e["energy_samples"] >= 1, e
        assert isinstance(e["idle_power_w"], float) and isinstance(e["avg_power_w"], float)
        assert 14 < e["idle_power_w"] < 18 < e["avg_power_w"] < 30, e
        fp = res.fingerprint
        assert fp["fp_npu_name"] == "310P3" and fp["fp_npu_count"] == "2" and fp["fp_npu_driver"] == "24.1.0"
        assert (fp["fp_cann"], fp["fp_torch"], fp["fp_torch_npu"]) == ("7.0.T3", "1.11.0", "1.11.0.post4")
        # ~ in a workdir is the box's home, not a folder named "~"
        home = dev.execute(request("c", "npu/npu0", ["sh", "-c", 'pwd; printf "%s" "$HOME"'], workdir="~"))
        assert home.exit_code == 0 and home.stdout.splitlines()[0] == home.stdout.splitlines()[1]

        # inside a container: argv, env and workdir reach the command quoted, as words
        words = ["printf", "%s|", "a b", "$HOME", "it's", "*"]
        inside = dev.execute(request("d", "npu/npu0", words, workdir=str(remote), docker=CONTAINER, env={"X": "1 2"}))
        assert inside.exit_code == 0 and inside.stdout == "a b|$HOME|it's|*|", inside.stderr
        assert inside.fingerprint["fp_container"] == CONTAINER and inside.fingerprint["fp_cann"] == "7.0.T3"
        env = dev.execute(request("e", "npu/npu1", ["sh", "-c", 'echo "$X/$ASCEND_RT_VISIBLE_DEVICES/$PWD"'],
                                  workdir=str(remote), docker=CONTAINER, env={"X": "1 2"}))  # fmt: skip
        assert env.stdout.strip() == f"1 2/1/{remote}"
        # a timeout kills the process inside the container too (docker exec forwards no signal)
        marker = f"{uuid.uuid4().int % 10_000 + 1000}.{os.getpid()}"
        stuck = dev.execute(request("f", "npu/npu0", ["sh", "-c", f"sleep {marker} & sleep {marker}"],
                                    docker=CONTAINER, timeout_s=1.5))  # fmt: skip
        assert stuck.timed_out
        wait_until(lambda: box.remote_processes(f"sleep {marker}") == [], timeout=20)
        unknown = dev.execute(request("g", "npu/npu0", ["true"], docker="no-such-container"))
        assert unknown.exit_code == 1 and "No such container" in unknown.stderr
    finally:
        dev.close()


def test_ssh_host_energy_from_rapl_counters_read_over_ssh(box: SshdBox, tmp_path: Path) -> None:
    # the box's sshd is this machine: a recorded powercap tree under tmp_path stands in for the server's
    tree = tmp_path / "powercap"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "powercap" / "handmade_one_socket", tree)
    dev = SshHost(HostDevice.model_validate({"kind": "host", "id": "srv", "ssh": ssh_block(box)}))
    dev.powercap = str(tree)
    try:
        pkg = tree / "intel-rapl:0" / "energy_uj"
        res = dev.execute(request("p", "srv", ["sh", "-c", f"echo 262143500000 > {shlex.quote(str(pkg))}"]))
        assert res.exit_code == 0, res.stderr
        e = res.energy
        assert e["energy_source"] == "rapl" and e["energy_valid"] is True and e["idle_power_w"] == 0.0, e
        assert e["energy_package_j"] == pytest.approx(0.5) and e["energy_dram_j"] == 0.0
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
    with caplog.at_level(logging.ERROR, logger="actors.ssh_device"):
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
                {"id": "local", "kind": "host"},  # this machine: the LightCode runner ships with Farm
            ]
        }
    )
    if ray.is_initialized():
        ray.shutdown()
    # "local": a Ray of our own even while another process on this machine runs one (a plain init would attach)
    runtime.init_ray(address="local")
    results = tmp / "res"
    options = ControllerOptions(health_interval_s=1.0, offline_grace_s=5.0)
    client = FarmClient.start(inv, str(results), options=options)
    try:
        yield client, results
    finally:
        with contextlib.suppress(Exception):
            client.shutdown(timeout=30)
        client.kill()
        wait_until(lambda: runtime.find_controller() is None, timeout=30)
        ray.shutdown()


def copy_job(tmp: Path, shipped: str, **changes: Any) -> Path:
    data = yaml.safe_load((JOBS / f"{shipped}.yaml").read_text())
    data.update(changes)
    path = tmp / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def report_plots(results: Path, job: str) -> list[Path]:
    """``farm report JOB``: the job's analysis, as a user runs it; returns the plots it drew."""
    from farm.cli.main import main as farm_main

    assert farm_main(["report", job, "--results", str(results)]) == 0
    out = results / "reports" / job
    assert (out / "report.md").is_file() and (out / "stats.csv").is_file()
    return sorted(out.glob("plots/*.png"))


def bmodel_pair(folder: Path, names: tuple[str, str], size: int = BMODEL_BYTES) -> None:
    """Two bmodels that share their weights (same size: the model_tool stand-in reports it as the weight)."""
    for name in names:
        bmodel(folder, name, size)


@pytest.mark.ray
def test_llm_tpu_recipe_job_on_a_two_chip_box(farm: tuple[Any, Path], box: SshdBox, tmp_path: Path) -> None:
    client, results = farm
    assert {k: v for k, v in device_states(client).items() if k.startswith("tpu-box")} == {
        "tpu-box/chip0": "idle",
        "tpu-box/chip1": "idle",
    }  # discovered with bm-smi: the inventory lists no chips
    shipped = yaml.safe_load((JOBS / "llm-tpu-qwen.yaml").read_text())
    remote = box.workdir / "share_cache_demo"  # the demo folder, the bmodels already in it (not pushed)
    remote.mkdir()
    (remote / "pipeline.py").symlink_to(BOXES_DIR / "pipeline.py")
    pairs = [(v["model_a"], v["model_b"]) for v in shipped["grid"]["zip"][0]]
    for i, pair in enumerate(pairs):
        bmodel_pair(remote, pair, BMODEL_BYTES + 4096 * i)
    path = copy_job(tmp_path, "llm-tpu-qwen", workdir=str(remote), repeat=1, env=LONGER)
    st = submit_and_wait(client, path)
    got = rows(results, "llm-tpu-qwen")
    assert st.statuses == {"ok": 4} and len(got) == 4, [r["error"] for r in got]
    assert Counter(r["slot"] for r in got) == {"tpu-box/chip0": 2, "tpu-box/chip1": 2}
    assert {r["device_id"] for r in got} == {"tpu-box"}  # the inventory device, whose chips are the slots
    for r in got:
        a, b = r["p_model_a"], r["p_model_b"]
        assert r["status"] == "ok" and r["device_kind"] == "sophgo" and r["synthetic"] is True
        assert r["first_token_latency_s"] > 0 and r["decode_tokens_per_s"] > 0 and r["load_s"] > 0
        assert r["tpu_mem_peak_mb"] > 0 and r["sampler_polls"] >= 1
        # the weight check, to the byte, on every row; both files' hashes although nothing was pushed
        assert r["bmodel_weight_bytes"] == (remote / a).stat().st_size and r["bmodel_weights_identical"] == 1
        assert r["bmodel_count"] == 2 and r["bytes_pushed"] == 0
        assert r[f"fp_sha256_{column_suffix(a)}"] == file_sha256(remote / a)
        assert r[f"fp_sha256_{column_suffix(b)}"] == file_sha256(remote / b)
        assert r["fp_tpu_mem_npu_mib"] == "7615" and r["fp_tpu_mem_vpp_mib"] == "4096"
        assert f"--devid {r['slot'][-1]}" in r["command"] and "--memory_prealloc --is_decrypt" in r["command"]
    # the two chips ran at the same time over the box's one connection
    chip0 = [interval(r) for r in got if r["slot"].endswith("chip0")]
    chip1 = [interval(r) for r in got if r["slot"].endswith("chip1")]
    assert max(overlap(a, b) for a in chip0 for b in chip1) > 0.1
    assert report_plots(results, "llm-tpu-qwen")

    # a pair whose weights differ by one byte is refused on every chip before the demo starts
    bad = ("qwen-bad_int4_share6144_1dev.bmodel", "qwen-bad_int4_share2048_1dev.bmodel")
    bmodel(remote, bad[0])
    bmodel(remote, bad[1], BMODEL_BYTES + 1)
    grid = {"question": ["hi"], "zip": [[{"variant": "bad", "model_a": bad[0], "model_b": bad[1]}]]}
    odd = copy_job(tmp_path, "llm-tpu-qwen", name="llm-tpu-odd", workdir=str(remote), repeat=1, grid=grid)
    st = submit_and_wait(client, odd)
    refused = rows(results, "llm-tpu-odd")
    assert st.statuses == {"failed": 2} and st.retries == 0
    assert all("must share identical weights" in r["error"] and r["bmodel_weights_identical"] == 0 for r in refused)


@pytest.mark.ray
def test_llm_tpu_dump_job_collects_the_npz_files(farm: tuple[Any, Path], box: SshdBox, tmp_path: Path) -> None:
    client, results = farm
    remote = box.workdir / "dump_demo"
    remote.mkdir()
    (remote / "pipeline.py").symlink_to(BOXES_DIR / "pipeline.py")
    shipped = yaml.safe_load((JOBS / "llm-tpu-qwen-dump.yaml").read_text())
    bmodel(remote, shipped["grid"]["bmodel"][0])
    (remote / "output_0.npz").write_bytes(b"stale dump from an earlier run")  # the recipe: rm *.npz first
    (remote / "notes.txt").write_text("not matched by the glob")
    st = submit_and_wait(client, copy_job(tmp_path, "llm-tpu-qwen-dump", workdir=str(remote)))
    (row,) = rows(results, "llm-tpu-qwen-dump")
    assert st.statuses == {"ok": 1} and row["status"] == "ok", row["error"]
    listing = json.loads(row["collected_files"])
    assert [f["path"] for f in listing] == ["output_0.npz", "output_1.npz"] and row["collected_count"] == 2
    folder = Path(row["collected_dir"].removeprefix("file://"))
    assert folder.is_relative_to(results) and row["run_id"] in folder.name
    for f in listing:
        stored = folder / f["path"]
        assert file_sha256(stored) == f["sha256"] == file_sha256(remote / f["path"])
        with zipfile.ZipFile(stored) as npz:  # a real .npz (the stale bytes were cleared, not appended to)
            assert npz.namelist() == ["hidden_states.npy", "present_key.npy", "present_value.npy"]
            assert npz.read("hidden_states.npy").startswith(b"\x93NUMPY")
    assert not (folder / "notes.txt").exists() and (remote / "notes.txt").exists()
    report_plots(results, "llm-tpu-qwen-dump")  # one point: the report, maybe no plot


@pytest.mark.ray
def test_ascend_adapter_job_in_a_container_on_two_npus(farm: tuple[Any, Path], box: SshdBox, tmp_path: Path) -> None:
    client, results = farm
    shipped = yaml.safe_load((JOBS / "ascend-llama-adapter.yaml").read_text())
    remote = box.workdir / "llama_adapter_v2_multimodal7b"
    (art,) = shipped["artifacts"]
    art = {**art, "src": str(BOXES_DIR / "demo_bsz.py"), "dst": str(remote / Path(art["dst"]).name)}
    path = copy_job(tmp_path, "ascend-llama-adapter", workdir=str(remote), repeat=1, artifacts=[art])
    st = submit_and_wait(client, path)
    got = rows(results, "ascend-llama-adapter")
    assert st.statuses == {"ok": 4} and len(got) == 4, [r["error"] for r in got]
    assert {(r["slot"], r["p_batch_size"]) for r in got} == {(f"npu-server/npu{n}", b) for n in (0, 1) for b in (1, 5)}
    for r in got:
        assert r["status"] == "ok" and r["device_kind"] == "ascend" and r["synthetic"] is True
        assert r["pictures_per_batch"] == r["p_batch_size"] and r["trials_count"] == r["p_infer_loop"]
        assert r["throughput_pictures_per_s"] == pytest.approx(r["p_batch_size"] * 1000 / r["avg_time_ms"])
        assert all(r[f"{stage}_time_ms"] > 0 for stage in ("clip", "pre", "forward", "post", "decode"))
        assert r["npu_mem_peak_mb"] > 0 and r["npu_power_max_w"] > 0 and r["sampler_polls"] >= 1
        assert r["fp_npu_name"] == "310P3" and r["fp_npu_driver"] and r["fp_container"] == CONTAINER
        assert (r["fp_cann"], r["fp_torch_npu"]) == ("7.0.T3", "1.11.0.post4")
        # the copy that ran: its own hash, its constants set from the grid
        ran = remote / f"demo_bsz_farm_b{r['p_batch_size']}_npu{r['slot'][-1]}.py"
        assert r["fp_sha256_demo_bsz_py"] == file_sha256(ran)
        assert f"\nBATCH_SIZE = {r['p_batch_size']}\nINFER_LOOP = {r['p_infer_loop']}\n" in ran.read_text()
    # npu-smi saw each NPU's demo holding its memory (peak over the NPU's runs: a poll may land in start-up)
    for npu in ("npu0", "npu1"):
        mine = [r for r in got if r["slot"].endswith(npu)]
        assert max(r["npu_mem_peak_mb"] for r in mine) > 6200 + 310 and max(r["npu_aicore_max_pct"] for r in mine) > 0
    rate = {(r["slot"], r["p_batch_size"]): r["throughput_pictures_per_s"] for r in got}
    assert all(rate[(d, 5)] > 1.5 * rate[(d, 1)] for d in ("npu-server/npu0", "npu-server/npu1"))
    assert report_plots(results, "ascend-llama-adapter")


def lightcode_job(tmp: Path, shipped: str, **changes: Any) -> Path:
    """A shipped LightCode job on this machine, with the stand-in simulator package on PYTHONPATH."""
    return copy_job(tmp, shipped, devices={"ids": ["local"]}, env={"PYTHONPATH": str(LIGHTCODE)}, **changes)


@pytest.mark.ray
def test_lightcode_jobs_on_the_local_host(farm: tuple[Any, Path], tmp_path: Path) -> None:
    client, results = farm
    grid = {"optimization": ["time", "energy", "always_phu"], "seq_len": [8, 64, 1024], "phu_multiplex": [20]}
    st = submit_and_wait(client, lightcode_job(tmp_path, "lightcode-search", grid=grid))
    got = rows(results, "lightcode-search")
    assert st.statuses == {"ok": 9} and len(got) == 9, [r["error"] for r in got]
    for r in got:
        assert (
            r["device_id"] == "local" and r["synthetic"] is True and r["fp_lightcode_path"].startswith(str(LIGHTCODE))
        )
        assert (
            r["makespan_s"] > 0 and r["energy_pj"] > 0 and r["nodes_count"] == 108 and 0 <= r["phu_nodes_count"] <= 72
        )
    cell = {(r["p_optimization"], r["p_seq_len"]): r for r in got}
    # the optimizations differ: energy puts more on the photonic unit than time at short sequences, and the
    # time optimizer moves nodes to the PHU as the sequence grows (a switching point lies in between)
    assert cell[("energy", 8)]["phu_nodes_count"] > cell[("time", 8)]["phu_nodes_count"]
    assert cell[("time", 8)]["phu_nodes_count"] < cell[("time", 1024)]["phu_nodes_count"]
    assert cell[("energy", 8)]["energy_pj"] < cell[("time", 8)]["energy_pj"]
    assert cell[("time", 8)]["makespan_s"] < cell[("always_phu", 8)]["makespan_s"]
    assert report_plots(results, "lightcode-search")

    st = submit_and_wait(
        client,
        lightcode_job(
            tmp_path, "lightcode-thresholds", grid={"optimization": ["time", "energy"], "phu_multiplex": [20]}
        ),
    )
    found = {r["p_optimization"]: r for r in rows(results, "lightcode-thresholds")}
    assert st.statuses == {"ok": 2}
    assert all(r["threshold_count"] >= 1 and r["threshold_min_seq_len"] >= 1 for r in found.values())
    assert found["time"]["threshold_max_seq_len"] != found["energy"]["threshold_max_seq_len"]
    assert "thresholds" in Path(found["time"]["log_path"].removeprefix("file://")).read_text()
    assert report_plots(results, "lightcode-thresholds")

    # without the simulator the runner says so, and the row says why
    missing = copy_job(tmp_path, "lightcode-thresholds", name="lightcode-missing", devices={"ids": ["local"]},
                       grid={"optimization": ["time"], "phu_multiplex": [20]}, retries=0)  # fmt: skip
    st = submit_and_wait(client, missing)
    (row,) = rows(results, "lightcode-missing")
    assert row["status"] == "failed" and "the lightcode package is not installed" in row["error"]


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
    client, results = farm
    # the controller's first health check, before any run, met the refusal: untrusted, with the reason shown
    (dev,) = [d for d in client.devices() if d.device_id == "intercepted"]
    assert dev.state == "untrusted" and "HOST KEY CHANGED" in dev.reason and "Nothing was sent" in dev.reason
    canary = box.workdir / f"canary-{uuid.uuid4().hex}"
    path = _sleep_job(tmp_path, "intercepted", f"touch {canary}; echo value=1", devices={"ids": ["intercepted"]},
                      retries=3)  # fmt: skip
    st = submit_and_wait(client, path)
    assert st.statuses == {"infra_error": 1} and st.retries == 0  # no retry loop, no grace period
    (row,) = rows(results, "intercepted")
    assert row["status"] == "infra_error" and row["attempt"] == 1
    assert "device intercepted is untrusted: " in row["error"] and "HOST KEY CHANGED" in row["error"]
    assert not canary.exists()
    assert device_states(client)["intercepted"] == "untrusted"


@pytest.mark.ray
def test_sshd_stopped_mid_run_is_retried_to_one_ok_row(farm: tuple[Any, Path], up_box: SshdBox, tmp_path: Path) -> None:
    client, results = farm
    seconds = f"2.{uuid.uuid4().int % 10_000:04d}"  # a sleep this test alone runs on the box
    command = f"sleep {seconds}; echo value=7"
    path = _sleep_job(tmp_path, "unplugged", command, devices={"ids": ["sim-host"]}, retries=6)
    job_id = client.submit(load_job(path), str(path), ship=False)
    wait_until(lambda: up_box.remote_processes(f"sleep {seconds}") != [], timeout=60)
    time.sleep(0.3)
    up_box.stop()
    wait_until(lambda: device_states(client)["sim-host"] == "offline", timeout=60)
    up_box.start()
    st = client.wait(job_id, 300)
    assert st.state == "done" and st.statuses == {"ok": 1} and st.retries >= 1
    got = sorted(rows(results, "unplugged"), key=lambda r: r["attempt"])
    assert [r["status"] for r in got] == ["infra_error"] * (len(got) - 1) + ["ok"]
    assert "connection lost" in got[0]["error"] and got[-1]["value_count"] == 7
    assert len({r["run_id"] for r in got}) == 1


@pytest.mark.ray
def test_remote_timeout_leaves_no_process_behind(farm: tuple[Any, Path], box: SshdBox, tmp_path: Path) -> None:
    client, results = farm
    marker = f"{uuid.uuid4().int % 10_000 + 1000}.{os.getpid()}"
    # a grandchild that would outlive a kill of the direct child only
    path = _sleep_job(tmp_path, "stuck", f"sleep {marker} & sleep {marker}; echo value=1",
                      devices={"ids": ["sim-host"]}, timeout="1s", retries=0)  # fmt: skip
    st = submit_and_wait(client, path)
    assert st.statuses == {"timeout": 1}
    (row,) = rows(results, "stuck")
    assert row["status"] == "timeout" and 0.9 <= row["duration_s"] < 10
    assert row["started_at"] > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    assert box.remote_processes(f"sleep {marker}") == []
