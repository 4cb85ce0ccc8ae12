"""What every device reached over SSH shares: one connection, health, ``~`` paths, the synthetic label, the
remote host fingerprint, and a status poller shared by a box's concurrent slots.

* :class:`SshDevice` — the base of the ``sophgo``, ``ascend`` and SSH ``host`` kinds. One
  :class:`~actors.transports.ssh.SshTransport` per device, shared by every slot (SSH multiplexes one channel
  per command). ``health()`` runs ``true`` on the box: ``idle`` for every slot when that works, ``offline``
  otherwise; a :class:`~farm.errors.SecurityError` (unknown or changed host key, refused key) makes it
  ``untrusted`` with the error's text as ``health_reason`` (shown by ``farm devices``), is logged as an error —
  once per distinct message, not every health round — and is never retried: the scheduler ends the device's
  runs at once with that reason, and a run handed to it before a health check noticed ends ``failed`` with the
  error's text (see :meth:`actors.device.Device.execute`). Nothing is sent to the box either way.
* ``~`` — a run's ``workdir`` and artifact destinations may start with ``~/`` (the jobs in ``jobs/`` do); the
  transport quotes paths, so the box's shell would not expand them. They are rewritten to the box's ``$HOME``
  (asked once). ``~user/`` and ``~`` inside command arguments are left alone.
* Synthetic — the scripted stand-ins of ``farm/sim/boxes`` label their output; a probe whose output carries the
  label marks the whole device synthetic (its hardware figures are made up), a run whose output carries it
  marks that run's row synthetic.
* :class:`BoxMonitor` — polls one status command (``bm-smi``, ``npu-smi info``) while at least one run is in
  flight, for all of them at once: every poll reports every chip, and each run's :class:`MonitorWatch` keeps
  the maxima of its own chip. Polls come 0.2 s and 0.5 s after a run joins (a short run still gets a reading),
  then every ``interval_s``. A poll counts for the runs in flight when it began, even when its answer comes
  back after a run ended (a run's sampler waits up to 5 s for it: on a slow link a reading taken mid-run
  often arrives late); a poll that fails (link down) is skipped, the run itself reports the fault.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from actors.device import Device, RunSampler
from actors.messages import RunRequest, RunResult
from actors.transports.base import Completed, Transport, checked
from actors.transports.ssh import SshConfig, SshTransport
from farm.errors import (
    ConfigError,
    ConnectionLostError,
    DeviceOfflineError,
    FarmError,
    InfraError,
    OutputParseError,
    SecurityError,
)
from farm.sim.synthetic import marks_synthetic
from farm.specs.inventory import AscendDevice, HostDevice, Slot, SophgoDevice, SshConnection

log = logging.getLogger(__name__)

Reading = dict[str, float]
"""One poll's figures for one chip / NPU, e.g. ``{"mem_used_mb": 1024.0, "util_pct": 87.0}``."""

_PROBE_TIMEOUT_S = 30.0
_HEALTH_TIMEOUT_S = 10.0
_FIRST_GAPS_S = (0.2, 0.5)  # after a run joins the monitor: early readings for short runs, then the interval
_DELIVERY_WAIT_S = 5.0
_SECTION = "__farm_section__"


def ssh_config(device_id: str, conn: SshConnection) -> SshConfig:
    """The transport settings of an inventory ``ssh:`` block (the device id labels log lines and errors)."""
    return SshConfig(
        host=conn.host,
        port=conn.port,
        user=conn.user,
        key_file=conn.key_file,
        known_hosts=conn.known_hosts,
        password_env=conn.password_env,
        connect_timeout_s=conn.connect_timeout_s,
        device_label=device_id,
    )


def expand_home(path: str, home: str) -> str:
    """``~`` or ``~/x`` → ``<home>`` / ``<home>/x``; any other path unchanged."""
    if path == "~":
        return home
    if path.startswith("~/"):
        return home.rstrip("/") + path[1:]
    return path


def _needs_home(path: str | None) -> bool:
    return path is not None and (path == "~" or path.startswith("~/"))


# -- the remote host fingerprint -------------------------------------------------------------------------------

