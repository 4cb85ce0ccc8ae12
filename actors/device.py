"""The device-kind-independent procedure of one run, and the hooks a device kind fills in.

A run: take the slot's lease (an OS lock: one run per slot on this node, across processes; see
:mod:`actors.lease`) → place artifacts (content-addressed, skipped when unchanged) → thermal gate (wait until
the device is back near its idle temperature, capped) → start the command through the transport with samplers
attached to its pid → collect output, samples and the environment fingerprint. Infrastructure faults become
``RunResult.infra_error``; a failed benchmark is just a non-zero ``exit_code``, and so is any other exception.
"""

from __future__ import annotations

import logging
import posixpath
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

from actors import exec_wrap, run_files
from actors.artifacts import CACHE_DIR, local_copy
from actors.bench.session import BenchControl, BenchSession, SavedFile
from actors.energy import MeterSampler, WithEnergy, energy_columns
from actors.host_probe import column_suffix
from actors.lease import SlotLease
from actors.messages import RunRequest, RunResult, ThermalGate
from actors.rss_watch import peak_mib
from actors.run_files import rendered_copy
from actors.transports.base import Transport
from farm.errors import FarmError, InfraError, RunRefused
from farm.sim.synthetic import marks_synthetic
from farm.specs.bench import BenchMode
from farm.specs.inventory import DeviceSpec, Slot

log = logging.getLogger(__name__)


class RunSampler(Protocol):
    """Watches one running command: ``start(pid)`` when it starts (it may return a poll the local transport calls
    while it waits: see :data:`actors.transports.base.OnStart`), ``stop()`` returns flat numeric samples."""

    def start(self, pid: int) -> Callable[[], None] | None: ...

    def stop(self) -> dict[str, float]: ...


class NullSampler:
    def start(self, pid: int) -> None:
        pass

    def stop(self) -> dict[str, float]:
        return {}


