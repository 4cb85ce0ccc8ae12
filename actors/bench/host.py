"""Bench mode of a host (this machine, or a server over SSH) and of an accelerator box.

**Hosts**: the cpufreq governor and pinned clocks of every policy (:mod:`actors.bench.sysfs`) and turbo
(``/sys/devices/system/cpu/intel_pstate/no_turbo``, else ``/sys/devices/system/cpu/cpufreq/boost``), written when
sysfs is writable by the farm's user (root, or a lab that made those files writable); otherwise each asked-for
knob is recorded as not controllable. The screen, airplane, stay-awake, GPU and charging knobs do not apply.

**Boxes** (Sophgo, Ascend): nothing is applied; the state the box's tool reports (``bm-smi``, ``npu-smi``) is
recorded as the read-back.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping

from actors.bench import sysfs
from actors.bench.session import BenchReport, Saved, SavedFile
from actors.transports.base import Transport
from farm.specs.bench import BenchMode

SAVED_NAME = "bench-mode.saved"
# turbo switches: path, value that turns turbo off, value that turns it on
_TURBO = (
    ("/sys/devices/system/cpu/intel_pstate/no_turbo", "1", "0"),
    ("/sys/devices/system/cpu/cpufreq/boost", "0", "1"),
)


def saved_file(transport: Transport, farm_dir: str, device_id: str) -> SavedFile:
    """Where a host or box keeps the values bench mode saved: ``<farm_dir>/bench-mode-<device id>.saved``
    (``farm_dir`` relative to the SSH user's home, or absolute for this machine)."""
    return SavedFile(transport, f"{farm_dir}/bench-mode-{device_id}.saved")


class HostBench:
    """:class:`~actors.bench.session.BenchControl` of a host."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _sh(self, script: str) -> str:
        return self.transport.check_output(["sh", "-c", script])

    def capture(self) -> Saved:
        names = sysfs.policies(self._sh)
        probe = sysfs.read_outputs(
            self._sh,
            {
                "uid": "id -u",
                **{f"turbo{i}": f"cat {shlex.quote(p)}" for i, (p, _, _) in enumerate(_TURBO)},
                **{
                    f"w.{p}": f"test -w {shlex.quote(f'{sysfs.POLICY_DIR}/{p}/scaling_governor')} && echo yes"
                    for p in names
                },
                **{f"wturbo{i}": f"test -w {shlex.quote(p)} && echo yes" for i, (p, _, _) in enumerate(_TURBO)},
            },
        )
        turbo = next(
            ({"path": p, "value": probe[f"turbo{i}"], "writable": probe[f"wturbo{i}"] == "yes"}
             for i, (p, _, _) in enumerate(_TURBO) if probe[f"turbo{i}"]),
            {},
        )  # fmt: skip
        return {
            "policies": sysfs.capture_policies(self._sh, names),
            "writable": bool(names) and all(probe[f"w.{p}"] == "yes" for p in names),
            "turbo": turbo,
        }

    def apply(self, mode: BenchMode, saved: Saved) -> BenchReport:
        report = BenchReport(mode.profile())
        policies = sysfs.saved_policies(saved)
        writes: list[tuple[str, str]] = []
        if mode.governor is not None or mode.pin is not None:
            if saved.get("writable"):
                writes += sysfs.pin_writes(mode, policies)
            else:
                reason = "no cpufreq policies" if not policies else "sysfs not writable: needs root"
                report.problems.append(f"governor/pin: not controllable ({reason})")
        turbo = saved.get("turbo") or {}
        if mode.turbo is not None:
            if turbo.get("writable"):
                off, on = next((o, n) for p, o, n in _TURBO if p == turbo["path"])
                writes.append((turbo["path"], on if mode.turbo else off))
            else:
                report.problems.append(
                    "turbo: not controllable (" + ("not writable: needs root" if turbo else "no turbo switch") + ")"
                )
        if writes:
            self._sh(sysfs.write_script(writes))
            report.applied["sysfs"] = f"{len(writes)} writes"
        if saved.get("writable") and (mode.governor is not None or mode.pin is not None):
            sysfs.check_policies(self._sh, mode, policies, report)
        else:
            report.readback.update(
                {f"{p}.governor": v["governor"] for p, v in sysfs.capture_policies(self._sh, list(policies)).items()}
            )
        if turbo:
            now = sysfs.read_files(self._sh, {"turbo": turbo["path"]})["turbo"]
            report.readback[turbo["path"]] = now
            if writes and mode.turbo is not None and turbo.get("writable") and now != writes[-1][1]:
                report.problems.append(f"turbo: {turbo['path']} reads back {now}, not {writes[-1][1]}")
        return report

    def restore(self, saved: Saved) -> list[str]:
        policies = sysfs.saved_policies(saved)
        writes = sysfs.restore_writes(policies) if saved.get("writable") else []
        turbo = saved.get("turbo") or {}
        if turbo.get("writable") and turbo.get("value"):
            writes.append((turbo["path"], turbo["value"]))
        if not writes:
            return []
        self._sh(sysfs.write_script(writes))
        problems = sysfs.restore_problems(self._sh, policies) if saved.get("writable") else []
        if turbo.get("writable") and turbo.get("value"):
            now = sysfs.read_files(self._sh, {"turbo": turbo["path"]})["turbo"]
            if now != turbo["value"]:
                problems.append(f"{turbo['path']} reads {now}, saved {turbo['value']}")
        return problems


class BoxBench:
    """:class:`~actors.bench.session.BenchControl` of an accelerator box: records the tool's state, applies
    nothing (``read`` is the box's own status reader: per chip/NPU index, its figures)."""

    def __init__(self, read: Callable[[], Mapping[int, Mapping[str, float]]], tool: str, kind: str) -> None:
        self.read = read
        self.tool = tool
        self.kind = kind

    def capture(self) -> Saved:
        return {}

    def apply(self, mode: BenchMode, saved: Saved) -> BenchReport:
        report = BenchReport(mode.profile())
        report.notes.append(f"nothing applied on a {self.kind} box; the state {self.tool} reports is recorded")
        for index, figures in sorted(self.read().items()):
            report.readback.update({f"{self.tool}.{index}.{k}": f"{v:g}" for k, v in sorted(figures.items())})
        return report

    def restore(self, saved: Saved) -> list[str]:
        return []
