"""The virtual phone's shell and command table, run directly (no adb)."""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Iterator

import pytest

from farm.sim.phone import SimConfig, VirtualPhone
from farm.sim.shell_io import CommandContext
from farm.sim.shell_parser import ShellSyntaxError, parse


@pytest.fixture
def phone() -> Iterator[VirtualPhone]:
    p = VirtualPhone("unit", seed=3, config=SimConfig(time_scale=0.01, min_wall_s=0.05, max_wall_s=0.2))
    yield p
    p.close()


def test_parse_splits_connectors_assignments_and_redirects() -> None:
    program = parse("cd /x && A=1 B='two words' ./run -t 4 2>&1 >out; echo done || true")
    assert [c for c, _ in program] == [";", "&&", ";", "||"]
    run = program[1][1][0]
    assert [n for n, _ in run.assigns] == ["A", "B"]
    assert ["".join(t for t, _ in w) for w in run.words] == ["./run", "-t", "4"]
    assert [(r.fd, r.op) for r in run.redirects] == [(2, ">&"), (1, ">")]


@pytest.mark.parametrize("line", ["if true; then echo; fi", "echo $(id)", "sleep 1 &", "(cd /)", "echo 'open"])
def test_parse_refuses_what_it_does_not_support(line: str) -> None:
    with pytest.raises(ShellSyntaxError):
        parse(line)


def test_unsupported_syntax_exits_2_with_a_message(phone: VirtualPhone) -> None:
    r = phone.shell("for f in a b; do echo $f; done")
    assert r.exit_code == 2 and "unsupported by farm virtual phone" in r.stderr


def test_quoting_variables_and_status(phone: VirtualPhone) -> None:
    r = phone.shell("X='a  b'; echo \"$X\" '$X' ${X}; false; echo $?; export Y=1; env | grep '^Y='")
    assert r.stdout == "a  b $X a b\n1\nY=1\n"


def test_shlex_quoted_arguments_survive(phone: VirtualPhone) -> None:
    args = ["it's", "two words", "$HOME", "a\\b", ""]
    r = phone.shell("echo " + " ".join(map(shlex.quote, args)))
    assert r.stdout == " ".join(args) + "\n"


def test_sh_c_and_exec_and_pids(phone: VirtualPhone) -> None:
    r = phone.shell("echo $$; sh -c 'echo $$; exit 4'; echo $?")
    outer, inner, status = r.stdout.split()
    assert int(inner) > int(outer) and status == "4"
    assert phone.shell("exec sh -c 'exit 9'; echo not-here").exit_code == 9


def test_files_and_redirections(phone: VirtualPhone) -> None:
    r = phone.shell(
        "mkdir -p /data/local/tmp/a/b && cd /data/local/tmp/a && echo hi > b/f && echo more >> b/f && "
        "cat b/f && mv b/f g && chmod 700 g && ls -l && rm -r b && ls && sha256sum g"
    )
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["hi", "more"]
    assert lines[2].startswith("drwx") and lines[3].startswith("-rwx------")
    assert lines[4] == "g"
    digest = hashlib.sha256(b"hi\nmore\n").hexdigest()
    assert lines[5] == f"{digest}  g"


def test_fd_numbers_only_at_word_start(phone: VirtualPhone) -> None:
    r = phone.shell("cd /data/local/tmp && echo a2>f; cat f; cat /nope 2>/dev/null; echo err 1>&2")
    assert (r.stdout, r.stderr) == ("a2\n", "err\n")


def test_missing_things_fail_like_toybox(phone: VirtualPhone) -> None:
    assert phone.shell("cat /nope").stderr == "cat: /nope: No such file or directory\n"
    r = phone.shell("frobnicate")
    assert (r.exit_code, r.stderr) == (127, "/system/bin/sh: frobnicate: inaccessible or not found\n")
    phone.state.fs.write_bytes("/data/local/tmp/tool", b"x")
    assert phone.shell("/data/local/tmp/tool").exit_code == 126  # not executable
    assert phone.shell("rm -f /nope; rm /nope").exit_code == 1


def test_paths_cannot_escape_the_phone_root(phone: VirtualPhone) -> None:
    r = phone.shell("cat ../../../../../etc/hostname; ls /../../..")
    assert "No such file" in r.stderr
    assert phone.state.fs.host_path("/../../etc/passwd") == phone.state.fs.root / "etc" / "passwd"


def test_proc_sys_and_identity(phone: VirtualPhone) -> None:
    r = phone.shell(
        "cat /sys/class/thermal/thermal_zone0/type /sys/class/thermal/thermal_zone0/temp; "
        "cd /sys/devices/system/cpu; cat cpu7/cpufreq/cpuinfo_max_freq cpu0/cpufreq/cpuinfo_max_freq; "
        "getprop ro.farm.synthetic; getprop no.such.prop fallback; uname -r; nproc; taskset 30 nproc"
    )
    assert r.stdout.split("\n")[:9] == [
        "cpu-0-0-usr", "36000", "2803200", "2016000", "1", "fallback", phone.state.soc.kernel, "8", "2",
    ]  # fmt: skip
    status = phone.shell("cat /proc/$$/status").stdout
    assert "VmHWM:" in status and "Name:\tsh" in status
    assert len(phone.shell("ls /sys/class/thermal").stdout.split()) == len(phone.state.thermal.zones)


def test_kill_usage_and_unknown_pids(phone: VirtualPhone) -> None:
    assert phone.shell("kill -9 999999").exit_code == 1
    assert phone.shell("kill -s NOPE 1").exit_code == 1
    assert phone.shell("kill -0 $$").exit_code == 0
    assert phone.shell("kill -9 $$; echo unreachable").exit_code == 137


def test_timeout_and_dumpsys(phone: VirtualPhone) -> None:
    t0 = time.monotonic()
    r = phone.shell("timeout 0.1 sleep 5; echo $?; timeout 1 true; echo $?")
    assert r.stdout == "124\n0\n"
    assert time.monotonic() - t0 < 4  # far below the 5 s sleep
    dump = phone.shell("dumpsys thermalservice").stdout
    assert "Temperature{mValue=36.0, mType=0, mName=cpu-0-0-usr, mStatus=0}" in dump


def test_custom_command_handler(phone: VirtualPhone) -> None:
    async def hello(ctx: CommandContext) -> int:
        await ctx.out(f"hello {ctx.argv[1]} from {ctx.proc.pid}\n")
        return 7

    phone.commands.register("hello", hello)
    r = phone.shell("hello farm")
    assert r.exit_code == 7 and r.stdout.startswith("hello farm from ")
