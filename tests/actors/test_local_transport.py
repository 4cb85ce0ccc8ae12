"""LocalTransport against real subprocesses: output capture, process-group kills, spawn failures, copies."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from actors.host_probe import group_members
from actors.transports.base import Transport
from actors.transports.local import LocalTransport, parse_cores, taskset_argv
from farm.errors import InfraError


@pytest.fixture
def transport() -> LocalTransport:
    return LocalTransport(kill_grace_s=0.5)


def _group_gone(pgid: int) -> bool:
    return not group_members(pgid)


def test_is_a_transport(transport: LocalTransport) -> None:
    assert isinstance(transport, Transport)


def test_captures_stdout_stderr_and_exit_code(transport: LocalTransport) -> None:
    done = transport.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.exit_code, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert not done.timed_out and not done.cancelled
    assert done.pid is not None and done.duration_s > 0


def test_large_output_on_both_pipes_does_not_deadlock(transport: LocalTransport) -> None:
    code = "import sys; sys.stdout.write('o' * 3_000_000); sys.stderr.write('e' * 3_000_000)"
    done = transport.run([sys.executable, "-c", code], timeout=30)
    assert done.exit_code == 0
    assert len(done.stdout) == 3_000_000 and len(done.stderr) == 3_000_000


def test_env_is_merged_over_os_environ(transport: LocalTransport) -> None:
    done = transport.run(["sh", "-c", 'echo "$FARM_T_X:$PATH"'], env={"FARM_T_X": "given"})
    given, path = done.stdout.strip().split(":", 1)
    assert given == "given" and path == os.environ["PATH"]


def test_workdir_is_used_and_a_missing_one_fails_the_run(transport: LocalTransport, tmp_path: Path) -> None:
    assert transport.run(["pwd"], workdir=str(tmp_path)).stdout.strip() == str(tmp_path)
    missing = transport.run(["pwd"], workdir=str(tmp_path / "nope"))
    assert missing.exit_code == 127 and "workdir does not exist" in missing.stderr
    assert not (tmp_path / "nope").exists()


def test_missing_executable_is_exit_127(transport: LocalTransport) -> None:
    done = transport.run(["farm-no-such-binary-xyz", "--help"])
    assert done.exit_code == 127
    assert "farm-no-such-binary-xyz" in done.stderr and "not found" in done.stderr


def test_non_executable_file_is_exit_126(transport: LocalTransport, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    assert transport.run([str(script)]).exit_code == 126


def test_death_by_signal_reports_128_plus_signal(transport: LocalTransport) -> None:
    assert transport.run(["sh", "-c", "kill -TERM $$"]).exit_code == 128 + 15


def test_timeout_kills_the_whole_process_group(transport: LocalTransport) -> None:
    # The grandchild ignores SIGTERM, so only the SIGKILL escalation can remove it.
    script = "trap '' TERM; sleep 60 & echo $!; wait"
    started = time.monotonic()
    done = transport.run(["sh", "-c", script], timeout=0.5)
    elapsed = time.monotonic() - started
    assert done.timed_out and done.exit_code is None
    assert done.pid is not None
    grandchild = int(done.stdout.split()[0])
    assert _group_gone(done.pid)
    # Dead: gone, or a zombie waiting for init (which in a container may never reap it).
    assert not Path(f"/proc/{grandchild}").exists() or _is_zombie(grandchild)
    # 0.5 s timeout + 0.5 s grace before SIGKILL; duration stops at the kill decision.
    # upper bounds far below the 30 s sleep, with room for a loaded machine
    assert 0.5 <= done.duration_s < 3.0
    assert elapsed < 10.0


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] == "Z"


def test_cancel_is_noticed_within_a_poll_and_kills_the_group(transport: LocalTransport) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    set_at = time.monotonic() + 0.2
    done = transport.run(["sh", "-c", "sleep 60 & sleep 60"], cancel=cancel, timeout=30)
    timer.join()
    assert done.cancelled and not done.timed_out and done.exit_code is None
    assert done.pid is not None and _group_gone(done.pid)
    assert time.monotonic() - set_at < 3.0  # far below the 60 s sleep: killed, not waited for


def test_processes_left_behind_by_a_finished_command_are_killed(transport: LocalTransport) -> None:
    done = transport.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo started"])
    assert done.exit_code == 0 and done.stdout == "started\n"
    assert done.pid is not None and _group_gone(done.pid)


def test_background_process_holding_the_pipes_does_not_hang_the_run(transport: LocalTransport) -> None:
    done = transport.run(["sh", "-c", "sleep 60 & echo started"], timeout=30)
    assert done.exit_code == 0 and done.stdout == "started\n" and not done.timed_out
    assert done.duration_s < 5.0  # the background sleep 60 holding the pipes is not waited for
    assert done.pid is not None and _group_gone(done.pid)


def test_on_start_gets_the_pid_while_the_command_runs(transport: LocalTransport) -> None:
    seen: list[tuple[int, bool]] = []

    def on_start(pid: int) -> None:
        seen.append((pid, Path(f"/proc/{pid}").exists()))

    done = transport.run(["sleep", "0.2"], on_start=on_start)
    assert seen == [(done.pid, True)]


def test_failing_on_start_does_not_fail_the_run(transport: LocalTransport) -> None:
    def broken(pid: int) -> None:
        raise RuntimeError("sampler broke")

    assert transport.run(["true"], on_start=broken).exit_code == 0


def test_dispatch_overhead_is_small(transport: LocalTransport) -> None:
    def best_of(fn: object, n: int = 15) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t0)
        return min(times)

    bare = best_of(lambda: subprocess.run(["true"], capture_output=True, check=False))
    ours = best_of(lambda: transport.run(["true"]))
    # No sleeps in the fast path: well under one 20 ms poll interval over a bare subprocess.
    assert ours - bare < 0.005, (ours, bare)


def test_cores_bind_the_command(transport: LocalTransport) -> None:
    core = sorted(os.sched_getaffinity(0))[0]
    done = transport.run(taskset_argv([core], ["grep", "Cpus_allowed_list", "/proc/self/status"]))
    assert done.exit_code == 0
    assert done.stdout.split()[-1] == str(core)


def test_parse_cores_and_taskset_argv() -> None:
    assert parse_cores("0,2,4-7") == (0, 2, 4, 5, 6, 7)
    assert parse_cores([3, 1, 3]) == (1, 3)
    assert taskset_argv("4-7", ["bench", "-t", "4"]) == ["taskset", "f0", "bench", "-t", "4"]
    assert taskset_argv([0], ["x"]) == ["taskset", "1", "x"]
    for bad in ("", "a-b", "-1", "3-x"):
        with pytest.raises(ValueError):
            parse_cores(bad)


def test_push_copies_atomically_and_skips_same_content(transport: LocalTransport, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(100_000))
    dst_dir = tmp_path / "device" / "models"

    first = transport.push(src, str(dst_dir) + "/", mode=0o600)
    target = dst_dir / "model.bin"
    assert first.dst == str(target) and first.bytes_pushed == first.size == 100_000
    assert target.read_bytes() == src.read_bytes()
    assert target.stat().st_mode & 0o777 == 0o600
    assert not [p for p in dst_dir.iterdir() if p.name.endswith(".farm-tmp")]

    again = transport.push(src, str(target))
    assert again.bytes_pushed == 0 and again.sha256 == first.sha256

    target.write_bytes(b"tampered")  # a changed destination invalidates the marker
    repaired = transport.push(src, str(target))
    assert repaired.bytes_pushed == 100_000 and target.read_bytes() == src.read_bytes()

    src.write_bytes(b"new model")
    changed = transport.push(src, str(target))
    assert changed.bytes_pushed == len(b"new model") and changed.sha256 != first.sha256


def test_pull_copies_back(transport: LocalTransport, tmp_path: Path) -> None:
    remote = tmp_path / "remote.log"
    remote.write_text("log line\n")
    local = tmp_path / "out" / "run.log"
    transport.pull(str(remote), local)
    assert local.read_text() == "log line\n"
    transport.close()


def test_cancel_set_before_the_run_starts_nothing(transport: LocalTransport, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    marker = tmp_path / "ran"
    done = transport.run(["touch", str(marker)], cancel=cancel)
    assert done.cancelled and done.exit_code is None and done.pid is None
    assert not marker.exists()


def test_push_of_a_missing_source_is_an_infra_error(transport: LocalTransport, tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="cannot read"):
        transport.push(tmp_path / "absent.bin", str(tmp_path / "dst.bin"))
