"""The transport contract: the same assertions against every transport, so device code can rely on any of them.

Run against the local transport (this host), adb (the real adb server and a virtual phone), ssh (a real OpenSSH sshd
on loopback) and the in-memory fake (:mod:`actors.transports.fake`), whose handlers answer the few commands used
here. What only one transport does (adb reconnects, SSH host keys, local process-group details) stays in that
transport's own test file.

Each transport comes with a :class:`Side`: a view of the device that goes around the transport (the phone's
filesystem and process table, the box's disk, the fake's records), so a test checks what really happened there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.transports.base import Transport
from actors.transports.fake import FakeProcess, FakeTransport, Handler, Reply, block_until_killed
from actors.transports.local import LocalTransport
from farm.errors import ConnectionLostError, DeviceOfflineError, InfraError, RunRefused

# Commands the suite runs: POSIX sh that the virtual phone's shell also speaks; the fake answers them by name.
STREAMS = ["sh", "-c", "echo out; echo err >&2; exit 3"]
ENV_AND_WORKDIR = ["sh", "-c", 'echo "$FARM_A|$FARM_B"; pwd']
FAILS = ["sh", "-c", "echo partial; echo boom >&2; exit 3"]
# Where the device has Python (not the virtual phone): argument boundaries and both pipes filled at once.
ARGV_AS_JSON = ["python3", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]
BOTH_PIPES = [
    "python3",
    "-c",
    # 8 MiB on stderr before any stdout: reading the streams one after the other would stall
    "import sys; sys.stderr.write('e' * (8 << 20)); sys.stderr.flush(); sys.stdout.write('o' * (8 << 20))",
]
HOSTILE = 'it\'s $HOME; `touch CANARY` $(touch CANARY) "q" \\ | & *'


def sleeper() -> list[str]:
    """A ``sleep`` with a duration no other test uses, so its processes can be told apart on a shared machine."""
    return ["sleep", str(100_000 + int(uuid.uuid4().int % 800_000))]


class Side(ABC):
    """The device as seen around its transport (see the module docstring)."""

    transport: Transport
    scratch: str  # a fresh directory on the device for this test

    @abstractmethod
    def write(self, path: str, data: bytes) -> None: ...

    @abstractmethod
    def read(self, path: str) -> bytes: ...

    @abstractmethod
    def mode(self, path: str) -> int: ...

    @abstractmethod
    def listdir(self, path: str) -> list[str]: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def mkdir(self, path: str) -> None: ...

    @abstractmethod
    def running(self, needle: str) -> list[int]:
        """pids of live processes whose command line contains ``needle``."""

    @abstractmethod
    def alive(self, pid: int) -> bool: ...


class HostSide(Side):
    """Local and SSH: the device is this machine."""

    def __init__(self, transport: Transport, scratch: Path) -> None:
        self.transport = transport
        scratch.mkdir(parents=True, exist_ok=True)
        self.scratch = str(scratch)

    def write(self, path: str, data: bytes) -> None:
        Path(path).write_bytes(data)

    def read(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def mode(self, path: str) -> int:
        return Path(path).stat().st_mode & 0o7777

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def exists(self, path: str) -> bool:
        return Path(path).exists()

    def mkdir(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def running(self, needle: str) -> list[int]:
        out = subprocess.run(["ps", "-eo", "pid,stat,args"], check=True, capture_output=True, text=True).stdout
        rows = [line.split(None, 2) for line in out.splitlines()[1:]]
        return [int(r[0]) for r in rows if len(r) == 3 and needle in r[2] and "ps -eo" not in r[2] and r[1][0] != "Z"]

    def alive(self, pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"


class PhoneSide(Side):
    """adb: the virtual phone's own filesystem and process table."""

    def __init__(self, transport: Transport, phone: object) -> None:
        from farm.sim.phone import VirtualPhone

        assert isinstance(phone, VirtualPhone)
        self.transport = transport
        self.phone = phone
        self.scratch = f"/data/local/tmp/contract-{uuid.uuid4().hex[:8]}"
        self.mkdir(self.scratch)

    def write(self, path: str, data: bytes) -> None:
        self.phone.state.fs.write_bytes(path, data)

    def read(self, path: str) -> bytes:
        return self.phone.state.fs.read_bytes(path)

    def mode(self, path: str) -> int:
        st = self.phone.state.fs.stat(path)
        assert st is not None, path
        return st.mode & 0o7777

    def listdir(self, path: str) -> list[str]:
        return self.phone.state.fs.listdir(path)

    def exists(self, path: str) -> bool:
        return self.phone.state.fs.exists(path)

    def mkdir(self, path: str) -> None:
        self.phone.state.fs.mkdir(path, parents=True)

    def running(self, needle: str) -> list[int]:
        return [p.pid for p in self.phone.state.procs.running() if needle in " ".join(p.argv)]

    def alive(self, pid: int) -> bool:
        return self.phone.state.procs.get(pid) is not None