# One round trip; each section's output follows a marker line so a missing tool leaves its section empty.
_HOST_PROBES: tuple[tuple[str, str], ...] = (
    ("fp_kernel", "uname -r"),
    ("fp_arch", "uname -m"),
    ("fp_cpu_count", "nproc"),
    # x86 says "model name"; arm64 kernels say "Hardware", "Processor" or nothing but "CPU part"
    ("fp_cpu_model", "grep -m1 -E '^(model name|Hardware|Processor|cpu model)[[:space:]]*:' /proc/cpuinfo"),
    ("fp_os", '. /etc/os-release 2>/dev/null && printf "%s\\n" "$PRETTY_NAME"'),
    ("fp_hostname", "hostname"),
    ("fp_python", "python3 -V 2>&1"),
    ("fp_cpu_governor", "cat /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor | sort -u | paste -sd, -"),
)


def host_fingerprint_script() -> str:
    return "; ".join(f"echo {_SECTION}{key}; {cmd} 2>/dev/null" for key, cmd in _HOST_PROBES)


def parse_host_fingerprint(text: str) -> dict[str, str]:
    """The ``fp_*`` columns from the output of :func:`host_fingerprint_script` (empty sections dropped)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(_SECTION):
            current = sections.setdefault(line[len(_SECTION) :].strip(), [])
        elif current is not None and line.strip():
            current.append(line.strip())
    fp: dict[str, str] = {}
    for key, lines in sections.items():
        if not lines:
            continue
        value = lines[0]
        if key == "fp_cpu_model":
            value = value.split(":", 1)[1].strip() if ":" in value else value
        elif key == "fp_python":
            value = value.removeprefix("Python ").strip()
        fp[key] = value
    return fp


# -- the base class ---------------------------------------------------------------------------------------------


class SshDevice(Device):
    """A device behind one SSH connection (see the module docstring). Kinds add slots, samplers, fingerprints."""

    def __init__(self, spec: SophgoDevice | AscendDevice | HostDevice) -> None:
        super().__init__(spec)
        if spec.ssh is None:
            raise ConfigError.single(f"device {spec.id}", "ssh", "an SSH device needs an ssh: block")
        self.ssh = SshTransport(ssh_config(spec.id, spec.ssh))
        self._home: str | None = None
        self._home_lock = threading.Lock()
        self._last_refusal = ""

    # -- hooks ------------------------------------------------------------------------------------------------
    def transport(self, slot_id: str) -> Transport:
        return self.ssh

    def health(self) -> dict[str, str]:
        try:
            self.ssh.check_output(["true"], timeout=_HEALTH_TIMEOUT_S)
            state = "idle"
            self._last_refusal = ""
        except SecurityError as exc:
            if str(exc) != self._last_refusal:
                log.error("%s: refused, will not connect until this is fixed: %s", self.spec.id, exc)
                self._last_refusal = str(exc)
            state = "untrusted"
            self.health_reason = str(exc)
        except InfraError as exc:
            log.info("%s: health: %s", self.spec.id, exc)
            state = "offline"
            self.health_reason = str(exc)
        except FarmError as exc:  # e.g. password_env names an unset variable: the same on every try
            if str(exc) != self._last_refusal:
                log.error("%s: cannot connect: %s", self.spec.id, exc)
                self._last_refusal = str(exc)
            state = "offline"
            self.health_reason = str(exc)
        if state == "idle":
            self.health_reason = ""
        return {s.slot_id: state for s in self.slots()}

    def close(self) -> None:
        self.ssh.close()

    def before_run(self, req: RunRequest, res: RunResult) -> None:
        """Called before the generic run with ``~`` already expanded; raise FarmError to refuse the run."""

    # -- the run ----------------------------------------------------------------------------------------------
    def execute(self, req: RunRequest) -> RunResult:
        res = super().execute(req)  # a run whose output carries the stand-ins' label is marked there
        res.synthetic = res.synthetic or self.synthetic  # the first probes may have found a stand-in box
        return res

    def _execute(self, req: RunRequest, res: RunResult, cancel: threading.Event) -> None:
        req = self.with_home(req)
        self.before_run(req, res)
        super()._execute(req, res, cancel)

    def with_home(self, req: RunRequest) -> RunRequest:
        """``req`` with a leading ``~`` of its workdir, artifact destinations and inputs replaced by the box's $HOME."""
        if not (
            _needs_home(req.workdir)
            or any(_needs_home(a.dst) for a in req.artifacts)
            or any(map(_needs_home, req.inputs))
        ):
            return req
        home = self.remote_home()
        return dataclasses.replace(
            req,
            workdir=expand_home(req.workdir, home) if req.workdir is not None else None,
            artifacts=[dataclasses.replace(a, dst=expand_home(a.dst, home)) for a in req.artifacts],
            inputs=[expand_home(p, home) for p in req.inputs],
        )

    def remote_home(self) -> str:
        with self._home_lock:
            if self._home is None:
                home = self.ssh.check_output(["sh", "-c", 'printf "%s" "$HOME"'], timeout=_PROBE_TIMEOUT_S).strip()
                if not home.startswith("/"):
                    raise DeviceOfflineError(f"{self.spec.id}: the box reports no usable $HOME ({home!r})")
                self._home = home
            return self._home

    # -- probes -----------------------------------------------------------------------------------------------
    def probe(self, argv: Sequence[str], *, timeout: float = _PROBE_TIMEOUT_S) -> Completed:
        """Run a short status command; a stand-in's synthetic label marks the device synthetic."""
        done = self.ssh.run(argv, timeout=timeout)
        if done.timed_out:
            raise ConnectionLostError(f"{self.spec.id}: probe {shlex.join(argv)!r} timed out after {timeout} s")
        if marks_synthetic(done.stdout, done.stderr) and not self.synthetic:
            log.info("%s: %s is a scripted stand-in: rows from this device are synthetic", self.spec.id, argv[0])
            self.synthetic = True
        return done

    def check_output(self, argv: Sequence[str], *, timeout: float = _PROBE_TIMEOUT_S) -> str:
        """The transport's :meth:`~actors.transports.base.Transport.check_output` for a status command the device
        cannot work without, also noting a stand-in's synthetic label (the tools print it on stderr)."""
        return checked(self.probe(argv, timeout=timeout), self.spec.id, argv, timeout)

    def host_fingerprint(self) -> dict[str, str]:
        """``fp_kernel``, ``fp_arch``, ``fp_cpu_count``, ``fp_cpu_model``, ``fp_os``, ``fp_hostname``, ``fp_python``,
        ``fp_cpu_governor`` (where cpufreq is readable)."""
        return parse_host_fingerprint(self.probe(["sh", "-c", host_fingerprint_script()]).stdout)


