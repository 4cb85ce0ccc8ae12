"""What only AdbTransport does, through the real adb server (Debian ``adb``) against virtual phones: command quoting,
reconnects and faults, the server itself, parallel pushes. What every transport does: test_transport_contract.py."""

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
from farm.errors import ConnectionLostError, DeviceOfflineError
from farm.sim.adb_server import AdbServer
from farm.sim.phone import VirtualPhone, free_port
from farm.specs.inventory import AdbConnection
from tests.fixtures.adb import PhoneFactory

pytestmark = pytest.mark.adb


def transport(server: AdbServer, phone: VirtualPhone, **kwargs: float) -> AdbTransport:
    return AdbTransport(AdbConnection(serial=phone.serial, server_port=server.port), phone.name, **kwargs)


# -- commands ---------------------------------------------------------------------------------------------------


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