class FakeSide(Side):
    """The fake: its in-memory files and process records."""

    def __init__(self) -> None:
        self.fake = FakeTransport(programs=_fake_programs(), label="fake-device", kill_grace_s=5.0)
        self.transport = self.fake
        self.scratch = "/data/contract"
        self.fake.mkdir(self.scratch)

    def write(self, path: str, data: bytes) -> None:
        self.fake.write(path, data)

    def read(self, path: str) -> bytes:
        return self.fake.read(path)

    def mode(self, path: str) -> int:
        return self.fake.files[path].mode

    def listdir(self, path: str) -> list[str]:
        return self.fake.listdir(path)

    def exists(self, path: str) -> bool:
        return path in self.fake.files or self.fake.is_dir(path)

    def mkdir(self, path: str) -> None:
        self.fake.mkdir(path)

    def running(self, needle: str) -> list[int]:
        return [p.pid for p in self.fake.running() if needle in " ".join(p.argv)]

    def alive(self, pid: int) -> bool:
        return any(p.pid == pid for p in self.fake.running())


def _fake_programs() -> dict[str, Handler]:
    """What the fake device answers: the commands above, done in Python on its own files."""

    def echo(proc: FakeProcess) -> Reply:
        args = list(proc.argv[1:])
        newline = not (args and args[0] == "-n")
        return Reply(0, " ".join(args[0 if newline else 1 :]) + ("\n" if newline else ""))

    def touch(proc: FakeProcess) -> Reply:
        for name in proc.argv[1:]:
            proc.device.write(name if name.startswith("/") else f"{proc.workdir or ''}/{name}", b"")
        return Reply(0)

    def sh(proc: FakeProcess) -> Reply:
        script = proc.argv[2]
        if proc.argv[:3] == tuple(STREAMS):
            return Reply(3, "out\n", "err\n")
        if proc.argv[:3] == tuple(FAILS):
            return Reply(3, "partial\n", "boom\n")
        if proc.argv[:3] == tuple(ENV_AND_WORKDIR):
            return Reply(0, f"{proc.env.get('FARM_A', '')}|{proc.env.get('FARM_B', '')}\n{proc.workdir or '/'}\n")
        if script.startswith("sleep "):
            return block_until_killed(proc)
        return Reply(2, "", f"sh: cannot run {script!r} on the fake\n")

    def python3(proc: FakeProcess) -> Reply:
        if proc.argv[:3] == tuple(ARGV_AS_JSON):
            return Reply(0, json.dumps(proc.argv[3:]) + "\n")
        if proc.argv == tuple(BOTH_PIPES):
            return Reply(0, "o" * (8 << 20), "e" * (8 << 20))
        return Reply(1, "", "python3: the fake runs no Python\n")

    return {
        "python3": python3,
        "echo": echo,
        "true": lambda proc: Reply(0),
        "touch": touch,
        "sleep": block_until_killed,
        "sh": sh,
    }


@pytest.fixture(
    params=[
        "local",
        pytest.param("adb", marks=pytest.mark.adb),
        pytest.param("ssh", marks=pytest.mark.ssh),
        "fake",
    ]
)
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Side]:
    kind = request.param
    made: Side
    if kind == "local":
        made = HostSide(LocalTransport(kill_grace_s=0.5), tmp_path / "device")
    elif kind == "ssh":
        from actors.transports.ssh import SshTransport

        box = request.getfixturevalue("running_sshd_box")
        made = HostSide(SshTransport(box.config), box.workdir / f"contract-{uuid.uuid4().hex[:8]}")
    elif kind == "adb":
        from actors.transports.adb import AdbTransport
        from farm.specs.inventory import AdbConnection

        server = request.getfixturevalue("adb_server")
        (phone,) = request.getfixturevalue("virtual_phones")(1)
        made = PhoneSide(AdbTransport(AdbConnection(serial=phone.serial, server_port=server.port), phone.name), phone)
    else:
        made = FakeSide()
    try:
        yield made
    finally:
        made.transport.close()


