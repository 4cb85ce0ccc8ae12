"""Virtual phones driven through the real adb server, by adbutils and by the adb CLI."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import adbutils
import pytest
from adbutils.errors import AdbError

from farm.sim.adb_server import AdbServer
from farm.sim.phone import SimConfig, VirtualPhone
from tests.fixtures.adb import PhoneFactory

pytestmark = pytest.mark.adb

EVAL_RE = re.compile(r"llama_print_timings:\s+eval time =\s*([\d.]+) ms /\s*(\d+) runs.*?([\d.]+) tokens per second")
PROMPT_RE = re.compile(r"llama_print_timings: prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")


def _device(server: AdbServer, phone: VirtualPhone) -> adbutils.AdbDevice:
    return adbutils.AdbClient(host=server.host, port=server.port).device(phone.serial)


def _install_fake_llama(phone: VirtualPhone) -> None:
    """What a job would push: a binary (its bytes do not matter to the stand-in) and a model file."""
    phone.state.fs.mkdir("/data/local/tmp/llama", parents=True)
    phone.state.fs.write_bytes("/data/local/tmp/llama/mymain", b"\x7fELF synthetic")
    phone.state.fs.chmod("/data/local/tmp/llama/mymain", 0o755)
    phone.state.fs.write_bytes("/data/local/tmp/llama/llama-2-7b.Q4_0.gguf", b"GGUF synthetic")


def test_devices_list_shows_each_phone_as_device(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    phones = virtual_phones(3)
    listed = adb_server.run("devices", "-l").stdout
    for phone in phones:
        line = next(ln for ln in listed.splitlines() if ln.startswith(phone.serial))
        assert line.split()[1] == "device"
        assert "model:Farm_Virtual_Phone" in line
    client = adbutils.AdbClient(host=adb_server.host, port=adb_server.port)
    states = {d.serial: d.get_state() for d in client.device_list()}
    assert all(states[p.serial] == "device" for p in phones)
    features = set(client.device(phones[0].serial).get_features().split(","))
    assert features == {"shell_v2", "cmd", "stat_v2", "ls_v2", "fixed_push_mkdir"}


def test_shell_v2_keeps_exit_code_and_stderr_apart(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    d = _device(adb_server, phone)
    r = d.shell2("echo out; echo err >&2; exit 3", v2=True)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = d.shell2("cd /data/local/tmp && FOO=bar env | grep FOO; pwd", v2=True)
    assert (r.returncode, r.stdout) == (0, "FOO=bar\n/data/local/tmp\n")
    r = d.shell2("no-such-tool --help", v2=True)
    assert r.returncode == 127
    assert "no-such-tool: inaccessible or not found" in r.stderr
    r = d.shell2("false || echo $?; true && echo ok; echo $$", v2=True)
    lines = r.stdout.splitlines()
    assert lines[:2] == ["1", "ok"] and lines[2].isdigit()
    cli = adb_server.run("-s", phone.serial, "shell", "echo hi; exit 5")
    assert (cli.returncode, cli.stdout) == (5, "hi\n")


def test_legacy_shell_merges_streams(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    d = _device(adb_server, phone)
    assert d.shell("echo a; echo b >&2") == "a\nb"
    assert d.shell2("uname -r; nproc; taskset f0 nproc").output.split("\n")[:3] == [
        phone.state.soc.kernel,
        "8",
        "4",
    ]


def test_push_pull_50mb_with_matching_sha256(
    adb_server: AdbServer, virtual_phones: PhoneFactory, tmp_path: Path
) -> None:
    (phone,) = virtual_phones(1)
    d = _device(adb_server, phone)
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(50 * 1024 * 1024))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()

    t0 = time.perf_counter()
    d.sync.push(src, "/data/local/tmp/models/model.bin")  # parent made on the fly (fixed_push_mkdir)
    seconds = time.perf_counter() - t0
    assert 50 / seconds > 20, f"adbutils push only {50 / seconds:.0f} MB/s"
    out = d.shell2("sha256sum /data/local/tmp/models/model.bin", v2=True)
    assert out.stdout.split() == [digest, "/data/local/tmp/models/model.bin"]

    back = tmp_path / "back.bin"
    d.sync.pull("/data/local/tmp/models/model.bin", back)
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest

    cli = adb_server.run("-s", phone.serial, "push", str(src), "/data/local/tmp/")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert d.shell2("sha256sum /data/local/tmp/model.bin", v2=True).stdout.split()[0] == digest
    # The push went to the phone's private root, never to the host path it names.
    assert not Path("/data/local/tmp/model.bin").exists()
    # A directory-style target that does not exist fails like adbd (EISDIR), not silently.
    assert adb_server.run("-s", phone.serial, "push", str(src), "/data/local/tmp/nodir/").returncode != 0


def test_ls_and_stat(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    d = _device(adb_server, phone)
    d.sync.push(b"12345", "/data/local/tmp/a.txt", mode=0o640)
    st = d.sync.stat("/data/local/tmp/a.txt")
    assert (st.size, st.mode & 0o777) == (5, 0o640)
    assert d.sync.stat("/data/local/tmp/missing").mtime is None  # adbd answers a missing path with zeros
    assert {"a.txt", ".", ".."} <= {f.path for f in d.sync.list("/data/local/tmp")}
    ls = adb_server.run("-s", phone.serial, "ls", "/data/local/tmp")  # LIS2 through the CLI
    assert "a.txt" in ls.stdout
    assert d.shell2("ls /data/local/tmp", v2=True).stdout == "a.txt\n"
    assert d.shell2("ls /nope", v2=True).returncode == 1


def test_getprop_and_synthetic_label(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1, soc="sm8650")
    d = _device(adb_server, phone)
    assert d.getprop("ro.product.model") == "Farm Virtual Phone"
    assert d.getprop("ro.board.platform") == "pineapple"
    assert d.getprop("ro.farm.synthetic") == "1"
    assert "[ro.farm.synthetic]: [1]" in d.shell("getprop")


def test_llama_stand_in_output_parses_and_speeds_up_with_threads(
    adb_server: AdbServer, virtual_phones: PhoneFactory
) -> None:
    (phone,) = virtual_phones(1)
    _install_fake_llama(phone)
    d = _device(adb_server, phone)
    speeds = {}
    for threads in (1, 4):
        r = d.shell2(
            "cd /data/local/tmp/llama && LLAMA_LOAD_SPARSE_TENSOR=0 "
            f"./mymain -m llama-2-7b.Q4_0.gguf -t {threads} -n 16 -p 'tell me a story'",
            v2=True,
        )
        assert r.returncode == 0, r.stderr
        assert "# synthetic output from farm virtual phone" in r.stderr
        m = EVAL_RE.search(r.stderr)
        assert m is not None, r.stderr
        assert int(m[2]) == 15  # -n 16: the first token comes from the prompt pass
        assert PROMPT_RE.search(r.stderr) is not None
        speeds[threads] = float(m[3])
    assert speeds[4] > 2 * speeds[1]
    missing = d.shell2("/data/local/tmp/llama/mymain -m /nope.gguf", v2=True)
    assert missing.returncode == 1 and "failed to open /nope.gguf" in missing.stderr


def test_benchmark_killed_mid_run(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    slow = SimConfig(time_scale=1.0, min_wall_s=4.0, max_wall_s=4.0)
    (phone,) = virtual_phones(1, config=slow)
    _install_fake_llama(phone)
    d = _device(adb_server, phone)
    result: dict[str, adbutils.ShellReturn] = {}
    cmd = "cd /data/local/tmp/llama && exec ./mymain -m llama-2-7b.Q4_0.gguf -t 4 -n 64"
    runner = threading.Thread(target=lambda: result.update(r=d.shell2(cmd, v2=True)))
    t0 = time.perf_counter()
    runner.start()
    pid = None
    while pid is None and time.perf_counter() - t0 < 3:
        procs = d.shell2("ps -A", v2=True).stdout.splitlines()[1:]
        pid = next((int(ln.split()[1]) for ln in procs if ln.endswith(" mymain")), None)
    assert pid is not None
    rss = []
    for _ in range(2):
        status = d.shell2(f"cat /proc/{pid}/status", v2=True).stdout
        rss.append(int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]))  # type: ignore[index]
        time.sleep(0.4)
    assert rss[1] > rss[0]
    assert d.shell2(f"kill -9 -{pid}", v2=True).returncode == 0  # exec kept pid == process group id
    runner.join(5)
    assert result["r"].returncode == 137
    assert "llama_print_timings" not in result["r"].stderr
    assert time.perf_counter() - t0 < 3.5
    assert d.shell2(f"cat /proc/{pid}/status", v2=True).returncode == 1

    # SIGTERM to a child of the shell: the shell reports 143 as its last status.
    runner = threading.Thread(target=lambda: result.update(r=d.shell2("sleep 5; echo not-reached", v2=True)))
    runner.start()
    time.sleep(0.3)
    sleepers = [ln.split()[1] for ln in d.shell2("ps", v2=True).stdout.splitlines() if ln.endswith(" sleep")]
    d.shell2(f"kill {sleepers[0]}", v2=True)
    runner.join(5)
    assert result["r"].returncode == 0 and result["r"].stdout == "not-reached\n"  # `;` runs on after the kill


def test_connection_drop_mid_command_then_recovery(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    d = _device(adb_server, phone)
    phone.drop_on_command("sleep 3", delay=0.2)
    t0 = time.perf_counter()
    with pytest.raises(EOFError):  # shell v2 without its exit frame
        d.shell2("echo started; sleep 3", v2=True)
    assert time.perf_counter() - t0 < 2
    with pytest.raises(AdbError, match="offline"):
        d.shell2("echo again", v2=True)
    adb_server.wait_for([phone.serial], "device", timeout=12)  # the server reconnects by itself
    assert d.shell2("echo back", v2=True).stdout == "back\n"

    # Refused reconnects push the server's next retry ~10 s out; disconnect + connect is faster.
    phone.drop_now(refuse_for=0.3)
    time.sleep(0.5)
    adb_server.disconnect(phone.serial)
    adb_server.connect(phone.serial)
    adb_server.wait_for([phone.serial], "device", timeout=5)
    assert phone.faults.drops == 2


def test_stop_and_start_on_the_same_port_keeps_files(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    d = _device(adb_server, phone)
    d.shell2("echo kept > /data/local/tmp/f", v2=True)
    port = phone.port
    phone.stop()
    with pytest.raises(AdbError):
        d.shell2("echo x", v2=True)
    phone.start()
    assert phone.port == port
    adb_server.connect(phone.serial)
    adb_server.wait_for([phone.serial], "device", timeout=10)
    assert d.shell2("cat /data/local/tmp/f", v2=True).stdout == "kept\n"


def test_unauthorized_phone(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1, refuse_auth=True)
    assert adb_server.states()[phone.serial] == "unauthorized"
    with pytest.raises(AdbError):
        _device(adb_server, phone).shell2("echo hi", v2=True)
    # A phone that asks for AUTH and accepts the server's key is a normal device.
    (accepting,) = virtual_phones(1, require_auth=True)
    assert _device(adb_server, accepting).shell2("echo hi", v2=True).stdout == "hi\n"


def test_install_exec_out_and_stdin(adb_server: AdbServer, virtual_phones: PhoneFactory, tmp_path: Path) -> None:
    (phone,) = virtual_phones(1)
    apk = tmp_path / "app.apk"
    apk.write_bytes(os.urandom(300_000))
    install = adb_server.run("-s", phone.serial, "install", str(apk))  # exec:cmd package 'install' -S N
    assert (install.returncode, install.stdout.splitlines()[-1]) == (0, "Success")
    raw = adb_server.run("-s", phone.serial, "exec-out", "echo raw")
    assert raw.stdout == "raw\n"
    piped = subprocess.run(
        [
            "adb",
            "-P",
            str(adb_server.port),
            "-s",
            phone.serial,
            "shell",
            "cat > /data/local/tmp/in; cat /data/local/tmp/in",
        ],
        input="through stdin\n",
        capture_output=True,
        text=True,
        env=adb_server.env,
        timeout=30,
        check=False,
    )
    assert piped.stdout == "through stdin\n"


def test_unknown_service_is_closed(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    d = _device(adb_server, phone)
    with pytest.raises(AdbError):
        d.open_transport("framebuffer:").close()
    assert d.shell2("echo still-fine", v2=True).stdout == "still-fine\n"
