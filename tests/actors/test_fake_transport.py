"""What the fake transport adds beyond the transport contract (test_transport_contract.py): how commands are routed
to handlers, the record of calls, and faults on demand."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from actors.transports.fake import Call, FakeProcess, FakeTransport, Reply, block_until_killed
from farm.errors import ConnectionLostError, DeviceOfflineError, InfraError


def test_programs_are_found_by_name_then_the_handler_then_nothing() -> None:
    fake = FakeTransport(lambda proc: Reply(5, "fallback\n"), programs={"bench": lambda proc: Reply(0, "bench\n")})
    assert fake.run(["/data/local/tmp/bench"]).stdout == "bench\n"  # by the program's name, whatever its folder
    assert fake.run(["other"]).exit_code == 5
    nothing = FakeTransport().run(["bench", "-x"])
    assert nothing.exit_code == 127 and "bench: not found" in nothing.stderr


def test_output_written_while_running_comes_before_the_reply() -> None:
    def bench(proc: FakeProcess) -> Reply:
        proc.write("loading\n", "warn\n")
        return Reply(0, "done\n", "bye\n")

    done = FakeTransport(programs={"bench": bench}).run(["bench"])
    assert (done.stdout, done.stderr) == ("loading\ndone\n", "warn\nbye\n")
    silent = FakeTransport(programs={"bench": lambda proc: None}).run(["bench"])
    assert (silent.exit_code, silent.stdout) == (0, "")  # None is exit 0 with what was written


def test_every_call_is_recorded_in_order(tmp_path: Path) -> None:
    fake = FakeTransport(programs={"true": lambda proc: Reply(0)})
    fake.mkdir("/w")
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc")
    fake.run(["true"], env={"K": "v"}, workdir="/w", timeout=3.0)
    fake.check_output(["true"], timeout=5.0)
    fake.push(src, "/w/", 0o600)
    fake.pull("/w/a.bin", tmp_path / "back.bin")
    fake.close()
    assert fake.calls == [
        Call("run", ("true",), {"K": "v"}, "/w", 3.0),
        Call("check_output", ("true",), timeout=5.0),
        Call("push", (str(src),), path="/w/a.bin", mode=0o600),
        Call("pull", path="/w/a.bin"),
        Call("close"),
    ]
    assert [c.verb for c in fake.calls_of("run")] == ["run"] and fake.closes == 1
    assert [p.pid for p in fake.processes] == [4000, 4001] and all(p.state == "exited" for p in fake.processes)


def test_a_command_that_ignores_its_kill_is_a_lost_connection() -> None:
    release = threading.Event()

    def stubborn(proc: FakeProcess) -> Reply:
        release.wait(60)  # never looks at proc.killed
        return Reply(0)

    fake = FakeTransport(programs={"bench": stubborn}, kill_grace_s=0.1)
    try:
        with pytest.raises(ConnectionLostError, match="did not end after kill"):
            fake.run(["bench"], timeout=0.05)
        (proc,) = fake.running()
        assert proc.state == "orphaned" and proc.killed.is_set()
    finally:
        release.set()
    assert proc.ended.wait(60)


def test_a_failing_on_start_is_logged_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken(pid: int) -> None:
        raise RuntimeError("sampler broke")

    fake = FakeTransport(programs={"bench": lambda proc: Reply(0, "ok\n")})
    with caplog.at_level(logging.ERROR, logger="actors.transports.fake"):
        assert fake.run(["bench"], on_start=broken).stdout == "ok\n"
    assert any("on_start callback failed" in r.getMessage() for r in caplog.records)


def test_faults_on_demand(tmp_path: Path) -> None:
    fake = FakeTransport(programs={"bench": lambda proc: Reply(0, "ok\n")})
    fake.fail_next("run", ConnectionLostError("first"))
    fake.fail_next("run", DeviceOfflineError("second"))
    with pytest.raises(ConnectionLostError, match="first"):
        fake.run(["bench"])
    with pytest.raises(DeviceOfflineError, match="second"):
        fake.run(["bench"])
    assert fake.run(["bench"]).stdout == "ok\n" and len(fake.processes) == 1  # the failures started nothing

    fake.set_offline(reason="unplugged")
    for call in (lambda: fake.run(["bench"]), lambda: fake.check_output(["bench"]), lambda: fake.pull("/x", tmp_path)):
        with pytest.raises(DeviceOfflineError, match="unplugged"):
            call()
    fake.set_offline(False)
    assert fake.check_output(["bench"]) == "ok\n"


def test_a_dropped_link_leaves_the_command_running() -> None:
    def bench(proc: FakeProcess) -> Reply:
        proc.device.drop_link()
        return block_until_killed(proc)

    fake = FakeTransport(programs={"bench": bench})
    with pytest.raises(ConnectionLostError, match="connection lost while 'bench' ran"):
        fake.run(["bench"])
    (orphan,) = fake.running()
    assert orphan.state == "orphaned" and not orphan.killed.is_set()
    orphan.kill()
    assert orphan.ended.wait(60) and fake.running() == []


def test_files_on_the_fake_device() -> None:
    fake = FakeTransport()
    fake.write("/a/b/c.txt", "hi")
    assert fake.read("/a/b/c.txt") == b"hi" and fake.is_dir("/a/b") and fake.listdir("/a") == ["b"]
    first = fake.files["/a/b/c.txt"].mtime
    fake.write("/a/b/c.txt", "hi")
    assert fake.files["/a/b/c.txt"].mtime > first  # every write moves the device clock
    with pytest.raises(InfraError, match="no such file"):
        fake.read("/a/none")
    with pytest.raises(InfraError, match="is a directory"):
        fake.write("/a/b", "x")
