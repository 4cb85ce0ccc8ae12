"""What only LocalTransport does, against real subprocesses: env merged over this process's, process-group kills,
spawn failures, signal exit codes, overhead, core binding. What every transport does: test_transport_contract.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from actors.host_probe import group_members
from actors.transports.local import LocalTransport, parse_cores, taskset_argv


@pytest.fixture
def transport() -> LocalTransport:
    return LocalTransport(kill_grace_s=0.5)


def _group_gone(pgid: int) -> bool:
    return not group_members(pgid)


def test_env_is_merged_over_os_environ(transport: LocalTransport) -> None:
    done = transport.run(["sh", "-c", 'echo "$FARM_T_X:$PATH"'], env={"FARM_T_X": "given"})
    given, path = done.stdout.strip().split(":", 1)
    assert given == "given" and path == os.environ["PATH"]


def test_a_missing_workdir_is_named_as_such(transport: LocalTransport, tmp_path: Path) -> None:
    # exit 127 and not created: the contract suite; the wording is this transport's own
    assert "workdir does not exist" in transport.run(["pwd"], workdir=str(tmp_path / "nope")).stderr


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


def test_a_change_to_this_process_environment_reaches_the_next_command(
    transport: LocalTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The merged environment is kept between runs; it must not outlive a change to os.environ.
    argv = ["sh", "-c", 'echo "$FARM_T_BASE/$FARM_T_X"']
    monkeypatch.setenv("FARM_T_BASE", "one")
    assert transport.run(argv, env={"FARM_T_X": "x"}).stdout.strip() == "one/x"
    monkeypatch.setenv("FARM_T_BASE", "two")
    assert transport.run(argv, env={"FARM_T_X": "x"}).stdout.strip() == "two/x"
    assert transport.run(argv, env={"FARM_T_X": "y"}).stdout.strip() == "two/y"


def test_the_kernel_peak_rss_of_a_command_comes_back_with_it(transport: LocalTransport) -> None:
    # 60 MiB touched and freed at once: far too quick for any sampler, reported by wait4 on reaping.
    code = "b = bytearray(60 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    done = transport.run([sys.executable, "-c", code])
    assert done.exit_code == 0
    assert done.reaped_peak_kib is not None and done.reaped_peak_kib >= 60 * 1024, done.reaped_peak_kib
    child = transport.run(["sh", "-c", f"{sys.executable} -c '{code}'; true"])
    assert child.reaped_peak_kib is not None and child.reaped_peak_kib >= 60 * 1024  # a reaped grandchild counts