# -- the shared status poller -----------------------------------------------------------------------------------


class MonitorWatch:
    """The maxima of one chip's readings over the polls made while one run was in flight (a RunSampler)."""

    def __init__(self, monitor: BoxMonitor, index: int, columns: Mapping[str, str]) -> None:
        self.monitor = monitor
        self.index = index
        self.columns = dict(columns)  # reading key → row column
        self.last_at = 0.0
        self.in_flight = 0  # polls begun while this run was watched and not yet delivered
        self.attempts = 0
        self.polls = 0
        self.poll_seconds = 0.0
        self.peaks: dict[str, float] = {}

    def start(self, pid: int) -> None:
        self.monitor.attach(self)

    def next_due(self, interval_s: float) -> float:
        gap = _FIRST_GAPS_S[self.attempts] if self.attempts < len(_FIRST_GAPS_S) else interval_s
        return self.last_at + gap

    def feed(self, at: float, readings: Mapping[int, Reading] | None, seconds: float) -> None:
        self.attempts += 1
        self.last_at = at
        if readings is None:
            return
        self.polls += 1
        self.poll_seconds += seconds
        for key, value in readings.get(self.index, {}).items():
            if key in self.columns:
                self.peaks[key] = max(self.peaks.get(key, value), value)

    def stop(self) -> dict[str, float]:
        self.monitor.detach(self)
        samples = {self.columns[key]: round(value, 3) for key, value in self.peaks.items()}
        samples["sampler_polls"] = float(self.polls)
        if self.polls:
            samples["sampler_poll_ms"] = round(1000.0 * self.poll_seconds / self.polls, 3)
        return samples


