"""The ``android`` device kind: a phone reached through an adb server (USB or ``adb connect`` over TCP).

What a phone adds to the generic run (:mod:`actors.device`):

* **Transport** — one :class:`~actors.transports.adb.AdbTransport` per phone (shell v2, content-addressed
  pushes, reconnect of TCP phones).
* **Core binding** — a run's ``cores`` parameter becomes ``taskset <hex mask>`` (toybox accepts the hex form).
  Forks that pin their own threads read env vars instead (the elastic-infer fork's
  ``LLAMA_COMPUTING_THREAD_CPU_CORE_IDS``); those come from the job's ``env`` template, e.g.
  ``LLAMA_COMPUTING_THREAD_CPU_CORE_IDS: "{cores}"``, not from here.
* **Sampler** — :class:`PhoneSampler` polls ``/proc/<pid>/status`` (``VmHWM`` → ``peak_rss_mib``), the relevant
  thermal zones (→ ``temp_max_c``, ``temp_end_c``) and the big cores' ``scaling_cur_freq`` (→ ``throttled``,
  ``big_freq_ratio_min``) in one shell round trip per poll: after 0.1 s, 0.3 s, then every 0.5 s, so a short
  run still gets samples and a long one costs two round trips a second. Its own cost is in the row
  (``sampler_polls``, ``sampler_poll_ms``: mean round-trip time of a poll).
* **Temperature** — the hottest *relevant* zone: zones whose type names the SoC (``cpu``, ``gpu``, ``soc``,
  ``tsens``, ``cluster``, ``apc``, ``mtktscpu``, …); when a phone has none of those, every zone except board,
  battery and radio sensors (``battery``, ``bms``, ``charger``, ``usb``, ``pa-therm``, ``xo-therm``, ``skin``, …).
  Readings outside 0–150 °C are disabled or bogus sensors and are skipped. Used by the thermal gate
  (:meth:`actors.device.Device._thermal_gate`), whose wait shows in the row as ``cooldown_wait_s``.
* **Throttling** — ``throttled`` is 1.0 when at some poll while the benchmark ran *no* big core (inventory
  ``cores.big``, else the cores whose ``cpuinfo_max_freq`` is above the slowest cluster's) ran at 90 % of its
  ``cpuinfo_max_freq`` or more; ``big_freq_ratio_min`` is the lowest such ratio seen. The fastest big core is
  taken, not each one, because cores the benchmark leaves idle sit at low clocks, and polls where every big
  core sits at its ``cpuinfo_min_freq`` (the benchmark is not using them, e.g. a GPU run) say nothing and are
  skipped: with no telling poll the row has no ``throttled`` value. A memory-bound run on a ``schedutil``
  governor may still read as throttled; ``temp_max_c`` tells the two apart.
* **Energy** — where ``/sys/class/power_supply/battery`` has ``current_now``, ``voltage_now`` and ``status``
  (checked once, at discovery), each poll reads them with the big cores' clocks and each run starts with an idle
  window (three reads over 0.5 s, one round trip): ``energy_j``, ``avg_power_w``, ``idle_power_w``,
  ``energy_valid`` (false while charging), … (:meth:`PhoneSampler.energy_columns`; ``docs/measurement.md``).
* **Fingerprint** — ``fp_model``, ``fp_board_platform``, ``fp_soc`` (inventory label ``soc``, else
  ``ro.soc.model``, else the board platform), ``fp_build_fingerprint``, ``fp_android_release``, ``fp_kernel``,
  ``fp_cpu_max_freq_khz`` (``"0:1804800,1:…"``), ``fp_synthetic`` (``ro.farm.synthetic``). A phone that says
  ``ro.farm.synthetic=1`` (a virtual phone) has every row marked ``synthetic``, whatever the inventory says.
* **Health** — ``idle`` when the adb server lists the phone as ``device``, ``unauthorized`` when it waits for
  the RSA key prompt, ``offline`` otherwise; a TCP phone found offline is reconnected first.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass

from actors.bench.phone import PhoneBench
from actors.bench.session import BenchControl, SavedFile
from actors.device import Device, RunSampler
from actors.energy import IDLE_WINDOW_S
from actors.transports.adb import AdbTransport
from actors.transports.base import Transport
from farm.errors import InfraError, OutputParseError
from farm.probes.power import ColumnValue, GaugeReading, gauge_power, parse_gauge, sampled_energy
from farm.probes.proc_status import parse_proc_status
from farm.probes.thermal_zones import parse_thermal_zones
from farm.sim.synthetic import SYNTHETIC_PROP
from farm.specs.inventory import AndroidDevice

log = logging.getLogger(__name__)

_CPU_DIR = "/sys/devices/system/cpu"
_THERMAL_DIR = "/sys/class/thermal"
_SOC_ZONE = re.compile(r"cpu|gpu|soc|tsens|cluster|apc|mtktscpu|aoss|cpuss|gpuss|big|little|prime|mid", re.I)
_BOARD_ZONE = re.compile(
    r"batt|bms|charg|usb|pmic|pa[-_]?therm|xo[-_]?therm|skin|quiet|wlan|wifi|modem|mdm|camera|flash|ntc|conn", re.I
)
_MIN_PLAUSIBLE_C, _MAX_PLAUSIBLE_C = 0.0, 150.0
_THROTTLE_RATIO = 0.9
_FIRST_POLLS_S = (0.1, 0.2)  # gaps before the first polls; then every ``interval_s``
_SECTION = "@@farm-"
_BATTERY = "/sys/class/power_supply/battery"
_GAUGE_FILES = tuple(f"{_BATTERY}/{name}" for name in ("current_now", "voltage_now", "status"))
_IDLE_READS = 3  # fuel gauge reads of the idle window, spread over it


@dataclass(frozen=True)
class PhoneLayout:
    """What a phone is, read once per device actor: properties, kernel, per-core max clocks, thermal zones."""

    props: dict[str, str]
    kernel: str
    cpu_max_khz: dict[int, int]
    cpu_min_khz: dict[int, int]
    zones: dict[int, str]  # zone index → type, only the relevant zones (see module docstring)
    big_cores: tuple[int, ...]
    gauge: bool = False  # the battery fuel gauge's current_now and voltage_now read as numbers at discovery

    def thermal_command(self) -> str:
        """One ``cat`` of every relevant zone's ``temp`` (zones unreadable at discovery were left out)."""
        files = " ".join(f"{_THERMAL_DIR}/thermal_zone{z}/temp" for z in sorted(self.zones))
        return f"cat {files} 2>/dev/null || true" if files else "true"  # a failed read is None, not an error

    def freq_command(self) -> str:
        """One ``cat`` of the big cores' clocks, then the fuel gauge's files when the phone has one (one line
        each: see :meth:`split_freq_gauge`)."""
        files = [f"{_CPU_DIR}/cpu{c}/cpufreq/scaling_cur_freq" for c in self.big_cores]
        files += list(_GAUGE_FILES) if self.gauge else []
        return f"cat {' '.join(files)} 2>/dev/null || true" if files else "true"

    def split_freq_gauge(self, text: str) -> tuple[str, str]:
        """:meth:`freq_command` output → (clock lines, gauge lines); both empty when a file failed to read."""
        lines = text.splitlines()
        if len(lines) != len(self.big_cores) + (len(_GAUGE_FILES) if self.gauge else 0):
            return "", ""
        cut = len(self.big_cores)
        return "\n".join(lines[:cut]), "\n".join(lines[cut:])

    def idle_command(self, reads: int, gap_s: float) -> str:
        """``reads`` reads of the fuel gauge ``gap_s`` apart, in one round trip (the idle window)."""
        read = f"cat {' '.join(_GAUGE_FILES)} 2>/dev/null; echo {_SECTION}gauge"
        return f"; sleep {gap_s:g}; ".join([read] * reads)

    def temperature_from(self, text: str) -> float | None:
        """The hottest zone from :meth:`thermal_command` output; None when a read failed (lines would shift)."""
        values = text.split()
        if not values or len(values) != len(self.zones):
            return None
        lines = "\n".join(f"thermal_zone{z}/temp:{v}" for z, v in zip(sorted(self.zones), values, strict=True))
        return hottest_c(lines)

    def freq_ratio_from(self, text: str) -> float | None:
        """Fastest big core's clock / its max from :meth:`freq_command` output (see :func:`big_freq_ratio`)."""
        values = text.split()
        if len(values) != len(self.big_cores):
            return None
        return big_freq_ratio(dict(zip(self.big_cores, values, strict=True)), self)