class Device(ABC):
    """One physical device (phone, box, host) with one or more slots. Thread-safe: slots run concurrently."""

    kind: str = ""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.synthetic = spec.synthetic
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._fingerprint: dict[str, str] | None = None
        self._idle_temp_c: float | None = spec.idle_temp_c
        self.health_reason = ""  # why the last health check found the device unusable ("" when it was fine)
        self._inputs = run_files.InputHasher()
        self._bench: BenchSession | None = None

    # ----- hooks for device kinds ----------------------------------------------------------------------
    @abstractmethod
    def transport(self, slot_id: str) -> Transport:
        """The transport that reaches the slot (shared by a box's slots)."""

    def slots(self) -> list[Slot]:
        return self.spec.slots()

    def slot_env(self, slot: Slot) -> dict[str, str]:
        """Extra env a slot needs (e.g. which NPU is visible)."""
        return {}

    def sampler(self, slot_id: str) -> RunSampler:
        return NullSampler()

    def energy_meter(self) -> MeterSampler | None:
        """The inventory's external meter, started now for its idle window (None when the device has none)."""
        if self.spec.energy_meter is None:
            return None
        meter = MeterSampler(list(self.spec.energy_meter.command))
        meter.measure_idle()
        return meter

    def temperature_c(self) -> float | None:
        """The device's current temperature (hottest relevant zone), or None when it has no sensor."""
        return None

    def device_fingerprint(self) -> dict[str, str]:
        return {}

    def run_fingerprint(self, req: RunRequest) -> dict[str, str]:
        """Facts that depend on where the run executes (e.g. inside a container), added to the device's."""
        return {}

    def bind_cores(self, argv: list[str], cores: str) -> list[str]:
        """Pin the command to ``cores`` (e.g. ``"4,5,6,7"``); the default wraps it in ``taskset``."""
        from actors.transports.local import taskset_argv

        return taskset_argv(cores, argv)

    def health(self) -> dict[str, str]:
        """State per slot: ``idle`` when reachable, else ``offline`` / ``unauthorized`` / ``untrusted`` (refused
        on purpose, e.g. a changed SSH host key); the reason goes to :attr:`health_reason`."""
        return {s.slot_id: "idle" for s in self.slots()}

    def bench_control(self) -> tuple[BenchControl, SavedFile] | None:
        """What bench mode can change on this device and where it saves the device's own values (None: nothing)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook: most kinds hold nothing to release
        """Release connections (called when the actor shuts down)."""

    # ----- the run ------------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, str]:
        if self._fingerprint is None:
            self._fingerprint = self.device_fingerprint()
        return dict(self._fingerprint)

    def cancel(self, run_id: str) -> bool:
        with self._lock:
            event = self._cancels.get(run_id)
        if event is None:
            return False
        event.set()
        return True

    def execute(self, req: RunRequest, cancel: threading.Event | None = None) -> RunResult:
        """Run ``req`` on its slot. ``cancel``: set to stop it (as :meth:`cancel` does); the caller's own event
        when it must be able to cancel the run before it starts (a batch's later runs, ``actors.ray_actor``)."""
        res = RunResult(synthetic=self.synthetic)
        cancel = cancel if cancel is not None else threading.Event()
        with self._lock:
            self._cancels[req.run_id] = cancel
        lease = SlotLease(req.slot_id, f"run {req.run_id} attempt {req.attempt} of job {req.job}")
        try:
            if lease.wait(cancel):
                self._bench_mode(req, res)
                self._execute(req, res, cancel)
            else:
                res.cancelled = True  # cancelled while another process held the slot
        except InfraError as exc:
            res.infra_error = str(exc) or type(exc).__name__
        except FarmError as exc:
            # Refused on purpose (e.g. a changed SSH host key): not an infra fault to retry, a failed run.
            res.exit_code = res.exit_code if res.exit_code is not None else 255
            res.stderr += f"\nfarm: {exc}"
        except Exception as exc:
            # Anything else (a bad `cores` value, a bug in a device kind) is a failed run: only an InfraError
            # counts against the device, so a healthy device is never retried into quarantine over it.
            log.exception("%s: run %s raised", self.spec.id, req.run_id)
            res.exit_code = res.exit_code if res.exit_code is not None else 255
            res.stderr += f"\nfarm: the device actor raised {type(exc).__name__}: {exc}"
        finally:
            lease.release()
            with self._lock:
                self._cancels.pop(req.run_id, None)
        if lease.waited_s >= 0.05:
            res.samples["lease_wait_s"] = round(lease.waited_s, 3)
        # A stand-in tool or package ran, or the run showed the device is virtual (a phone's properties, a box's
        # first probes are read during its first run).
        res.synthetic = res.synthetic or self.synthetic or marks_synthetic(res.stdout, res.stderr)
        return res

    # ----- bench mode (actors.bench) --------------------------------------------------------------------
    def _bench_mode(self, req: RunRequest, res: RunResult) -> None:
        """Put the device in the run's bench mode (the job's profile, else the inventory's) and record it."""
        mode = BenchMode.model_validate(req.bench_mode) if req.bench_mode is not None else self.spec.bench_mode
        with self._lock:
            if self._bench is None:
                control = self.bench_control()
                if control is None:
                    if mode is not None:
                        record = {"profile": mode.profile(), "applied": {}, "readback": {}, "ok": False}
                        res.bench_mode = {**record, "warnings": [f"not controllable on a {self.kind} device"]}
                    return
                self._bench = BenchSession(control[0], control[1], self.spec.id)
            session = self._bench
        try:
            res.bench_mode = session.ensure(req.job, mode)
        except RunRefused:
            res.bench_mode = session.refused  # the failed row shows what did not read back
            raise

    def end_bench_mode(self, job: str) -> list[str]:
        """``job`` ended: restore the device's own settings if it was the last job using bench mode."""
        return self._bench.end(job) if self._bench is not None else []

    def close_bench_mode(self) -> None:
        if self._bench is not None:
            self._bench.close()

    def _execute(self, req: RunRequest, res: RunResult, cancel: threading.Event) -> None:
        slot = next((s for s in self.slots() if s.slot_id == req.slot_id), None)
        if slot is None:
            raise InfraError(f"device {self.spec.id} has no slot {req.slot_id}")
        transport = self.transport(req.slot_id)
        res.fingerprint = self.fingerprint()
        res.fingerprint.update(self.run_fingerprint(req))
        for art in req.artifacts:
            src, digest = local_copy(art), art.sha256
            if art.constants:
                src, digest = rendered_copy(src, dict(art.constants), CACHE_DIR, art.name)
            pushed = transport.push(src, art.dst, art.mode)
            res.bytes_pushed += pushed.bytes_pushed
            res.fingerprint[f"fp_sha256_{column_suffix(art.name)}"] = digest
        for path, digest in self._inputs.hashes(transport, req.inputs, req.workdir).items():
            res.fingerprint[f"fp_sha256_{column_suffix(posixpath.basename(path))}"] = digest
        before = run_files.list_matches(transport, req.workdir, req.collect) if req.collect and req.workdir else {}
        if req.collect_clear and req.workdir:
            run_files.clear(transport, req.workdir, before)
            before = {}
        if req.thermal is not None:
            res.samples.update(self._thermal_gate(req.thermal, cancel))
        if cancel.is_set():
            res.cancelled = True
            return
        argv = self.bind_cores(list(req.argv), req.cores) if req.cores else list(req.argv)
        env = {**self.slot_env(slot), **req.env}  # the job's explicit env wins
        workdir = req.workdir
        pidfile = exec_wrap.pid_file(req.run_id, req.attempt)
        if req.docker is not None:  # env and workdir apply inside the container, which keeps its own PATH
            env = {k: v for k, v in env.items() if k != "PATH" or "PATH" in req.env}
            argv, env, workdir = exec_wrap.docker_argv(req.docker, argv, env, workdir, pidfile), {}, None
        if "temp_start_c" not in res.samples:  # the thermal gate already read it
            temp_start = self.temperature_c()
            if temp_start is not None:
                res.samples["temp_start_c"] = temp_start
        sampler = self.sampler(req.slot_id)
        # An external meter measures instead of the device's own source. Started last: nothing that can raise
        # stands between its process and the try/finally that stops it.
        meter = self.energy_meter()
        if meter is not None:
            sampler = WithEnergy(sampler, meter)

        def on_start(pid: int) -> Callable[[], None] | None:
            if req.dispatched_at:
                res.dispatch_latency_s = max(0.0, time.time() - req.dispatched_at)
            return sampler.start(pid)

        res.argv, res.env = argv, env
        res.started_at = time.time()
        started = False
        try:
            completed = transport.run(
                argv, env=env, workdir=workdir, timeout=req.timeout_s, cancel=cancel, on_start=on_start
            )
            started = True
        finally:
            samples = sampler.stop()
        res.samples.update(samples)
        res.energy.update(energy_columns(sampler))
        if started and req.docker is not None and (completed.timed_out or completed.cancelled):
            # docker exec does not forward signals: the command is still running inside the container
            killed = transport.run(exec_wrap.kill_argv(req.docker, pidfile), timeout=30.0)
            if killed.exit_code != 0:
                log.warning("%s: could not stop run %s inside container %s: %s", self.spec.id, req.run_id,
                            req.docker, killed.stderr.strip()[-200:])  # fmt: skip
        if started and req.collect and req.workdir:
            self._collect(transport, req, before, res)
        if started and completed.reaped_peak_kib is not None and req.docker is None:
            # The kernel's own peak of the command (the sampler may not have sampled a run that short).
            peak = peak_mib(res.samples.get("peak_rss_mib"), completed.reaped_peak_kib)
            if peak is not None:
                res.samples["peak_rss_mib"] = peak
        if started:
            res.exit_code = completed.exit_code
            res.stdout = completed.stdout
            res.stderr = completed.stderr
            res.duration_s = completed.duration_s
            res.timed_out = completed.timed_out
            res.cancelled = completed.cancelled

    def _collect(self, transport: Transport, req: RunRequest, before: run_files.Listing, res: RunResult) -> None:
        assert req.workdir is not None
        try:
            res.collected, problem = run_files.collect(transport, req.workdir, req.collect, before)
        except InfraError as exc:  # the run itself ended: its row stays, saying what could not be copied
            res.collected, problem = [], f"collect failed: {exc}"
        res.samples["collected_count"] = float(len(res.collected))
        res.collect_error = problem or None

    def _thermal_gate(self, gate: ThermalGate, cancel: threading.Event) -> dict[str, float]:
        """Wait until the device is near its idle baseline (or below ``max_temp_c``), at most ``max_wait_s``."""
        temp = self.temperature_c()
        if temp is None:
            return {}
        if self._idle_temp_c is None:
            self._idle_temp_c = temp  # first reading of a fresh actor: the best idle estimate we have
        target = gate.max_temp_c if gate.max_temp_c is not None else self._idle_temp_c + gate.margin_c
        t0 = time.monotonic()
        first = temp
        while temp > target and time.monotonic() - t0 < gate.max_wait_s and not cancel.is_set():
            cancel.wait(gate.poll_s)
            reading = self.temperature_c()
            temp = reading if reading is not None else temp
        waited = time.monotonic() - t0
        return {
            "cooldown_wait_s": round(waited, 3),
            "cooldown_target_c": target,
            "temp_gate_first_c": first,
            "temp_start_c": temp,
            "cooldown_capped": float(temp > target),
        }
