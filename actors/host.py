"""The ``host`` device kind on this machine, through the local transport (a ``host`` with an ``ssh:`` block is
:class:`actors.ssh_host.SshHost`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from actors.bench.host import HostBench, saved_file
from actors.bench.session import BenchControl, SavedFile
from actors.device import Device, RunSampler
from actors.energy import POWERCAP, RaplDomain, RaplSampler, WithEnergy, rapl_domains
from actors.host_probe import host_fingerprint
from actors.rss_watch import PeakRssSampler, Poll
from actors.transports.base import Transport
from actors.transports.local import LocalTransport
from farm.specs.inventory import HostDevice, Slot

_THERMAL = Path("/sys/class/thermal")


class _RssSampler:
    def __init__(self) -> None:
        self._sampler = PeakRssSampler()
        self._started = False

    def start(self, pid: int) -> Poll:
        self._started = True
        return self._sampler.start(pid)

    def stop(self) -> dict[str, float]:
        if not self._started:
            return {}
        return {"peak_rss_mib": round(self._sampler.stop(), 3)}


class LocalHost(Device):
    """This machine. Commands see the farm's own Python environment first on PATH (its ``bin`` folder), so
    helper runners installed with Farm (``farm-llama``) resolve without activating the virtualenv."""

    kind = "host"
    powercap: Path = POWERCAP  # where the RAPL zones are (tests point it at a recorded tree)

    def __init__(self, spec: HostDevice) -> None:
        super().__init__(spec)
        self._transport = LocalTransport()
        self._bin = str(Path(sys.executable).parent)
        self._zones: list[Path] | None = None  # thermal zones' temp files, listed on first use
        self._rapl: tuple[Path, list[RaplDomain]] | None = None  # (powercap root, its domains), listed on first use

    def transport(self, slot_id: str) -> Transport:
        return self._transport

    def slot_env(self, slot: Slot) -> dict[str, str]:
        path = os.environ.get("PATH", "")
        return {"PATH": f"{self._bin}{os.pathsep}{path}" if path else self._bin}

    def sampler(self, slot_id: str) -> RunSampler:
        if self._rapl is None or self._rapl[0] != self.powercap:
            self._rapl = (self.powercap, rapl_domains(self.powercap))
        domains = self._rapl[1]
        if not domains:
            return _RssSampler()
        rapl = RaplSampler(domains)
        rapl.measure_idle()
        return WithEnergy(_RssSampler(), rapl)

    def bench_control(self) -> tuple[BenchControl, SavedFile]:
        farm_dir = str(Path("~/.cache/farm").expanduser())
        return HostBench(self._transport), saved_file(self._transport, farm_dir, self.spec.id)

    def temperature_c(self) -> float | None:
        if self._zones is None:
            self._zones = [zone / "temp" for zone in _THERMAL.glob("thermal_zone*")]
        temps = []
        for zone in self._zones:
            try:
                temps.append(int(zone.read_text().strip()) / 1000.0)
            except (OSError, ValueError):
                continue
        return max(temps) if temps else None

    def device_fingerprint(self) -> dict[str, str]:
        fp = host_fingerprint(packages=("farm", "llama-cpp-python"))
        # Benchmarks inherit the actor's scheduling priority; a non-zero value here explains slow numbers.
        fp["fp_nice"] = str(os.getpriority(os.PRIO_PROCESS, 0))
        return fp