def _sections(text: str) -> dict[str, str]:
    """Split probe output at ``@@farm-<name>`` lines into ``{name: text}`` (text before the first: ``""``)."""
    out: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if line.startswith(_SECTION):
            current = line[len(_SECTION) :].strip()
            out[current] = []
        else:
            out.setdefault(current, []).append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _parse_getprop(text: str) -> dict[str, str]:
    props = {}
    for m in re.finditer(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.MULTILINE):
        props[m[1]] = m[2]
    return props


def _pairs(text: str, prefix: str) -> dict[int, str]:
    """``{N: value}`` from ``<prefix>N value`` lines (value may be empty: that file was unreadable)."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.strip().partition(" ")
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            out[int(name[len(prefix) :])] = value.strip()
    return out


def relevant_zones(types: dict[int, str]) -> dict[int, str]:
    """The zones whose temperature says how hot the SoC is (see the module docstring for the rule)."""
    soc = {z: t for z, t in types.items() if _SOC_ZONE.search(t) and not _BOARD_ZONE.search(t)}
    return soc or {z: t for z, t in types.items() if t and not _BOARD_ZONE.search(t)}


def hottest_c(thermal_text: str) -> float | None:
    """The highest plausible temperature in ``…/thermal_zoneN/temp:<value>`` lines; None if none is readable."""
    try:
        zones = parse_thermal_zones(thermal_text).zones
    except OutputParseError:
        return None
    temps = [z.temp_c for z in zones if _MIN_PLAUSIBLE_C < z.temp_c <= _MAX_PLAUSIBLE_C]
    return max(temps) if temps else None


def big_freq_ratio(cur_khz: dict[int, str], layout: PhoneLayout) -> float | None:
    """Fastest big core's ``scaling_cur_freq / cpuinfo_max_freq``; None when no big core could be read or all
    of them sit at their minimum clock (idle: the benchmark does not use them)."""
    ratios = []
    active = False
    for cpu, value in cur_khz.items():
        top = layout.cpu_max_khz.get(cpu)
        if value.isdigit() and top:
            ratios.append(int(value) / top)
            active = active or int(value) > layout.cpu_min_khz.get(cpu, 0)
    return max(ratios) if ratios and active else None


class PhoneSampler:
    """Polls one benchmark's memory, the phone's temperature and big-core clocks while it runs (thread)."""

    def __init__(self, transport: AdbTransport, layout: PhoneLayout, interval_s: float = 0.5) -> None:
        self.transport = transport
        self.layout = layout
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.peak_rss_mib: float | None = None
        self.temps: list[float] = []
        self.ratios: list[float] = []
        self.polls = 0
        self.poll_seconds = 0.0
        self.idle: list[GaugeReading] = []
        self.gauge: list[GaugeReading] = []
        self.window = (0.0, 0.0)  # (start, end) of the run on time.monotonic

    def measure_idle(self, window_s: float = IDLE_WINDOW_S) -> None:
        """The idle baseline: three fuel gauge reads spread over ``window_s`` right before the run, in one round
        trip (the phone sleeps between them); each is stamped at its share of the round trip."""
        if not self.layout.gauge:
            return
        t0 = time.monotonic()
        command = self.layout.idle_command(_IDLE_READS, window_s / (_IDLE_READS - 1))
        out = self.transport.check_output(["sh", "-c", command], timeout=10.0 + window_s)
        t1 = time.monotonic()
        texts = out.split(f"{_SECTION}gauge")[:_IDLE_READS]
        for i, text in enumerate(texts):
            reading = parse_gauge(t0 + (t1 - t0) * i / max(1, len(texts) - 1), text)
            if reading is not None:
                self.idle.append(reading)

    def start(self, pid: int) -> None:
        self.window = (time.monotonic(), 0.0)
        self._pid = pid
        self._thread = threading.Thread(target=self._loop, name=f"phone-sampler-{pid}", daemon=True)
        self._thread.start()

    def _command(self, pid: int | None) -> str:
        parts = []
        if pid is not None:
            parts.append(f"cat /proc/{pid}/status 2>/dev/null")
        parts += [f"echo {_SECTION}thermal", self.layout.thermal_command()]
        if pid is not None:
            parts += [f"echo {_SECTION}freq", self.layout.freq_command()]
        return "; ".join(parts)

    def _poll(self, pid: int | None) -> float | None:
        """One round trip; records what it saw and returns the temperature (None if unreadable)."""
        t0, m0 = time.perf_counter(), time.monotonic()
        out = self.transport.check_output(["sh", "-c", self._command(pid)], timeout=10.0, reconnect=False)
        self.poll_seconds += time.perf_counter() - t0
        self.polls += 1
        parts = _sections(out)
        freq, gauge = self.layout.split_freq_gauge(parts.get("freq", ""))
        reading = parse_gauge((m0 + time.monotonic()) / 2, gauge)  # read mid round trip
        if reading is not None:
            self.gauge.append(reading)
        temp = self.layout.temperature_from(parts.get("thermal", ""))
        if pid is None:
            return temp
        try:
            status = parse_proc_status(parts.get("", ""))
        except OutputParseError:
            return temp  # the benchmark has exited: its clocks and temperature no longer describe the run
        if status.peak_rss_mib is not None or status.rss_mib is not None:
            seen = max(v for v in (status.peak_rss_mib, status.rss_mib) if v is not None)
            self.peak_rss_mib = max(self.peak_rss_mib or 0.0, seen)
        if temp is not None:
            self.temps.append(temp)
        ratio = self.layout.freq_ratio_from(freq)
        if ratio is not None:
            self.ratios.append(ratio)
        return temp

    def _loop(self) -> None:
        gaps = iter(_FIRST_POLLS_S)
        while not self._stop.wait(next(gaps, self.interval_s)):
            try:
                self._poll(self._pid)
            except InfraError as exc:
                # The phone dropped: the run itself reports that; the sampler just stops looking.
                log.debug("%s: sampler stopped: %s", self.transport.label, exc)
                return

    def stop(self) -> dict[str, float]:
        if self._thread is None:
            return {}
        self.window = (self.window[0], time.monotonic())
        self._stop.set()
        self._thread.join(15.0)
        samples: dict[str, float] = {}
        try:
            end = self._poll(None)
        except InfraError:
            end = None
        if end is not None:
            samples["temp_end_c"] = end
            self.temps.append(end)
        if self.peak_rss_mib is not None:
            samples["peak_rss_mib"] = round(self.peak_rss_mib, 3)
        if self.temps:
            samples["temp_max_c"] = max(self.temps)
        if self.ratios:
            samples["big_freq_ratio_min"] = round(min(self.ratios), 4)
            samples["throttled"] = float(min(self.ratios) < _THROTTLE_RATIO)
        samples["sampler_polls"] = float(self.polls)
        if self.polls:
            samples["sampler_poll_ms"] = round(1000.0 * self.poll_seconds / self.polls, 3)
        return samples

    def energy_columns(self) -> dict[str, ColumnValue]:
        """The run's energy from the fuel gauge (conventions detected over the idle and run reads together)."""
        if not self.layout.gauge or self._thread is None:
            return {}
        power = gauge_power(self.idle + self.gauge)
        idle, run = power.samples[: len(self.idle)], power.samples[len(self.idle) :]
        start, end = self.window
        reading = sampled_energy("fuel_gauge", run, idle, start, end, power.problem)
        return {**reading.columns(), "energy_gauge_unit": power.current_unit}


