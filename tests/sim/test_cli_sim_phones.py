"""``farm sim phones`` end to end: phones served, inventory printed and valid, clean exit on Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from farm.sim import free_port
from farm.sim.adb_server import AdbServer
from farm.specs.inventory import Inventory

pytestmark = pytest.mark.adb

# Runs the real CLI entry point; adds the sim command if main.py does not list it (yet).
LAUNCH = (
    "import sys; from farm.cli import main as m\n"
    "if 'farm.cli.sim_cmd' not in m.COMMAND_MODULES: m.COMMAND_MODULES.append('farm.cli.sim_cmd')\n"
    "sys.exit(m.main(sys.argv[1:]))\n"
)


def _farm(*args: str, prelude: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", prelude + LAUNCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Ctrl-C, then its exit code and stderr. ``communicate`` drains both pipes while waiting: a child that writes
    more than a pipe holds while stopping would otherwise block on the write and never exit. If it does not exit,
    the failure says where it was stuck (its Python stacks) and how it handles SIGINT."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        signals = [ln for ln in status.splitlines() if ln.startswith(("SigIgn", "SigCgt", "SigBlk"))]
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        try:
            argv = [spy, "dump", "--pid", str(proc.pid)]
            dump = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
            stacks = dump.stdout + dump.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            stacks = f"(no stack dump: {exc})"
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"farm sim phones did not exit 60 s after Ctrl-C; {signals}\n{stacks}\nstderr: {err}")
    return proc.returncode, err


def test_sim_phones_serves_prints_inventory_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    server = AdbServer(free_port(), home=str(tmp_path))
    proc = _farm("sim", "phones", "--count", "2", "--adb-port", str(server.port), "--seed", "5")
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while sum("serial:" in ln for ln in lines) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        data = yaml.safe_load("".join(lines))
        inventory = Inventory.model_validate(data)  # the lead's schema accepts what we print
        assert [d.id for d in inventory.devices] == ["vphone-0", "vphone-1"]
        assert all(d.synthetic for d in inventory.devices)
        assert data["devices"][0]["cores"] == {"little": [0, 1, 2, 3], "big": [4, 5, 6, 7]}
        serials = [d["adb"]["serial"] for d in data["devices"]]
        assert all(d["adb"]["server_port"] == server.port for d in data["devices"])
        states = server.states()
        assert [states.get(s) for s in serials] == ["device", "device"]
        assert server.run("-s", serials[1], "shell", "getprop ro.farm.seed").stdout == "6\n"
        # the storage profiles go to the phones in turn and are named in the output
        assert "# vphone-0: storage profile 'flash'" in "".join(lines)
        assert server.run("-s", serials[1], "shell", "getprop ro.farm.sim.storage").stdout == "ram\n"
    finally:
        rc, err = _interrupt(proc)
    assert rc == 0, err
    # It started the server, so it stopped it again.
    assert not server.is_running()


def test_sim_phones_rooted_have_su_through_adb(tmp_path: Path) -> None:
    server = AdbServer(free_port(), home=str(tmp_path))
    proc = _farm("sim", "phones", "--rooted", "--adb-port", str(server.port))
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while not any("serial:" in ln for ln in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        (serial,) = [d["adb"]["serial"] for d in yaml.safe_load("".join(lines))["devices"]]
        assert server.run("-s", serial, "shell", "su -c 'id -u'").stdout == "0\n"
    finally:
        rc, err = _interrupt(proc)
    assert rc == 0, err


def test_sim_phones_stops_on_sigint_when_started_in_the_background(tmp_path: Path) -> None:
    # A non-interactive shell starts `farm sim phones &` with SIGINT ignored; `kill -INT` must still stop it.
    server = AdbServer(free_port(), home=str(tmp_path))
    ignored = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    proc = _farm("sim", "phones", "--adb-port", str(server.port), prelude=ignored)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "serial:" not in (line := proc.stdout.readline()):
            assert line, "farm sim phones ended before serving"
    finally:
        rc, err = _interrupt(proc)
    assert rc == 0, err


def test_sim_phones_rejects_bad_arguments() -> None:
    proc = _farm("sim", "phones", "--count", "2", "--base-port", "5560", "--soc", "nope", "--storage", "ram,ssd")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "command line: --soc: unknown SoC 'nope'" in err
    assert "command line: --storage: unknown profile(s) ['ssd']" in err
    assert "command line: --base-port: ports 5554-5585" in err
