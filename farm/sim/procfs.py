"""Computed ``/proc`` and ``/sys`` of a virtual phone: process status, thermal zones, cpufreq, identity."""

from __future__ import annotations

import re

from farm.sim import battery
from farm.sim.filesystem import VirtualNode
from farm.sim.state import PhoneState

_PID = re.compile(r"^/proc/(\d+|self)(?:/(status|cmdline|stat))?$")
_ZONE = re.compile(r"^/sys/class/thermal/thermal_zone(\d+)(?:/(type|temp|mode))?$")
_CPU = re.compile(r"^/sys/devices/system/cpu/cpu(\d+)(?:/cpufreq(?:/([a-z_]+))?)?$")
_DIRS: dict[str, list[str]] = {
    "/sys": ["class", "devices"],
    "/sys/class": ["devfreq", "power_supply", "thermal"],
    "/sys/devices": ["system"],
    "/sys/devices/system": ["cpu"],
}
_CPUFREQ_FILES = (
    "cpuinfo_max_freq",
    "cpuinfo_min_freq",
    "scaling_cur_freq",
    "scaling_max_freq",
    "scaling_min_freq",
    "scaling_governor",
)


def _meminfo() -> bytes:
    total = 11_622_400
    return (
        f"MemTotal:       {total} kB\nMemFree:         1843212 kB\nMemAvailable:    6215404 kB\n"
        "Buffers:            4436 kB\nCached:          4211312 kB\nSwapTotal:       6291452 kB\n"
        "SwapFree:        6291452 kB\n"
    ).encode()


def _cur_khz(state: PhoneState, cpu: int) -> int:
    """Max clock while something runs, the low idle clock otherwise; big cores step down when hot."""
    soc = state.soc
    if not state.thermal.busy():
        return state.device.cur_khz(cpu, soc.min_khz(cpu))
    khz = soc.max_khz(cpu)
    hottest = max(state.thermal.temperatures_c())
    if cpu in soc.big and hottest > 75.0:
        khz = int(khz * 0.8)
    return state.device.cur_khz(cpu, khz)


def lookup(state: PhoneState, path: str) -> VirtualNode:
    """The node at ``path`` under ``/proc`` or ``/sys``, computed now; ``None`` if it does not exist."""
    if path in _DIRS:
        return list(_DIRS[path])
    if path.startswith(battery.SUPPLY_DIR) and state.battery is not None:
        if path == battery.BATTERY_DIR:  # the gauge's files and the kernel's charge switch
            return sorted([*battery.FILES, "charging_enabled"])
        if not path.endswith("/charging_enabled"):
            return battery.lookup(state.battery, path)
    if (tunable := state.device.lookup(path)) is not None:
        return tunable
    if path == "/proc":
        return ["cpuinfo", "meminfo", "self", "version"] + [str(p.pid) for p in state.procs.running()]
    if path == "/proc/meminfo":
        return _meminfo()
    if path == "/proc/version":
        return f"Linux version {state.soc.kernel} (farm-sim@virtual) #1 SMP PREEMPT\n".encode()
    if path == "/proc/cpuinfo":
        return "".join(f"processor\t: {c}\nBogoMIPS\t: 38.40\n\n" for c in state.soc.cpus).encode()
    if m := _PID.match(path):
        procs = list(state.procs.running())
        proc = procs[-1] if m[1] == "self" and procs else state.procs.get(int(m[1])) if m[1] != "self" else None
        if proc is None:
            return None
        if m[2] is None:
            return ["cmdline", "stat", "status"]
        if m[2] == "status":
            return proc.status_text().encode()
        if m[2] == "cmdline":
            return b"\0".join(a.encode() for a in proc.argv) + b"\0"
        return f"{proc.pid} ({proc.name}) {proc.state[0]} {proc.ppid} {proc.pgid}\n".encode()
    if path == "/sys/class/thermal":
        return [f"thermal_zone{i}" for i in range(len(state.thermal.zones))]
    if m := _ZONE.match(path):
        i = int(m[1])
        if i >= len(state.thermal.zones):
            return None
        if m[2] is None:
            return ["mode", "temp", "type"]
        if m[2] == "type":
            return f"{state.thermal.zones[i].type}\n".encode()
        if m[2] == "mode":
            return b"enabled\n"
        return f"{round(state.thermal.temperature_c(i) * 1000)}\n".encode()
    if path == "/sys/devices/system/cpu":
        return [f"cpu{c}" for c in state.soc.cpus] + ["cpufreq", "online", "possible"]
    if path in ("/sys/devices/system/cpu/online", "/sys/devices/system/cpu/possible"):
        return f"0-{max(state.soc.cpus)}\n".encode()
    if m := _CPU.match(path):
        cpu = int(m[1])
        if cpu not in state.soc.cpus:
            return None
        if m[2] is None:
            return ["cpufreq"] if path.endswith(f"cpu{cpu}") else list(_CPUFREQ_FILES)
        values = {
            "cpuinfo_max_freq": state.soc.max_khz(cpu),
            "scaling_max_freq": state.soc.max_khz(cpu),
            "cpuinfo_min_freq": state.soc.min_khz(cpu),
            "scaling_cur_freq": _cur_khz(state, cpu),
            "scaling_governor": "schedutil",
        }
        if m[2] not in values:
            return None
        return f"{values[m[2]]}\n".encode()
    return None
