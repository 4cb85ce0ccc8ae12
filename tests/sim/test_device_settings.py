"""The virtual phone's tunable state, through its own shell (no adb): what root may write, what the shell user
may change, and what a stock phone refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from farm.sim.phone import VirtualPhone

POLICY4 = "/sys/devices/system/cpu/cpufreq/policy4"


@pytest.fixture
def rooted() -> Iterator[VirtualPhone]:
    p = VirtualPhone("rooted", rooted=True)
    yield p
    p.close()


@pytest.fixture
def stock() -> Iterator[VirtualPhone]:
    p = VirtualPhone("stock")
    yield p
    p.close()


def test_root_writes_cpufreq_and_every_core_of_the_policy_sees_it(rooted: VirtualPhone) -> None:
    assert rooted.shell("id -u").stdout == "2000\n" and rooted.shell("su -c 'id -u'").stdout == "0\n"
    assert rooted.shell("echo /sys/devices/system/cpu/cpufreq/policy*").stdout.split() == [
        "/sys/devices/system/cpu/cpufreq/policy0", POLICY4
    ]  # fmt: skip
    top = rooted.state.soc.big_max_khz
    script = f"echo performance > {POLICY4}/scaling_governor; echo {top} > {POLICY4}/scaling_min_freq"
    assert rooted.shell(f"su -c '{script}'").exit_code == 0
    got = rooted.shell(f"cat {POLICY4}/scaling_governor /sys/devices/system/cpu/cpu6/cpufreq/scaling_min_freq")
    assert got.stdout.split() == ["performance", str(top)]
    # the performance governor holds the clock at the policy's max even when nothing runs
    assert rooted.shell("cat /sys/devices/system/cpu/cpu5/cpufreq/scaling_cur_freq").stdout == f"{top}\n"
    assert rooted.shell("su 0 cat /sys/class/power_supply/battery/charging_enabled").stdout == "1\n"


def test_the_kernel_drops_values_it_would_refuse(rooted: VirtualPhone) -> None:
    assert rooted.shell(f"su -c 'echo turbo > {POLICY4}/scaling_governor; echo 5 > {POLICY4}/scaling_max_freq'")
    assert rooted.shell(f"cat {POLICY4}/scaling_governor {POLICY4}/scaling_max_freq").stdout.split() == [
        "schedutil", str(rooted.state.soc.big_max_khz)
    ]  # fmt: skip


def test_a_stock_phone_has_no_su_and_refuses_sysfs_writes(stock: VirtualPhone) -> None:
    su = stock.shell("su -c 'id -u'")
    assert su.exit_code == 127 and "su: inaccessible or not found" in su.stderr
    for path in (f"{POLICY4}/scaling_governor", "/sys/class/power_supply/battery/charging_enabled"):
        r = stock.shell(f"echo 0 > {path}")
        assert r.exit_code == 1 and f"can't create {path}: Permission denied" in r.stderr
    assert stock.state.device.policies[4].governor == "schedutil" and stock.state.device.charging_enabled


def test_what_the_shell_user_may_change(stock: VirtualPhone) -> None:
    assert stock.shell("settings get global stay_on_while_plugged_in").stdout == "7\n"
    stock.shell("settings put global stay_on_while_plugged_in 0; cmd connectivity airplane-mode enable")
    assert stock.shell("settings get global airplane_mode_on; cmd connectivity airplane-mode").stdout == "1\nenabled\n"
    assert stock.shell("settings get global nothing_here").stdout == "null\n"
    stock.shell("input keyevent KEYCODE_SLEEP")
    assert stock.shell("dumpsys power | grep mWakefulness=").stdout.strip() == "mWakefulness=Asleep"
    assert stock.shell("cmd power set-fixed-performance-mode-enabled true").exit_code == 0
    assert (
        stock.state.device.fixed_performance
        and stock.state.device.settings["global"]["stay_on_while_plugged_in"] == "0"
    )
    assert stock.shell("cmd power set-fixed-performance-mode-enabled maybe").exit_code == 255
