"""Bench mode of an Android phone, through adb; what the phone allows is read from it, never assumed.

* **CPU** (``governor``, ``pin``) — with root (adbd runs as root, or ``su -c`` / ``su 0`` works): every cpufreq
  policy's governor and ``scaling_min/max_freq`` through sysfs (:mod:`actors.bench.sysfs`). Without root:
  Android's fixed performance mode, ``cmd power set-fixed-performance-mode-enabled true`` (Android 11+; the
  clocks are the vendor's choice, so the per-policy values are recorded, not checked).
* **GPU** (``gpu``) — root only: the devfreq device whose name says GPU (``kgsl``, ``mali``, ``gpu``) gets the
  ``performance`` governor if offered and ``min_freq = max_freq``.
* **Charging** (``charging``) — root only, where the kernel offers a switch (``charging_enabled``,
  ``input_suspend`` under ``/sys/class/power_supply/battery``); else read back as ``unknown``. ``dumpsys battery
  unplug`` is never used: it only changes what Android reports.
* **Screen, airplane mode, stay awake** — as the shell user: ``input keyevent KEYCODE_SLEEP|KEYCODE_WAKEUP``
  (read back from ``dumpsys power``'s ``mWakefulness``), ``cmd connectivity airplane-mode enable|disable``
  (Android 11+; older: ``settings put global airplane_mode_on``, which does not switch the radios), ``settings put
  global stay_on_while_plugged_in``.
"""

from __future__ import annotations

import re
import shlex

from actors.bench import sysfs
from actors.bench.session import BenchReport, Saved, SavedFile
from actors.transports.base import Transport
from farm.specs.bench import BenchMode

SAVED_PATH = "/data/local/tmp/farm/bench-mode.saved"
_DEVFREQ = "/sys/class/devfreq"
_GPU = re.compile(r"kgsl|mali|gpu|g3d", re.I)
_GPU_FIELDS = {
    "governor": "governor",
    "min": "min_freq",
    "max": "max_freq",
    "freqs": "available_frequencies",
    "governors": "available_governors",
}
# kernel charge switches: path, value that stops charging, value that allows it
_CHARGE_SWITCHES = (
    ("/sys/class/power_supply/battery/charging_enabled", "0", "1"),
    ("/sys/class/power_supply/battery/input_suspend", "1", "0"),
)
_ROOT_ARGV = {"uid0": ["sh", "-c"], "su-c": ["su", "-c"], "su0": ["su", "0", "sh", "-c"]}
_STAY_ON_WHEN_ASKED = "7"  # AC, USB and wireless chargers
_FIXED_PERF = "cmd power set-fixed-performance-mode-enabled"


def _airplane(on: bool) -> str:
    """Airplane mode on or off: ``cmd connectivity`` (switches the radios), else only the setting (Android < 11)."""
    switch = "enable" if on else "disable"
    return f"cmd connectivity airplane-mode {switch} || settings put global airplane_mode_on {int(on)}"


