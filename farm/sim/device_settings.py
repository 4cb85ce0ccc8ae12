"""The tunable state of a virtual phone: cpufreq policies, GPU devfreq, Android settings, screen, charging switch.

What bench mode (:mod:`actors.bench`) reads and changes, modelled the way a phone exposes it:

* ``/sys/devices/system/cpu/cpufreq/policy<N>/`` per cluster (``related_cpus``, ``scaling_governor``,
  ``scaling_min_freq``, ``scaling_max_freq``, ``scaling_available_governors``, ``cpuinfo_*``), also seen through
  each core's ``cpu<N>/cpufreq/``; ``/sys/class/devfreq/<gpu>/`` (``governor``, ``min_freq``, ``max_freq``,
  ``available_frequencies``); ``/sys/class/power_supply/battery/charging_enabled`` (the kernel's charge switch).
  Everyone may read them; only root (uid 0) may write (``sh: can't create …: Permission denied`` otherwise).
  A value the kernel would refuse (an unknown governor, a frequency outside the hardware range) is dropped at
  write time, as a kernel's ``-EINVAL`` would: only a read-back tells.
What the shell user may change (``settings``, ``cmd power``, ``cmd connectivity``, ``input``, ``dumpsys power``)
and ``su`` are the applets of :mod:`farm.sim.applets_settings`:

* ``settings get|put|delete <namespace> <key> [value]``, ``cmd power set-fixed-performance-mode-enabled
  true|false``, ``cmd connectivity airplane-mode [enable|disable]``, ``input keyevent KEYCODE_SLEEP|KEYCODE_WAKEUP``
  and ``dumpsys power`` (``mWakefulness=``) — what the shell user may do on a stock phone;
* ``su -c SCRIPT`` / ``su 0 COMMAND…`` only on a *rooted* phone (``VirtualPhone(rooted=True)``, ``farm sim phones
  --rooted``); a non-rooted phone has no ``su`` at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from farm.sim.filesystem import EACCES, ENOENT, FsError, VirtualNode
from farm.sim.soc import SocProfile

ROOT_UID = 0
_CPU = "/sys/devices/system/cpu"
_POLICIES = f"{_CPU}/cpufreq"
_DEVFREQ = "/sys/class/devfreq"
_BATTERY = "/sys/class/power_supply/battery"
GOVERNORS = ("performance", "powersave", "schedutil", "userspace")
_POLICY_FILES = (
    "affected_cpus",
    "cpuinfo_max_freq",
    "cpuinfo_min_freq",
    "related_cpus",
    "scaling_available_governors",
    "scaling_governor",
    "scaling_max_freq",
    "scaling_min_freq",
)
_DEVFREQ_FILES = ("available_frequencies", "available_governors", "cur_freq", "governor", "max_freq", "min_freq")
_GPU_GOVERNORS = ("msm-adreno-tz", "performance", "powersave", "simple_ondemand")


@dataclass
class Policy:
    """One cpufreq policy (a cluster): its cores, hardware range and the limits the governor works within."""

    cpus: tuple[int, ...]
    hw_min: int
    hw_max: int
    governor: str = "schedutil"
    scaling_min: int = 0
    scaling_max: int = 0

    def __post_init__(self) -> None:
        self.scaling_min = self.scaling_min or self.hw_min
        self.scaling_max = self.scaling_max or self.hw_max


@dataclass
class DeviceSettings:
    """What a phone lets a benchmark lab pin; starts as a phone off the shelf (stay-awake on, screen on)."""

    rooted: bool
    policies: dict[int, Policy]  # first cpu of the cluster → its policy
    gpu: str
    gpu_freqs: tuple[int, ...]
    gpu_governor: str = "msm-adreno-tz"
    gpu_min: int = 0
    gpu_max: int = 0
    settings: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            "global": {"airplane_mode_on": "0", "stay_on_while_plugged_in": "7"},
            "system": {},
            "secure": {},
        }
    )
    awake: bool = True
    fixed_performance: bool = False
    charging_enabled: bool = True

    @classmethod
    def for_soc(cls, soc: SocProfile, *, rooted: bool) -> DeviceSettings:
        policies = {
            cores[0]: Policy(cores, soc.min_khz(cores[0]), soc.max_khz(cores[0])) for cores in (soc.little, soc.big)
        }
        adreno = soc.gpu.startswith("Adreno")
        gpu = "3d00000.qcom,kgsl-3d0" if adreno else "13000000.mali"
        freqs = (220000000, 401000000, 615000000, 719000000) if adreno else (265000000, 470000000, 848000000)
        governor = "msm-adreno-tz" if adreno else "simple_ondemand"
        return cls(rooted, policies, gpu, freqs, governor, freqs[0], freqs[-1])

    def policy_of(self, cpu: int) -> Policy | None:
        return next((p for p in self.policies.values() if cpu in p.cpus), None)

    def cur_khz(self, cpu: int, natural: int) -> int:
        """The clock a core runs at given what the load alone would give it: within the policy's limits."""
        policy = self.policy_of(cpu)
        if policy is None:
            return natural
        if policy.governor == "performance" or self.fixed_performance:
            return policy.scaling_max
        return min(policy.scaling_max, max(policy.scaling_min, natural))

    # -- sysfs --------------------------------------------------------------------------------------------
    def lookup(self, path: str) -> VirtualNode:
        """The node at ``path`` if this module models it, else ``None`` (procfs answers the rest)."""
        if path == _POLICIES:
            return [f"policy{first}" for first in sorted(self.policies)]
        if path.startswith(_POLICIES + "/policy"):
            name, _, leaf = path[len(_POLICIES) + 1 :].partition("/")
            policy = self.policies.get(int(name[6:])) if name[6:].isdigit() else None
            if policy is None:
                return None
            return list(_POLICY_FILES) if not leaf else _text(self._policy_value(policy, leaf))
        if path.startswith(_CPU + "/cpu") and "/cpufreq/" in path:
            core, _, leaf = path[len(_CPU) + 4 :].partition("/cpufreq/")
            policy = self.policy_of(int(core)) if core.isdigit() else None
            if policy is not None and leaf in ("scaling_governor", "scaling_min_freq", "scaling_max_freq"):
                return _text(self._policy_value(policy, leaf))
            return None
        if path == _DEVFREQ:
            return [self.gpu]
        if path.startswith(f"{_DEVFREQ}/{self.gpu}"):
            leaf = path[len(f"{_DEVFREQ}/{self.gpu}") :].lstrip("/")
            return list(_DEVFREQ_FILES) if not leaf else _text(self._gpu_value(leaf))
        if path == "/sys/class/power_supply":
            return ["battery"]
        if path == _BATTERY:
            return ["charging_enabled", "status"]
        if path == f"{_BATTERY}/charging_enabled":
            return _text("1" if self.charging_enabled else "0")
        if path == f"{_BATTERY}/status":
            return _text("Charging" if self.charging_enabled else "Discharging")
        return None

    def _policy_value(self, policy: Policy, leaf: str) -> str | None:
        cpus = " ".join(str(c) for c in policy.cpus)
        values = {
            "affected_cpus": cpus,
            "related_cpus": cpus,
            "cpuinfo_max_freq": str(policy.hw_max),
            "cpuinfo_min_freq": str(policy.hw_min),
            "scaling_available_governors": " ".join(GOVERNORS),
            "scaling_governor": policy.governor,
            "scaling_max_freq": str(policy.scaling_max),
            "scaling_min_freq": str(policy.scaling_min),
        }
        return values.get(leaf)

    def _gpu_value(self, leaf: str) -> str | None:
        cur = self.gpu_max if self.gpu_governor == "performance" else self.gpu_min
        values = {
            "available_frequencies": " ".join(str(f) for f in self.gpu_freqs),
            "available_governors": " ".join(_GPU_GOVERNORS),
            "cur_freq": str(cur),
            "governor": self.gpu_governor,
            "max_freq": str(self.gpu_max),
            "min_freq": str(self.gpu_min),
        }
        return values.get(leaf)

    def check_writable(self, path: str, uid: int) -> None:
        """Raise the error ``sh`` reports when ``> path`` cannot be opened for writing by ``uid``."""
        node = self.lookup(path)
        if node is None or isinstance(node, list):
            raise FsError(path, "No such file or directory", ENOENT)
        if uid != ROOT_UID:
            raise FsError(path, "Permission denied", EACCES)

    def write(self, path: str, data: bytes) -> None:
        """Store what root wrote to ``path``; a value the kernel would refuse is dropped (``-EINVAL``)."""
        value = data.decode(errors="replace").strip()
        number = int(value) if value.isdigit() else None
        leaf = path.rsplit("/", 1)[-1]
        policy = self._policy_at(path)
        if policy is not None:
            if leaf == "scaling_governor" and value in GOVERNORS:
                policy.governor = value
            elif leaf == "scaling_min_freq" and number is not None and policy.hw_min <= number <= policy.hw_max:
                policy.scaling_min = number
                policy.scaling_max = max(policy.scaling_max, number)
            elif leaf == "scaling_max_freq" and number is not None and policy.hw_min <= number <= policy.hw_max:
                policy.scaling_max = number
                policy.scaling_min = min(policy.scaling_min, number)
        elif path.startswith(f"{_DEVFREQ}/{self.gpu}/"):
            if leaf == "governor" and value in _GPU_GOVERNORS:
                self.gpu_governor = value
            elif leaf == "min_freq" and number in self.gpu_freqs:
                self.gpu_min, self.gpu_max = number, max(self.gpu_max, number)
            elif leaf == "max_freq" and number in self.gpu_freqs:
                self.gpu_max, self.gpu_min = number, min(self.gpu_min, number)
        elif path == f"{_BATTERY}/charging_enabled" and value in ("0", "1"):
            self.charging_enabled = value == "1"

    def _policy_at(self, path: str) -> Policy | None:
        if path.startswith(_POLICIES + "/policy"):
            name = path[len(_POLICIES) + 1 :].split("/", 1)[0]
            return self.policies.get(int(name[6:])) if name[6:].isdigit() else None
        if path.startswith(_CPU + "/cpu") and "/cpufreq/" in path:
            core = path[len(_CPU) + 4 :].split("/", 1)[0]
            return self.policy_of(int(core)) if core.isdigit() else None
        return None


def _text(value: str | None) -> bytes | None:
    return None if value is None else f"{value}\n".encode()
