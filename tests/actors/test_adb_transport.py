"""AdbTransport through the real adb server (Debian ``adb``) against virtual phones: commands, faults, pushes."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from actors.transports.adb import AdbTransport, adb_devices
from actors.transports.remote_shell import build_command
from farm.errors import ConnectionLostError, DeviceOfflineError, RunRefused
from farm.sim.adb_server import AdbServer
from farm.sim.phone import VirtualPhone, free_port
from farm.specs.inventory import AdbConnection
from tests.fixtures.adb import PhoneFactory

pytestmark = pytest.mark.adb


def transport(server: AdbServer, phone: VirtualPhone, **kwargs: float) -> AdbTransport:
    return AdbTransport(AdbConnection(serial=phone.serial, server_port=server.port), phone.name, **kwargs)


def running(phone: VirtualPhone, name: str) -> list[int]:
    return [p.pid for p in phone.state.procs.running() if p.name == name]


# -- commands ---------------------------------------------------------------------------------------------------


def test_exit_code_streams_env_workdir_and_pid(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    t = transport(adb_server, phone)
    phone.shell("mkdir -p '/data/local/tmp/with space'")
    pids: list[int] = []
    done = t.run(
        ["sh", "-c", 'echo "$GREETING"; pwd; echo oops >&2; exit 7'],
        env={"GREETING": "it's $HOME; `x`"},
        workdir="/data/local/tmp/with space",
        on_start=pids.append,
    )
    assert done.exit_code == 7
    assert done.stdout == "it's $HOME; `x`\n/data/local/tmp/with space\n"  # no marker line, nothing expanded
    assert done.stderr == "oops\n"
    assert pids == [done.pid] and done.pid is not None and done.duration_s > 0


def test_arguments_are_data_not_code(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    args = ["a b", "$(rm -rf /)", "it's", ";ls", "*", ""]
    done = transport(adb_server, phone).run(["echo", *args])
    assert done.exit_code == 0 and done.stdout == " ".join(args) + "\n"


def test_missing_workdir_and_binary_are_failed_runs(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    t = transport(adb_server, phone)
    assert t.run(["true"], workdir="/data/local/tmp/nope").exit_code == 127
    missing = t.run(["/data/local/tmp/no-such-binary"])
    assert missing.exit_code == 127 and "not found" in missing.stderr
    with pytest.raises(RunRefused, match="environment variable name"):
        t.run(["true"], env={"BAD-KEY": "1"})


def test_timeout_kills_the_benchmark_on_the_phone(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    t0 = time.monotonic()
    done = transport(adb_server, phone).run(["sleep", "30"], timeout=0.5)
    assert done.timed_out and done.exit_code is None and not done.cancelled
    assert 0.4 < done.duration_s < 5 and time.monotonic() - t0 < 10
    assert running(phone, "sleep") == []


def test_cancel_from_another_thread(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    done = transport(adb_server, phone).run(["sh", "-c", "sleep 30"], cancel=cancel)
    assert done.cancelled and done.exit_code is None
    assert running(phone, "sleep") == [] and running(phone, "sh") == []


def test_build_command_quotes_everything() -> None:
    line = build_command(["./main", "-p", "a 'b'"], "M=", {"K": "v w"}, "/data/x y")
    assert line == "export K='v w'; cd '/data/x y' || exit 127; echo M=$$; exec ./main -p 'a '\"'\"'b'\"'\"''"


# -- faults -----------------------------------------------------------------------------------------------------


def test_drop_mid_command_is_connection_lost_then_recovers(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1)
    t = transport(adb_server, phone)
    phone.drop_on_command("sleep 5", delay=0.3)
    with pytest.raises(ConnectionLostError, match="no exit status"):
        t.run(["sleep", "5"])
    # the phone still listens: the next command gets through (the server or our reconnect brings it back)
    assert t.run(["echo", "back"]).stdout == "back\n"
    assert t.state() == "device"


def test_phone_refusing_connections_is_offline_until_it_listens_again(
    adb_server: AdbServer, virtual_phones: PhoneFactory
) -> None:
    (phone,) = virtual_phones(1)
    t = transport(adb_server, phone, reconnect_interval_s=0.2)
    phone.drop_now(refuse_for=2.5)
    time.sleep(0.2)
    with pytest.raises(DeviceOfflineError):
        t.check_output(["echo", "hi"])
    assert t.state() != "device"
    deadline = time.monotonic() + 15
    while t.state() != "device":  # each call may reconnect: disconnect + connect
        assert time.monotonic() < deadline, "phone never came back"
        time.sleep(0.2)
    assert t.check_output(["echo", "hi"]) == "hi\n" and t.reconnects >= 1


def test_unauthorized_phone(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    (phone,) = virtual_phones(1, refuse_auth=True)
    t = transport(adb_server, phone)
    assert t.state() == "unauthorized"
    with pytest.raises(DeviceOfflineError, match="unauthorized"):
        t.run(["true"])


def test_no_adb_server_is_offline_and_none_is_started(adb_server: AdbServer) -> None:
    port = free_port()
    t = AdbTransport(AdbConnection(serial="127.0.0.1:6000", server_port=port), "ghost")
    with pytest.raises(DeviceOfflineError, match="start-server"):
        t.check_output(["true"])
    with pytest.raises(ConnectionRefusedError):  # the transport did not start a server behind our back
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_adb_devices_lists_the_servers_phones(adb_server: AdbServer, virtual_phones: PhoneFactory) -> None:
    phones = virtual_phones(2)
    listed = {d["serial"]: d for d in adb_devices("127.0.0.1", adb_server.port)}
    for phone in phones:
        assert listed[phone.serial]["state"] == "device"
        assert listed[phone.serial]["model"] == "Farm_Virtual_Phone"


# -- files ------------------------------------------------------------------------------------------------------


def test_push_once_per_content_then_pull_back(
    adb_server: AdbServer, virtual_phones: PhoneFactory, tmp_path: Path
) -> None:
    (phone,) = virtual_phones(1)
    t = transport(adb_server, phone)
    src = tmp_path / "model.gguf"
    src.write_bytes(os.urandom(3 * 65536 + 123))  # not a multiple of the chunk size
    digest = hashlib.sha256(src.read_bytes()).hexdigest()

    first = t.push(src, "/data/local/tmp/m/", 0o640)
    assert (first.dst, first.sha256, first.bytes_pushed) == ("/data/local/tmp/m/model.gguf", digest, src.stat().st_size)
    assert phone.shell("sha256sum /data/local/tmp/m/model.gguf").stdout.split()[0] == digest
    assert phone.shell("stat -c %a /data/local/tmp/m/model.gguf").stdout.strip() == "640"
    assert phone.shell("ls /data/local/tmp/m").stdout.split() == ["model.gguf", "model.gguf.farm-sha256"]

    again = t.push(src, "/data/local/tmp/m/model.gguf", 0o640)
    assert again.bytes_pushed == 0 and again.sha256 == digest and again.seconds < 0.5

    # changed on the phone behind our back: size/mtime no longer match the marker, so it is pushed again
    phone.shell("echo tampered > /data/local/tmp/m/model.gguf")
    assert t.push(src, "/data/local/tmp/m/model.gguf").bytes_pushed == src.stat().st_size
    # changed locally: pushed again
    src.write_bytes(os.urandom(1000))
    assert t.push(src, "/data/local/tmp/m/model.gguf").bytes_pushed == 1000

    back = tmp_path / "back" / "model.gguf"
    t.pull("/data/local/tmp/m/model.gguf", back)
    assert back.read_bytes() == src.read_bytes()


def test_push_to_several_phones_in_parallel(
    adb_server: AdbServer, virtual_phones: PhoneFactory, tmp_path: Path
) -> None:
    phones = virtual_phones(3)
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(4 << 20))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    results: dict[str, int] = {}
    errors: list[BaseException] = []

    def push(phone: VirtualPhone) -> None:
        try:
            results[phone.name] = transport(adb_server, phone).push(src, "/data/local/tmp/w.bin").bytes_pushed
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(p,)) for p in phones]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == [] and sorted(results.values()) == [4 << 20] * 3
    for phone in phones:
        assert phone.shell("sha256sum /data/local/tmp/w.bin").stdout.split()[0] == digest


def test_push_drop_is_connection_lost(adb_server: AdbServer, virtual_phones: PhoneFactory, tmp_path: Path) -> None:
    (phone,) = virtual_phones(1)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(64 << 20))
    phone.drop_after(0.05)
    with pytest.raises((ConnectionLostError, DeviceOfflineError)):
        transport(adb_server, phone).push(src, "/data/local/tmp/big.bin")
    assert "big.bin\n" not in phone.shell("ls /data/local/tmp").stdout  # never a half file under the real name