class PhoneBench:
    """:class:`~actors.bench.session.BenchControl` of a phone."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def saved_file(self) -> SavedFile:
        return SavedFile(self.transport, SAVED_PATH)

    def _sh(self, script: str) -> str:
        return self.transport.check_output(["sh", "-c", script])

    def _root_sh(self, root: str, script: str) -> str:
        return self.transport.check_output([*_ROOT_ARGV[root], script])

    # -- capture -----------------------------------------------------------------------------------------------
    def capture(self) -> Saved:
        probe = sysfs.read_outputs(
            self._sh,
            {
                "uid": "id -u",
                "su-c": "su -c 'id -u'",
                "su0": "su 0 id -u",
                "devfreq": f"echo {_DEVFREQ}/*",
                "airplane": "settings get global airplane_mode_on",
                "stay_on": "settings get global stay_on_while_plugged_in",
                "wake": "dumpsys power | grep mWakefulness=",
            },
        )
        root = "uid0" if probe["uid"] == "0" else next((k for k in ("su-c", "su0") if probe[k] == "0"), "")
        gpus = [d for d in probe["devfreq"].split() if _GPU.search(d.rsplit("/", 1)[-1])]
        files = {f"gpu.{k}": f"{gpus[0]}/{leaf}" for k, leaf in _GPU_FIELDS.items()} if gpus else {}
        files.update({f"charge{i}": path for i, (path, _, _) in enumerate(_CHARGE_SWITCHES)})
        values = sysfs.read_files(self._sh, files)
        charge = next(
            ({"path": path, "value": values[f"charge{i}"]} for i, (path, _, _) in enumerate(_CHARGE_SWITCHES)
             if values[f"charge{i}"]),
            {},
        )  # fmt: skip
        return {
            "root": root,
            "policies": sysfs.capture_policies(self._sh, sysfs.policies(self._sh)),
            "gpu": {"dir": gpus[0], **{k: values[f"gpu.{k}"] for k in _GPU_FIELDS}} if gpus else {},
            "charge": charge,
            "airplane_mode_on": probe["airplane"],
            "stay_on_while_plugged_in": probe["stay_on"],
            "wakefulness": probe["wake"].partition("=")[2],
        }

    # -- apply ---------------------------------------------------------------------------------------------------
    def apply(self, mode: BenchMode, saved: Saved) -> BenchReport:
        report = BenchReport(mode.profile())
        root = str(saved.get("root", ""))
        report.applied["root"] = root or "none"
        self._apply_settings(mode, report)
        if root:
            writes = sysfs.pin_writes(mode, sysfs.saved_policies(saved)) + self._gpu_writes(mode, saved)
            writes += self._charge_writes(mode, saved)
            self._root_sh(root, sysfs.write_script(writes))
            report.applied["sysfs"] = f"{len(writes)} writes as root ({root})"
        elif mode.governor is not None or mode.pin is not None:
            done = self.transport.run(["sh", "-c", f"{_FIXED_PERF} true 2>&1"], timeout=30.0)
            report.applied["cpu"] = f"{_FIXED_PERF} true (no root)"
            if done.exit_code != 0 or done.stdout.strip():
                report.problems.append(f"cpu: fixed performance mode refused: {done.stdout.strip()[-200:]}")
        self._check(mode, saved, report)
        return report

    def _apply_settings(self, mode: BenchMode, report: BenchReport) -> None:
        steps = []
        if mode.airplane is not None:
            steps.append(_airplane(mode.airplane))
        if mode.stay_awake is not None:
            steps.append(
                f"settings put global stay_on_while_plugged_in {_STAY_ON_WHEN_ASKED if mode.stay_awake else 0}"
            )
        if mode.screen is not None:
            steps.append(f"input keyevent {'KEYCODE_WAKEUP' if mode.screen else 'KEYCODE_SLEEP'}")
        if steps:
            self._sh("; ".join(steps) + "; true")
            report.applied["android"] = "; ".join(steps)

    @staticmethod
    def _gpu_writes(mode: BenchMode, saved: Saved) -> list[tuple[str, str]]:
        gpu = saved.get("gpu") or {}
        freqs = [int(f) for f in str(gpu.get("freqs", "")).split() if f.isdigit()]
        if mode.gpu is None or not freqs:
            return []
        target = str(max(freqs) if mode.gpu == "max" else min(freqs))
        writes = []
        if "performance" in str(gpu.get("governors", "")).split() and mode.gpu == "max":
            writes.append((f"{gpu['dir']}/governor", "performance"))
        order = ("max_freq", "min_freq") if mode.gpu == "max" else ("min_freq", "max_freq")
        return [*writes, (f"{gpu['dir']}/{order[0]}", target), (f"{gpu['dir']}/{order[1]}", target)]

    @staticmethod
    def _charge_writes(mode: BenchMode, saved: Saved) -> list[tuple[str, str]]:
        charge = saved.get("charge") or {}
        if mode.charging is None or not charge:
            return []
        off, on = next((o, n) for p, o, n in _CHARGE_SWITCHES if p == charge["path"])
        return [(charge["path"], on if mode.charging else off)]

    def _check(self, mode: BenchMode, saved: Saved, report: BenchReport) -> None:
        now = self._read_state(saved)
        report.readback.update({k: v for k, v in now.items() if not k.startswith("policy")})
        root = bool(saved.get("root"))
        policies = sysfs.saved_policies(saved)
        if root:
            sysfs.check_policies(self._sh, mode, policies, report)
        else:  # fixed performance mode: the vendor picks the clocks; record them, do not judge them
            report.readback.update(
                {f"{p}.governor": v["governor"] for p, v in sysfs.capture_policies(self._sh, list(policies)).items()}
            )
        gpu = saved.get("gpu") or {}
        if mode.gpu is not None:
            if not root or not gpu:
                report.problems.append("gpu: not controllable (" + ("no root" if not root else "no GPU devfreq") + ")")
            elif not (now["gpu.min"] == now["gpu.max"] != ""):
                report.problems.append(f"gpu: reads back {now['gpu.min']}-{now['gpu.max']}, not pinned")
        if mode.charging is not None:
            wanted = self._charge_writes(mode, saved)
            charge = saved.get("charge") or {}
            if not charge:
                report.readback["charging"] = "unknown"
                report.problems.append("charging: unknown (the kernel offers no charge switch)")
            elif not root:
                off = next(o for p, o, _ in _CHARGE_SWITCHES if p == charge["path"])
                report.readback["charging"] = "off" if now["charge"] == off else "on"
                report.problems.append(f"charging: {charge['path']} not writable without root")
            elif now["charge"] != wanted[0][1]:
                report.problems.append(f"charging: {wanted[0][0]} reads back {now['charge']}, not {wanted[0][1]}")
        expected = {
            "airplane_mode_on": None if mode.airplane is None else str(int(mode.airplane)),
            "stay_on_while_plugged_in": None
            if mode.stay_awake is None
            else (_STAY_ON_WHEN_ASKED if mode.stay_awake else "0"),
            "wakefulness": None if mode.screen is None else ("Awake" if mode.screen else "Asleep"),
        }
        for key, want in expected.items():
            if (
                want is not None
                and now[key] != want
                and not (key == "wakefulness" and now[key] == "Dozing" and want == "Asleep")
            ):
                report.problems.append(f"{key}: reads back {now[key] or 'nothing'}, not {want}")

    def _read_state(self, saved: Saved) -> dict[str, str]:
        gpu = saved.get("gpu") or {}
        charge = saved.get("charge") or {}
        commands = {
            "airplane_mode_on": "settings get global airplane_mode_on",
            "stay_on_while_plugged_in": "settings get global stay_on_while_plugged_in",
            "wakefulness": "dumpsys power | grep mWakefulness=",
        }
        if gpu:
            commands.update(
                {
                    f"gpu.{k}": f"cat {shlex.quote(gpu['dir'] + '/' + _GPU_FIELDS[k])}"
                    for k in ("governor", "min", "max")
                }
            )
        if charge:
            commands["charge"] = f"cat {shlex.quote(charge['path'])}"
        out = sysfs.read_outputs(self._sh, commands)
        out["wakefulness"] = out["wakefulness"].partition("=")[2]
        return out

    # -- restore -------------------------------------------------------------------------------------------------
    def restore(self, saved: Saved) -> list[str]:
        root = str(saved.get("root", ""))
        steps = []
        if saved.get("airplane_mode_on") in ("0", "1"):
            on = saved["airplane_mode_on"] == "1"
            steps.append(_airplane(on))
        stay = str(saved.get("stay_on_while_plugged_in", ""))
        if stay.isdigit():
            steps.append(f"settings put global stay_on_while_plugged_in {stay}")
        elif stay == "null":
            steps.append("settings delete global stay_on_while_plugged_in")
        if saved.get("wakefulness"):
            steps.append(f"input keyevent {'KEYCODE_WAKEUP' if saved['wakefulness'] == 'Awake' else 'KEYCODE_SLEEP'}")
        if not root:
            steps.append(f"{_FIXED_PERF} false")  # no getter exists: the mode is assumed off before the job
        self._sh("; ".join(steps) + "; true")
        if root:
            writes = sysfs.restore_writes(sysfs.saved_policies(saved))
            gpu = saved.get("gpu") or {}
            if gpu.get("min") and gpu.get("max"):
                freqs = [f for f in str(gpu.get("freqs", "")).split() if f.isdigit()]
                lowest = min(freqs, key=int) if freqs else gpu["min"]
                writes += [(f"{gpu['dir']}/governor", gpu["governor"]), (f"{gpu['dir']}/min_freq", lowest),
                           (f"{gpu['dir']}/max_freq", gpu["max"]), (f"{gpu['dir']}/min_freq", gpu["min"])]  # fmt: skip
            charge = saved.get("charge") or {}
            if charge:
                writes.append((charge["path"], charge["value"]))
            self._root_sh(root, sysfs.write_script(writes))
        return self._restore_problems(saved)

    def _restore_problems(self, saved: Saved) -> list[str]:
        now = self._read_state(saved)
        problems = []
        for key in ("airplane_mode_on", "stay_on_while_plugged_in", "wakefulness"):
            if saved.get(key) and now[key] != saved[key]:
                problems.append(f"{key} reads {now[key] or 'nothing'}, saved {saved[key]}")
        gpu = saved.get("gpu") or {}
        for key in ("governor", "min", "max") if saved.get("root") and gpu else ():
            if gpu.get(key) and now[f"gpu.{key}"] != gpu[key]:
                problems.append(f"gpu {key} reads {now[f'gpu.{key}']}, saved {gpu[key]}")
        charge = saved.get("charge") or {}
        if saved.get("root") and charge and now["charge"] != charge["value"]:
            problems.append(f"{charge['path']} reads {now['charge']}, saved {charge['value']}")
        if saved.get("root"):
            problems += sysfs.restore_problems(self._sh, sysfs.saved_policies(saved))
        return problems