class BoxMonitor:
    """One status command polled for all runs in flight on a box (see the module docstring). Thread-safe."""

    def __init__(self, read: Callable[[], dict[int, Reading]], *, interval_s: float = 1.0, label: str = "") -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self._read = read
        self.interval_s = interval_s
        self.label = label
        self._cond = threading.Condition()
        self._watches: list[MonitorWatch] = []
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()  # one poll at a time, whoever asks
        self._last: tuple[float, dict[int, Reading]] | None = None
        self.polls = 0  # every poll made, for every run: the box-side cost is this, not the sum over runs

    def watch(self, index: int, columns: Mapping[str, str]) -> MonitorWatch:
        return MonitorWatch(self, index, columns)

    def attach(self, watch: MonitorWatch) -> None:
        with self._cond:
            watch.last_at = time.monotonic()
            self._watches.append(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"box-monitor-{self.label}", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def detach(self, watch: MonitorWatch) -> None:
        """Stop watching; first wait (briefly) for a poll begun while the run was going: on a slow link its
        reading, taken during the run, often arrives after the run has ended."""
        deadline = time.monotonic() + _DELIVERY_WAIT_S
        with self._cond:
            if watch in self._watches:
                self._watches.remove(watch)
            self._cond.notify_all()
            while watch.in_flight and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))

    def current(self, max_age_s: float) -> dict[int, Reading]:
        """The latest readings, polling now unless a poll younger than ``max_age_s`` already has them."""
        last = self._last
        if last is not None and time.monotonic() - last[0] <= max_age_s:
            return last[1]
        return self._poll()[0]

    def _poll(self) -> tuple[dict[int, Reading], float]:
        with self._poll_lock:
            t0 = time.monotonic()
            readings = self._read()
            self.polls += 1
            self._last = (time.monotonic(), readings)
            return readings, time.monotonic() - t0

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._watches:
                        self._thread = None
                        return
                    now = time.monotonic()
                    due = min(w.next_due(self.interval_s) for w in self._watches)
                    if due <= now:
                        break
                    self._cond.wait(due - now)
                started = time.monotonic()
                # runs that started after the poll began are not fed by it: it may have read the chip before
                targets = list(self._watches)
                for w in targets:
                    w.in_flight += 1
            readings: dict[int, Reading] | None
            try:
                readings, seconds = self._poll()
            except FarmError as exc:  # the box dropped: the run reports that; the monitor just skips this poll
                log.debug("%s: status poll failed: %s", self.label, exc)
                readings, seconds = None, 0.0
            with self._cond:
                for w in targets:
                    w.feed(started, readings, seconds)
                    w.in_flight -= 1
                self._cond.notify_all()


class AcceleratorBox(SshDevice):
    """A box with one slot per accelerator (TPU chip, NPU), all watched by one status tool (``bm-smi``,
    ``npu-smi``) whose single poll serves every run in flight on the box."""

    sample_interval_s = 1.0
    columns: Mapping[str, str] = {}  # the tool's reading name → the row column of its peak over a run

    def _watch_accelerators(
        self, read: Callable[[], dict[int, Reading]], declared: list[int] | None, field: str, tool: str, what: str
    ) -> None:
        """Start the shared monitor and learn the slots: the inventory's ``field`` list, or what ``tool`` lists
        once at start (falling back to index 0 when it cannot answer)."""
        self.monitor = BoxMonitor(read, interval_s=self.sample_interval_s, label=self.spec.id)
        spec = self.spec
        assert isinstance(spec, SophgoDevice | AscendDevice)
        if declared is not None:
            self._slots = spec.slots()
        else:
            try:
                found = sorted(read())
                log.info("%s: %s lists %s %s", spec.id, tool, what, found)
                self._slots = spec.model_copy(update={field: found}).slots()
            except FarmError as exc:
                log.warning(
                    "%s: cannot list %s with %s (%s); using index 0 only — list `%s:` in the inventory to use "
                    "every one whatever the box's state when the farm starts",
                    spec.id,
                    what,
                    tool,
                    exc,
                    field,
                )
                self._slots = spec.slots()
        self._index = {s.slot_id: s.index for s in self._slots}

    def slots(self) -> list[Slot]:
        return list(self._slots)

    def sampler(self, slot_id: str) -> RunSampler:
        return self.monitor.watch(self._index.get(slot_id) or 0, self.columns)

    def temperature_c(self) -> float | None:
        try:
            readings = self.monitor.current(max_age_s=2.0)
        except OutputParseError:
            return None
        temps = [r["temp_c"] for r in readings.values() if "temp_c" in r]
        return max(temps) if temps else None
