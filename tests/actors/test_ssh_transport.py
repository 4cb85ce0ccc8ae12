"""What only SshTransport does, against a real OpenSSH sshd on loopback: remote process groups, one shared connection,
host keys and authentication, faults, the box stand-ins. What every transport does: test_transport_contract.py."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from actors.transports.ssh import SshTransport
from farm.errors import ConnectionLostError, DeviceOfflineError, RunRefused, SecurityError

if TYPE_CHECKING:  # imported for annotations only: pytest loads the module itself, as a plugin
    from tests.fixtures.ssh import SshdBox

pytest_plugins = ["tests.fixtures.ssh"]
pytestmark = pytest.mark.ssh


@pytest.fixture
def ssh(sshd_box: SshdBox) -> Iterator[SshTransport]:
    transport = SshTransport(sshd_box.config)
    yield transport
    transport.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_on_start_gets_the_remote_pid_which_leads_its_own_group(ssh: SshTransport) -> None:
    seen: dict[str, int | str] = {}

    def on_start(pid: int) -> None:
        seen["pid"] = pid
        seen["pgid"] = os.getpgid(pid)
        # the marker is printed just before the exec: the same pid turns into the command moments later
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            seen["cmdline"] = cmdline
            if cmdline.startswith("sleep"):
                break
            time.sleep(0.01)

    done = ssh.run(["sleep", "0.5"], on_start=on_start)
    assert done.exit_code == 0
    assert seen["pid"] == done.pid
    assert seen["cmdline"] == "sleep 0.5 "
    assert seen["pgid"] == done.pid
    assert 0.4 < done.duration_s < 3


def test_timeout_kills_the_whole_process_group(ssh: SshTransport, sshd_box: SshdBox) -> None:
    # a parent with two children, one of which ignores SIGTERM: all three must be gone afterwards
    script = "sleep 1001 & (trap '' TERM; sleep 1002) & wait"
    t0 = time.monotonic()
    done = ssh.run(["sh", "-c", script], timeout=1)
    elapsed = time.monotonic() - t0
    assert done.timed_out and done.exit_code is None and not done.cancelled
    assert 1 <= elapsed < 8
    assert done.pid is not None and not _alive(done.pid)
    assert sshd_box.remote_processes("sleep 1001") == []
    assert sshd_box.remote_processes("sleep 1002") == []


def test_four_concurrent_runs_share_one_connection(ssh: SshTransport, tmp_path: Path) -> None:
    # A barrier on the box: each run checks in, then waits until all four have. Serialised runs never get past
    # it (the first would wait for the others forever, capped at 60 s), so this proves concurrency without
    # any wall-clock threshold that a busy machine could break.
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = (
        'touch "$BARRIER/$DEVID"; i=0; '
        'while [ "$(ls "$BARRIER" | wc -l)" -lt 4 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; '
        'echo "devid=$DEVID seen=$(ls "$BARRIER" | wc -l)"'
    )
    results: dict[int, object] = {}

    def bench(devid: int) -> None:
        results[devid] = ssh.run(["sh", "-c", script], env={"DEVID": str(devid), "BARRIER": str(barrier)})

    ssh.run(["true"])  # connect first, so the threads below must share this connection
    client = ssh._client
    threads = [threading.Thread(target=bench, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for devid in range(4):
        assert getattr(results[devid], "stdout", None) == f"devid={devid} seen=4\n"
    assert ssh._client is client


def test_changed_host_key_is_refused_before_any_command(sshd_box: SshdBox, wrong_known_hosts: Path) -> None:
    canary = sshd_box.workdir / "canary-hostkey"
    impostor = SshTransport(sshd_box.config.model_copy(update={"known_hosts": str(wrong_known_hosts)}))
    with pytest.raises(SecurityError, match="HOST KEY CHANGED") as info:
        impostor.run(["touch", str(canary)])
    assert f"[127.0.0.1]:{sshd_box.port}" in str(info.value)
    assert not canary.exists()
    # and it is not silently "fixed": the pinned (wrong) key stays, the real one is not added
    assert sshd_box.host_pub.split()[1] not in wrong_known_hosts.read_text()


@pytest.mark.parametrize("known_hosts", ["empty", "missing"])
def test_unknown_host_is_refused_with_instructions(sshd_box: SshdBox, tmp_path: Path, known_hosts: str) -> None:
    path = tmp_path / "known_hosts"
    if known_hosts == "empty":
        path.write_text("")
    transport = SshTransport(sshd_box.config.model_copy(update={"known_hosts": str(path)}))
    with pytest.raises(SecurityError, match="ssh-keyscan") as info:
        transport.check_output(["true"])
    message = str(info.value)
    assert f"127.0.0.1:{sshd_box.port}" in message
    assert "SHA256:" in message
    assert not path.exists() or path.read_text() == ""


def test_wrong_client_key_is_a_security_error(sshd_box: SshdBox, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    transport = SshTransport(sshd_box.config.model_copy(update={"key_file": str(tmp_path / "k")}))
    with pytest.raises(SecurityError, match="authentication failed"):
        transport.check_output(["true"])


def test_password_env_must_name_a_set_variable(sshd_box: SshdBox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FARM_TEST_SSH_PASS", raising=False)
    transport = SshTransport(sshd_box.config.model_copy(update={"password_env": "FARM_TEST_SSH_PASS"}))
    with pytest.raises(RunRefused, match="password_env: environment variable FARM_TEST_SSH_PASS is not set"):
        transport.check_output(["true"])


def test_closed_port_is_device_offline(sshd_box: SshdBox) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    transport = SshTransport(sshd_box.config.model_copy(update={"port": free}))
    with pytest.raises(DeviceOfflineError, match="cannot connect"):
        transport.check_output(["true"])


def test_sshd_killed_mid_run_then_transport_reconnects(running_sshd_box: SshdBox) -> None:
    box = running_sshd_box
    ssh = SshTransport(box.config)
    try:
        pids: list[int] = []

        def unplug(pid: int) -> None:  # in this thread, once the command runs: nothing races start()/stop()
            pids.append(pid)
            box.stop()

        with pytest.raises(ConnectionLostError, match="connection lost"):
            ssh.run(["sleep", "1004"], on_start=unplug, timeout=30)
        assert pids and _alive(pids[0])  # orphaned on the box, as after a real link drop

        with pytest.raises(DeviceOfflineError):  # box still down: cannot connect
            ssh.run(["true"])

        box.start()
        done = ssh.run(["echo", "back"])
        assert (done.exit_code, done.stdout) == (0, "back\n")
        # the reconnect cleaned up the benchmark the lost connection left behind
        deadline = time.monotonic() + 5
        while _alive(pids[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pids[0])
    finally:
        ssh.close()


def test_stand_in_tools_print_parseable_output(ssh: SshTransport, sshd_box: SshdBox, tmp_path: Path) -> None:
    npu = ssh.check_output(["npu-smi", "info"], timeout=20)
    assert re.search(r"\|\s*\d+\s+310P3\s*\|\s*OK", npu)
    assert re.findall(r"\|\s*0\s+\d\s*\|\s*[0-9A-F:.]+\s*\|\s*\d+\s+(\d+)\s*/\s*(\d+)", npu)

    bmodel = tmp_path / "qwen2-1.5b_int4_seq512.bmodel"
    bmodel.write_bytes(os.urandom(1024))
    remote_bmodel = str(sshd_box.workdir / "models" / bmodel.name)
    ssh.push(bmodel, remote_bmodel)
    env = {
        "FARM_SIM_TPU_COUNT": "2",
        "FARM_SIM_TOKENS": "30",
        "FARM_SIM_STATE": str(sshd_box.workdir / "state"),
    }

    def chip1_used_mb() -> int:
        smi = ssh.run(["bm-smi", "--noloop"], env=env, timeout=20).stdout
        used = re.findall(r"(\d+)MB/\s*(\d+)MB", smi)
        assert len(used) == 2, smi
        return int(used[1][0])

    idle = chip1_used_mb()
    during: list[int] = []
    probe = threading.Timer(0.2, lambda: during.append(chip1_used_mb()))
    out = ssh.run(
        ["pipeline.py", "--model_path", remote_bmodel, "--devid", "1"],
        env=env,
        timeout=30,
        on_start=lambda _: probe.start(),
    )
    probe.join()
    assert out.exit_code == 0, out.stderr
    assert re.search(r"Load Time: \d+\.\d+ s", out.stdout)
    assert re.search(r"FTL: \d+\.\d+ s", out.stdout) and re.search(r"TPS: \d+\.\d+ token/s", out.stdout)
    assert "SYNTHETIC" in out.stdout
    assert during and during[0] > idle + 500  # the running 1.5B int4 demo holds ~0.8 GB on chip 1
    assert chip1_used_mb() == idle

    bad = ssh.run(["pipeline.py", "--model_path", remote_bmodel, "--devid", "5"], env=env, timeout=30)
    assert bad.exit_code != 0 and "bm_dev_request" in bad.stderr

    info = ssh.check_output(["model_tool", "--info", remote_bmodel])
    assert re.search(r"device mem size: \d+ \(weight: \d+, instruct: \d+, runtime: \d+\)", info)

    # the LLaMA-Adapter demo is configured by editing its module constants: run rendered copies
    from farm.script_constants import render_constants
    from farm.workloads import make_adapter
    from tests.fixtures.ssh import BOXES_DIR

    demo_src = (BOXES_DIR / "demo_bsz.py").read_text()
    rates = {}
    for batch in ("1", "5"):
        copy = sshd_box.workdir / f"demo_bsz_b{batch}.py"
        copy.write_text(render_constants(demo_src, {"BATCH_SIZE": batch, "INFER_LOOP": "2"}))
        demo = ssh.run(["python3", str(copy)], env={"FARM_SIM_STATE": env["FARM_SIM_STATE"]}, timeout=30)
        assert demo.exit_code == 0, demo.stderr
        assert len(re.findall(r"^\[tiral time\] \d+\.\d+$", demo.stdout, re.MULTILINE)) == 2
        rates[batch] = make_adapter("ascend_llama_adapter").parse(demo.stdout)["throughput_pictures_per_s"]
    assert rates["5"] > rates["1"]
    missing = ssh.run(["python3", str(copy)], env={"ASCEND_RT_VISIBLE_DEVICES": "7"}, timeout=30)
    assert missing.exit_code != 0 and "aclrtSetDevice" in missing.stderr
