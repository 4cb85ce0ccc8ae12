"""cpufreq policies through sysfs, shared by phones (as root) and hosts: read, pin, check, restore.

A policy is ``/sys/devices/system/cpu/cpufreq/policy<N>`` (one per cluster). Pinning sets its governor and
``scaling_min_freq = scaling_max_freq`` = ``cpuinfo_max_freq`` (``pin: max``) or ``cpuinfo_min_freq`` (``pin:
min``); the order of the writes keeps ``min <= max`` at every step, so the kernel never refuses one for that.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping

from actors.bench.session import BenchReport, Saved
from farm.specs.bench import BenchMode

POLICY_DIR = "/sys/devices/system/cpu/cpufreq"
_POLICY = re.compile(r"^policy\d+$")
_FIELDS = {
    "governor": "scaling_governor",
    "min": "scaling_min_freq",
    "max": "scaling_max_freq",
    "hw_min": "cpuinfo_min_freq",
    "hw_max": "cpuinfo_max_freq",
    "governors": "scaling_available_governors",
}
Shell = Callable[[str], str]
"""Runs a ``sh`` script on the device and returns its stdout (stderr folded in where the script asks)."""


def read_outputs(shell: Shell, commands: Mapping[str, str]) -> dict[str, str]:
    """``{label: first line of output}`` of ``{label: command}`` in one round trip; ``""`` for a command that
    failed. Labels must not contain spaces; commands are ``sh`` text (quote their arguments)."""
    if not commands:
        return {}
    script = "; ".join(
        f"echo -n {shlex.quote(label + ' ')}; {command} 2>/dev/null || echo" for label, command in commands.items()
    )
    out: dict[str, str] = dict.fromkeys(commands, "")
    for line in shell(script).splitlines():
        label, _, value = line.partition(" ")
        if label in out and not out[label]:
            out[label] = value.strip()
    return out


def read_files(shell: Shell, files: Mapping[str, str]) -> dict[str, str]:
    """``{label: content}`` of ``{label: path}`` in one round trip; ``""`` for a file that cannot be read."""
    return read_outputs(shell, {label: f"cat {shlex.quote(path)}" for label, path in files.items()})


def write_script(writes: list[tuple[str, str]]) -> str:
    """``echo VALUE > PATH`` for each pair, in order; a refused write goes on to the next one."""
    return "; ".join(f"echo {shlex.quote(v)} > {shlex.quote(p)}" for p, v in writes) + "; true"


def policies(shell: Shell) -> list[str]:
    """The policy directories' names (``policy0``, ``policy4``…), empty when the kernel has no cpufreq."""
    return [
        w.rsplit("/", 1)[-1] for w in shell(f"echo {POLICY_DIR}/policy*").split() if _POLICY.match(w.rsplit("/", 1)[-1])
    ]


def capture_policies(shell: Shell, names: list[str]) -> dict[str, dict[str, str]]:
    files = {f"{p}.{k}": f"{POLICY_DIR}/{p}/{leaf}" for p in names for k, leaf in _FIELDS.items()}
    values = read_files(shell, files)
    return {p: {k: values[f"{p}.{k}"] for k in _FIELDS} for p in names}


def _path(policy: str, key: str) -> str:
    return f"{POLICY_DIR}/{policy}/{_FIELDS[key]}"


def pin_writes(mode: BenchMode, saved: Mapping[str, Mapping[str, str]]) -> list[tuple[str, str]]:
    writes: list[tuple[str, str]] = []
    for p, orig in saved.items():
        if mode.governor is not None:
            writes.append((_path(p, "governor"), mode.governor))
        if mode.pin is not None and orig["hw_max"] and orig["hw_min"]:
            target = orig["hw_max"] if mode.pin == "max" else orig["hw_min"]
            order = ("max", "min") if mode.pin == "max" else ("min", "max")
            writes += [(_path(p, order[0]), target), (_path(p, order[1]), target)]
    return writes


def restore_writes(saved: Mapping[str, Mapping[str, str]]) -> list[tuple[str, str]]:
    writes: list[tuple[str, str]] = []
    for p, orig in saved.items():
        if orig["governor"]:
            writes.append((_path(p, "governor"), orig["governor"]))
        if orig["min"] and orig["max"] and orig["hw_min"]:
            # lowest min first, so the max can go anywhere; then the saved min
            writes += [
                (_path(p, "min"), orig["hw_min"]),
                (_path(p, "max"), orig["max"]),
                (_path(p, "min"), orig["min"]),
            ]
    return writes


def check_policies(shell: Shell, mode: BenchMode, saved: Mapping[str, Mapping[str, str]], report: BenchReport) -> None:
    """Read every policy back into ``report`` and add a problem for each value that is not what ``mode`` asked."""
    now = capture_policies(shell, list(saved))
    for p, values in now.items():
        report.readback[f"{p}.governor"] = values["governor"]
        report.readback[f"{p}.min_khz"] = values["min"]
        report.readback[f"{p}.max_khz"] = values["max"]
        if mode.governor is not None and values["governor"] != mode.governor:
            offered = saved[p]["governors"]
            report.problems.append(
                f"governor: {p} reads back {values['governor'] or 'nothing'}, not {mode.governor}"
                + (f" (offered: {offered})" if offered else "")
            )
        if mode.pin is not None:
            target = saved[p]["hw_max" if mode.pin == "max" else "hw_min"]
            if not (values["min"] == values["max"] == target):
                report.problems.append(f"pin: {p} reads back {values['min']}-{values['max']} kHz, not {target} kHz")


def restore_problems(shell: Shell, saved: Mapping[str, Mapping[str, str]]) -> list[str]:
    now = capture_policies(shell, list(saved))
    problems = []
    for p, orig in saved.items():
        for key in ("governor", "min", "max"):
            if orig[key] and now[p][key] != orig[key]:
                problems.append(f"{p} {_FIELDS[key]} reads {now[p][key] or 'nothing'}, saved {orig[key]}")
    return problems


def saved_policies(saved: Saved) -> dict[str, dict[str, str]]:
    value = saved.get("policies")
    return value if isinstance(value, dict) else {}