class Phone(Device):
    """An Android phone behind an adb server."""

    kind = "android"
    sample_interval_s = 0.5

    def __init__(self, spec: AndroidDevice) -> None:
        super().__init__(spec)
        self.android = spec
        self._transport = AdbTransport(spec.adb, device_label=spec.id)
        self._layout: PhoneLayout | None = None
        self._layout_lock = threading.Lock()

    # -- hooks -----------------------------------------------------------------------------------------------
    def transport(self, slot_id: str) -> Transport:
        return self._transport

    def bench_control(self) -> tuple[BenchControl, SavedFile]:
        control = PhoneBench(self._transport)
        return control, control.saved_file()

    def sampler(self, slot_id: str) -> RunSampler:
        sampler = PhoneSampler(self._transport, self.layout(), self.sample_interval_s)
        sampler.measure_idle()
        return sampler

    def temperature_c(self) -> float | None:
        layout = self.layout()
        if not layout.zones:
            return None
        return layout.temperature_from(
            self._transport.check_output(["sh", "-c", layout.thermal_command()], timeout=10.0)
        )

    def device_fingerprint(self) -> dict[str, str]:
        layout = self.layout()
        props = layout.props
        platform = props.get("ro.board.platform", "")
        synthetic = props.get(SYNTHETIC_PROP, "0") == "1"
        return {
            "fp_model": props.get("ro.product.model", ""),
            "fp_board_platform": platform,
            "fp_soc": self.spec.labels.get("soc") or props.get("ro.soc.model") or platform,
            "fp_build_fingerprint": props.get("ro.build.fingerprint", ""),
            "fp_android_release": props.get("ro.build.version.release", ""),
            "fp_kernel": layout.kernel,
            "fp_cpu_max_freq_khz": ",".join(f"{c}:{k}" for c, k in sorted(layout.cpu_max_khz.items())),
            "fp_synthetic": "1" if synthetic else "0",
        }

    def health(self) -> dict[str, str]:
        try:
            state = self._transport.state(reconnect=True)
            self.health_reason = "" if state == "device" else f"the adb server lists the phone as {state}"
        except InfraError as exc:
            log.info("%s: health: %s", self.spec.id, exc)
            state = "offline"
            self.health_reason = str(exc)
        mapped = "idle" if state == "device" else "unauthorized" if state == "unauthorized" else "offline"
        return {s.slot_id: mapped for s in self.slots()}

    # -- what the phone is ------------------------------------------------------------------------------------
    def layout(self) -> PhoneLayout:
        """Properties, clocks and thermal zones, read once (two round trips) and kept for the actor's life."""
        with self._layout_lock:
            if self._layout is None:
                self._layout = self._read_layout()
                if self._layout.props.get(SYNTHETIC_PROP) == "1":
                    self.synthetic = True
            return self._layout

    def _read_layout(self) -> PhoneLayout:
        t = self._transport
        listing = _sections(
            t.check_output(
                [
                    "sh",
                    "-c",
                    f"getprop; echo {_SECTION}kernel; uname -r; echo {_SECTION}cpus; "
                    f"cd {_CPU_DIR} && echo cpu[0-9]*; echo {_SECTION}zones; cd {_THERMAL_DIR} && echo thermal_zone*",
                ]
            )
        )
        cpus = sorted(int(w[3:]) for w in listing.get("cpus", "").split() if re.fullmatch(r"cpu\d+", w))
        zones = sorted(int(w[12:]) for w in listing.get("zones", "").split() if re.fullmatch(r"thermal_zone\d+", w))
        reads = []
        for bound in ("max", "min"):
            reads.append(f"echo {_SECTION}{bound}")
            reads += [
                f"echo -n 'cpu{c} '; cat {_CPU_DIR}/cpu{c}/cpufreq/cpuinfo_{bound}_freq 2>/dev/null || echo"
                for c in cpus
            ]
        reads.append(f"echo {_SECTION}cur")
        reads += [
            f"echo -n 'cpu{c} '; cat {_CPU_DIR}/cpu{c}/cpufreq/scaling_cur_freq 2>/dev/null || echo" for c in cpus
        ]
        reads.append(f"echo {_SECTION}types")
        reads += [f"echo -n 'zone{z} '; cat {_THERMAL_DIR}/thermal_zone{z}/type 2>/dev/null || echo" for z in zones]
        reads += [f"echo {_SECTION}gauge", f"cat {' '.join(_GAUGE_FILES)} 2>/dev/null"]
        reads.append(f"echo {_SECTION}temps")
        reads += [f"echo -n 'zone{z} '; cat {_THERMAL_DIR}/thermal_zone{z}/temp 2>/dev/null || echo" for z in zones]
        details = _sections(t.check_output(["sh", "-c", "; ".join(reads)]))
        max_khz = {c: int(v) for c, v in _pairs(details.get("max", ""), "cpu").items() if v.isdigit()}
        min_khz = {c: int(v) for c, v in _pairs(details.get("min", ""), "cpu").items() if v.isdigit()}
        readable_cur = {c for c, v in _pairs(details.get("cur", ""), "cpu").items() if v.isdigit()}
        temps = _pairs(details.get("temps", ""), "zone")
        # Polls read every file with one cat, so a file that cannot be read (or reads as a disabled sensor)
        # is left out here, once, rather than shifting the values of the others at every poll.
        types = {
            z: kind
            for z, kind in _pairs(details.get("types", ""), "zone").items()
            if hottest_c(f"thermal_zone{z}/temp:{temps.get(z, '')}") is not None
        }
        return PhoneLayout(
            props=_parse_getprop(listing.get("", "")),
            kernel=listing.get("kernel", "").strip(),
            cpu_max_khz=max_khz,
            cpu_min_khz=min_khz,
            zones=relevant_zones(types),
            big_cores=tuple(c for c in self._big_cores(max_khz) if c in readable_cur and c in max_khz),
            gauge=parse_gauge(0.0, details.get("gauge", "")) is not None,
        )

    def _big_cores(self, max_khz: dict[int, int]) -> tuple[int, ...]:
        cores = self.android.cores or {}
        if cores.get("big"):
            return tuple(sorted(cores["big"]))
        if not max_khz:
            return ()
        slowest = min(max_khz.values())
        faster = [c for c, k in max_khz.items() if k > slowest]
        return tuple(sorted(faster or max_khz))
