"""The ``host`` device kind reached over SSH: an x86 or ARM server running simulators or CPU baselines.

What it adds to an SSH device (:mod:`actors.ssh_device`):

* **Slot** — one, like a local host.
* **Sampler** — :class:`RemoteRssSampler` polls ``/proc/<pid>/status`` of every process in the run's process
  group (the transport starts each command as its own group): ``peak_rss_mib`` is the larger of the highest
  ``VmHWM`` of one process and the highest summed ``VmRSS`` seen at a poll, as for a local host
  (:class:`~actors.rss_watch.PeakRssSampler`), in MiB. Polls after 0.1 s, 0.3 s, then every 0.5 s, one SSH
  round trip each; a run shorter than the first poll has no ``peak_rss_mib``.
* **Fingerprint** — :meth:`~actors.ssh_device.SshDevice.host_fingerprint`: ``fp_kernel`` (``uname -r``),
  ``fp_cpu_model`` (``/proc/cpuinfo``), ``fp_cpu_count`` (``nproc``), ``fp_arch``, ``fp_os``, ``fp_hostname``,
  ``fp_python``, ``fp_cpu_governor`` (cpufreq scaling governors, where readable).
* **Temperature** — the hottest ``/sys/class/thermal`` zone; a server without zones is asked once only.
* **Energy** — RAPL package and dram counters (:class:`~actors.energy.RaplSampler`), read over SSH at the start
  and end of each run, where the server has them; zones are listed once per actor.
"""

from __future__ import annotations

import logging
import threading
import time

from actors.bench.host import HostBench, saved_file
from actors.bench.session import BenchControl, SavedFile
from actors.device import RunSampler
from actors.energy import RaplDomain, RaplSampler, WithEnergy, parse_rapl_listing, rapl_listing_script
from actors.ssh_device import SshDevice
from actors.transports.base import Transport
from farm.errors import FarmError, OutputParseError
from farm.probes.proc_status import parse_proc_status
from farm.specs.inventory import HostDevice

log = logging.getLogger(__name__)

_FIRST_POLLS_S = (0.1, 0.3)
_PROC_SEPARATOR = "__farm_proc__"
_THERMAL = "cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null; exit 0"


def group_status_script(pgid: int) -> str:
    """Shell printing the VmHWM/VmRSS lines of every process in group ``pgid``, one block per process."""
    return (
        f"for p in $(pgrep -g {pgid} 2>/dev/null || echo {pgid}); do "
        f"grep -E '^Vm(HWM|RSS):' /proc/$p/status 2>/dev/null; echo {_PROC_SEPARATOR}; done"
    )


def group_peak_mib(text: str) -> float | None:
    """max(highest VmHWM of one process, summed VmRSS) of one poll's output, in MiB; None when nothing ran."""
    peaks: list[float] = []
    total = 0.0
    for block in text.split(_PROC_SEPARATOR):
        try:
            status = parse_proc_status(block)
        except OutputParseError:
            continue  # gone between pgrep and grep, or a zombie
        if status.peak_rss_mib is not None:
            peaks.append(status.peak_rss_mib)
        total += status.rss_mib or 0.0
    if not peaks and total == 0.0:
        return None
    return max([total, *peaks])


def hottest_zone_c(text: str) -> float | None:
    """The highest plausible reading of ``thermal_zone*/temp`` values (millidegrees C)."""
    temps = []
    for token in text.split():
        try:
            value = int(token) / 1000.0
        except ValueError:
            continue
        if 0.0 < value < 150.0:  # disabled sensors read 0 or absurd values
            temps.append(value)
    return max(temps) if temps else None


class RemoteRssSampler:
    """Peak resident memory of one remote run's process group (a RunSampler; see the module docstring)."""

    def __init__(self, ssh: Transport, interval_s: float = 0.5) -> None:
        self.ssh = ssh
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_mib: float | None = None
        self.polls = 0
        self.poll_seconds = 0.0

    def start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._loop, args=(pid,), name=f"ssh-rss-{pid}", daemon=True)
        self._thread.start()

    def _loop(self, pgid: int) -> None:
        gaps = iter(_FIRST_POLLS_S)
        while not self._stop.wait(next(gaps, self.interval_s)):
            t0 = time.perf_counter()
            try:
                done = self.ssh.run(["sh", "-c", group_status_script(pgid)], timeout=10.0)
            except FarmError as exc:  # the link dropped: the run reports it; stop looking
                log.debug("rss sampler for %s stopped: %s", pgid, exc)
                return
            self.polls += 1
            self.poll_seconds += time.perf_counter() - t0
            seen = group_peak_mib(done.stdout)
            if seen is not None:
                self.peak_mib = max(self.peak_mib or 0.0, seen)

    def stop(self) -> dict[str, float]:
        if self._thread is None:
            return {}
        self._stop.set()
        self._thread.join(15.0)
        samples = {"sampler_polls": float(self.polls)}
        if self.polls:
            samples["sampler_poll_ms"] = round(1000.0 * self.poll_seconds / self.polls, 3)
        if self.peak_mib is not None:
            samples["peak_rss_mib"] = round(self.peak_mib, 3)
        return samples


class SshHost(SshDevice):
    """A server reached over SSH (see the module docstring)."""

    kind = "host"
    sample_interval_s = 0.5
    powercap = "/sys/class/powercap"  # where the RAPL zones are (tests point it at a recorded tree)

    def __init__(self, spec: HostDevice) -> None:
        super().__init__(spec)
        self._has_zones: bool | None = None
        self._rapl: list[RaplDomain] | None = None

    def sampler(self, slot_id: str) -> RunSampler:
        rss = RemoteRssSampler(self.ssh, self.sample_interval_s)
        if self._rapl is None:  # asked once: a server's RAPL zones do not come and go
            self._rapl = parse_rapl_listing(self.probe(["sh", "-c", rapl_listing_script(self.powercap)]).stdout)
        if not self._rapl:
            return rss
        rapl = RaplSampler(self._rapl, read=self._read_counters)
        rapl.measure_idle()
        return WithEnergy(rss, rapl)

    def _read_counters(self, domains: list[RaplDomain]) -> list[int]:
        """One ``cat`` of the counters over SSH (root-only since Linux 5.10: a refusal is the row's reason)."""
        done = self.ssh.run(["cat", *(str(d.energy_file) for d in domains)], timeout=10.0)
        values = done.stdout.split()
        if done.exit_code != 0 or len(values) != len(domains):
            raise OSError(done.stderr.strip()[-200:] or f"cat exited with {done.exit_code}")
        return [int(v) for v in values]

    def bench_control(self) -> tuple[BenchControl, SavedFile]:
        return HostBench(self.ssh), saved_file(self.ssh, ".cache/farm", self.spec.id)

    def temperature_c(self) -> float | None:
        if self._has_zones is False:
            return None
        temp = hottest_zone_c(self.probe(["sh", "-c", _THERMAL]).stdout)
        self._has_zones = temp is not None
        return temp

    def device_fingerprint(self) -> dict[str, str]:
        return self.host_fingerprint()