def _wait_gone(side: Side, needle: str, seconds: float = 10.0) -> list[int]:
    """The processes still matching ``needle`` once they had ``seconds`` to go (a kill is not instantaneous)."""
    deadline = time.monotonic() + seconds
    while (left := side.running(needle)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# -- run --------------------------------------------------------------------------------------------------------


def test_is_a_transport(side: Side) -> None:
    assert isinstance(side.transport, Transport)


def test_exit_code_and_separate_streams(side: Side) -> None:
    done = side.transport.run(STREAMS)
    assert (done.exit_code, done.stdout, done.stderr) == (3, "out\n", "err\n")  # no pid marker line left in
    assert not done.timed_out and not done.cancelled
    assert done.pid is not None and done.pid > 1 and done.duration_s > 0


def test_output_without_trailing_newline_and_no_output(side: Side) -> None:
    assert side.transport.run(["echo", "-n", "abc"]).stdout == "abc"
    silent = side.transport.run(["true"])
    assert (silent.exit_code, silent.stdout, silent.stderr) == (0, "", "")


def test_hostile_env_value_and_workdir_arrive_verbatim(side: Side) -> None:
    workdir = f"{side.scratch}/dir with space; and 'quote'"
    side.mkdir(workdir)
    value = HOSTILE.replace("CANARY", f"{side.scratch}/canary")
    done = side.transport.run(ENV_AND_WORKDIR, env={"FARM_A": value, "FARM_B": "5"}, workdir=workdir)
    assert (done.exit_code, done.stdout, done.stderr) == (0, f"{value}|5\n{workdir}\n", "")  # nothing expanded
    assert not side.exists(f"{side.scratch}/canary")


def test_hostile_arguments_are_data_not_code(side: Side) -> None:
    canary = f"{side.scratch}/canary"
    args = [
        *("a b", f"$(touch {canary})", f"`touch {canary}`", "it's", f";touch {canary}", f"| touch {canary} &"),
        *("*", "", '"q"', "  spaces  ", "a\nb", "--flag=$HOME", "\\"),
    ]
    done = side.transport.run(["echo", *args])
    assert (done.exit_code, done.stdout) == (0, " ".join(args) + "\n")
    assert not side.exists(canary)


def test_missing_workdir_and_missing_program_are_exit_127(side: Side) -> None:
    missing = side.transport.run(["true"], workdir=f"{side.scratch}/nope")
    assert missing.exit_code == 127 and "nope" in missing.stderr
    assert not side.exists(f"{side.scratch}/nope")  # not created on the way
    absent = side.transport.run([f"{side.scratch}/farm-no-such-binary", "x"])
    assert absent.exit_code == 127 and "farm-no-such-binary" in absent.stderr and "not found" in absent.stderr


def test_bad_env_name_and_empty_argv_are_refused(side: Side) -> None:
    canary = f"{side.scratch}/canary"
    with pytest.raises(RunRefused):
        side.transport.run([])
    if not isinstance(side.transport, LocalTransport):  # a subprocess env takes any key: nothing is parsed
        with pytest.raises(RunRefused, match="environment variable name"):
            side.transport.run(["touch", canary], env={f"A;touch {canary}": "1"})
    assert not side.exists(canary)


def test_timeout_kills_the_command(side: Side) -> None:
    argv = sleeper()
    t0 = time.monotonic()
    done = side.transport.run(["sh", "-c", shlex.join(argv)], timeout=0.5)
    elapsed = time.monotonic() - t0
    assert done.timed_out and done.exit_code is None and not done.cancelled
    assert 0.4 <= done.duration_s < 5 and elapsed < 10  # far below the sleep: killed, not waited for
    assert done.pid is not None
    assert _wait_gone(side, shlex.join(argv)) == [] and not side.alive(done.pid)


def test_cancel_from_another_thread_kills_the_command(side: Side) -> None:
    argv = sleeper()
    cancel = threading.Event()
    # cancelled from another thread once the command is known to run (on_start): no timer racing its start

    def started(_pid: int) -> None:
        threading.Thread(target=cancel.set).start()

    done = side.transport.run(["sh", "-c", shlex.join(argv)], cancel=cancel, timeout=60, on_start=started)
    assert done.cancelled and not done.timed_out and done.exit_code is None
    assert done.duration_s < 5
    assert _wait_gone(side, shlex.join(argv)) == []  # the shell and its sleep


def test_cancel_set_before_the_run_starts_nothing(side: Side) -> None:
    cancel = threading.Event()
    cancel.set()
    marker = f"{side.scratch}/ran"
    done = side.transport.run(["touch", marker], cancel=cancel)
    assert done.cancelled and done.exit_code is None and done.pid is None
    assert not side.exists(marker)


def test_on_start_gets_the_pid_while_the_command_runs(side: Side) -> None:
    seen: list[tuple[int, bool]] = []
    argv = sleeper()
    cancel = threading.Event()

    def on_start(pid: int) -> None:
        seen.append((pid, side.alive(pid)))
        cancel.set()

    done = side.transport.run(argv, on_start=on_start, cancel=cancel, timeout=60)
    assert seen == [(done.pid, True)]


def _needs_python(side: Side) -> None:
    if isinstance(side, PhoneSide):
        pytest.skip("the virtual phone has no python3")


def test_arguments_keep_their_boundaries(side: Side) -> None:
    _needs_python(side)
    canary = f"{side.scratch}/canary"
    nasty = ["a b", "", "  spaces  ", "a\nb", f"$(touch {canary})", "it's", 'say "hi"', "\\", "*", "--flag=$HOME"]
    done = side.transport.run([*ARGV_AS_JSON, *nasty], env={"X": f"$(touch {canary})"})
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == nasty
    assert not side.exists(canary)


def test_large_output_on_both_pipes_does_not_deadlock(side: Side) -> None:
    _needs_python(side)
    done = side.transport.run(BOTH_PIPES, timeout=60)
    assert done.exit_code == 0 and not done.timed_out
    assert done.stdout == "o" * (8 << 20) and done.stderr == "e" * (8 << 20)


# -- check_output -------------------------------------------------------------------------------------------------


def test_check_output_returns_stdout(side: Side) -> None:
    assert side.transport.check_output(["echo", "probe", "it's"]) == "probe it's\n"


def test_check_output_failure_is_device_offline_naming_command_code_and_stderr(side: Side) -> None:
    with pytest.raises(DeviceOfflineError) as info:
        side.transport.check_output(FAILS)
    message = str(info.value)
    assert shlex.join(FAILS) in message and "exited 3" in message and "boom" in message


def test_check_output_timeout_is_connection_lost(side: Side) -> None:
    argv = sleeper()
    with pytest.raises(ConnectionLostError):
        side.transport.check_output(argv, timeout=0.5)
    assert _wait_gone(side, shlex.join(argv)) == []


# -- files --------------------------------------------------------------------------------------------------------


def test_push_once_per_content_with_mode_and_no_leftovers(side: Side, tmp_path: Path) -> None:
    src = tmp_path / "model.gguf"
    src.write_bytes(os.urandom(3 * 65536 + 123))  # not a multiple of any chunk size
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    folder = f"{side.scratch}/models/nested"
    target = f"{folder}/model.gguf"

    first = side.transport.push(src, folder + "/", 0o640)
    assert (first.dst, first.sha256, first.size, first.bytes_pushed) == (target, digest, src.stat().st_size, first.size)
    assert side.read(target) == src.read_bytes() and side.mode(target) & 0o777 == 0o640
    assert side.listdir(folder) == ["model.gguf", "model.gguf.farm-sha256"]  # no temp file left behind

    again = side.transport.push(src, target, 0o600)
    assert again.bytes_pushed == 0 and again.sha256 == digest
    if isinstance(side, PhoneSide):  # one shell round trip (the adb suite's bound; SFTP's several trips vary with load)
        assert again.seconds < 0.5
    assert side.mode(target) & 0o777 == 0o600  # the mode is applied even when nothing moved

    side.write(target, b"tampered")  # changed on the device behind our back: pushed again
    assert side.transport.push(src, target).bytes_pushed == src.stat().st_size
    assert side.read(target) == src.read_bytes()

    src.write_bytes(b"v2")  # changed locally: pushed again
    changed = side.transport.push(src, target)
    assert changed.bytes_pushed == 2 and changed.sha256 == hashlib.sha256(b"v2").hexdigest()
    assert side.read(target) == b"v2"
    assert side.listdir(folder) == ["model.gguf", "model.gguf.farm-sha256"]


def test_push_of_a_missing_source_is_an_infra_error_and_leaves_the_target(side: Side, tmp_path: Path) -> None:
    target = f"{side.scratch}/keep.bin"
    side.write(target, b"old")
    with pytest.raises(InfraError, match=r"cannot read .*absent\.bin"):
        side.transport.push(tmp_path / "absent.bin", target)
    assert side.read(target) == b"old"


def test_pull_round_trip_and_missing_file(side: Side, tmp_path: Path) -> None:
    remote = f"{side.scratch}/log.bin"
    side.write(remote, os.urandom(1 << 20))
    local = tmp_path / "back" / "log.bin"
    side.transport.pull(remote, local)
    assert local.read_bytes() == side.read(remote)
    with pytest.raises(InfraError):
        side.transport.pull(f"{side.scratch}/nope", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
    assert [p.name for p in tmp_path.iterdir() if "farm-tmp" in p.name] == []


def test_close_then_use_again(side: Side, tmp_path: Path) -> None:
    assert side.transport.run(["echo", "before"]).stdout == "before\n"
    side.transport.close()
    assert side.transport.run(["echo", "after"]).stdout == "after\n"
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc")
    side.transport.close()
    assert side.transport.push(src, f"{side.scratch}/a.bin").bytes_pushed == 3
    side.transport.close()
    side.transport.close()  # closing twice is harmless
