"""The controller: a Ray actor that owns the device pool, the job queue and the results writer.

It is thin glue. The pure :class:`~farm.scheduler.Scheduler` decides which run goes to which idle slot; the
controller renders the run, sends it to the device actor, turns the outcome into a row (``farm.rows``) and tells
the scheduler. One asyncio loop, no threads: every state change happens on that loop.

It is longer than 500 lines on purpose: job intake, dispatch, recording and the health checks all read and change
the same job, slot and in-flight tables on that one loop, and what stands apart from them already lives in its
own module (decisions in ``farm.scheduler``, rows in ``farm.rows``, planning in ``farm.plan``, metrics in
``farm.metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.messages import ArtifactRef, RunRequest, RunResult, ThermalGate, pack_requests, unpack_results
from farm import batching
from farm.batching import BatchSizer
from farm.errors import ConfigError, ControllerError, ResultsError
from farm.metrics import DeviceSnapshot, FarmMetrics, FarmSnapshot
from farm.plan import ANY_SLOT, Rendered, RunSpec, adaptive_repeats, check_job_on, count_runs, plan_runs, render
from farm.recorder import Recorder
from farm.results import ResultsStore, ResultsWriter
from farm.rows import build_row, classify, collected_columns, job_settings, log_text
from farm.scheduler import Assignment, Final, Scheduler, SlotState
from farm.specs.inventory import Inventory, Slot
from farm.specs.job import JobSpec, job_from_dict
from farm.workloads import WorkloadAdapter, make_adapter

log = logging.getLogger(__name__)

NAMESPACE = "farm"
CONTROLLER_NAME = "farm-controller"
TERMINAL = ("done", "cancelled")


@dataclass
class ControllerOptions:
    health_interval_s: float = 5.0
    quarantine_after: int = 3
    offline_grace_s: float = 60.0
    flush_rows: int = 500
    flush_seconds: float = 5.0
    actor_max_restarts: int = -1
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no exporter; 0: any free port
    batch_window_s: float = batching.WINDOW_S  # short runs share a call to their device, about this long (0: off)
    batch_max: int = batching.MAX_SIZE  # runs in one call at most


@dataclass
class _JobRecord:
    job_id: str
    spec: JobSpec
    source: str
    adapter: WorkloadAdapter
    writer: ResultsWriter
    artifacts: list[ArtifactRef]
    total: int
    attempt_base: dict[str, int]
    submitted_at: float
    state: str = "running"
    statuses: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    retries: int = 0
    finished_at: float | None = None
    done_event: asyncio.Event = field(default_factory=asyncio.Event)
    recording: int = 0  # finished runs whose log and row are being written off the event loop
    settings: dict[str, Any] = field(default_factory=dict)  # the rows' ``settings`` column (farm.rows)
    not_started: int = 0  # runs a cancel dropped before they reached a device: counted, no row each
    cancelled_at: float | None = None
    headline: str | None = None  # adaptive repeats: the metric whose value the scheduler is fed
    sizer: BatchSizer = field(default_factory=BatchSizer)  # how many of its runs one call carries


@dataclass
class _Inflight:
    """One call to a device: its runs (one, or a batch run in this order) and the reference to their results."""

    job_id: str
    runs: list[tuple[RunSpec, RunRequest]]
    ref: Any


class Controller:
    """Ray async actor. Create it and call it through :class:`farm.client.FarmClient`."""

    def __init__(self, inventory: dict[str, Any], results_root: str, options: ControllerOptions | None = None) -> None:
        self.inventory = Inventory.model_validate(inventory)
        self.store = ResultsStore(results_root)
        self.options = options or ControllerOptions()
        self.scheduler = Scheduler(self.options.quarantine_after, self.options.offline_grace_s)
        self.devices: dict[str, Any] = {}  # device id → actor handle
        self.device_info: dict[str, dict[str, Any]] = {}
        self.temperatures: dict[str, float] = {}  # device id → last temperature seen (°C)
        self.powers: dict[str, float] = {}  # slot id → average power of its last run with a valid energy (W)
        self.synthetic_devices = {d.id for d in self.inventory.devices if d.synthetic}
        self.slots: dict[str, Slot] = {}
        self.jobs: dict[str, _JobRecord] = {}
        self.inflight: dict[str, _Inflight] = {}  # slot id → run in flight
        self._rechecking: set[str] = set()  # devices whose lost actor is being waited for (_hold_until_healthy)
        self._wake = asyncio.Event()
        self._recorder_thread: Recorder | None = None  # writes finished runs' logs and rows (started on first use)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self.dispatch_latencies: deque[float] = deque(maxlen=100_000)  # the latest runs' latencies
        self.calls = 0  # execute calls sent to devices (a batch of short runs is one)
        self.runs_sent = 0
        self.metrics = FarmMetrics(snapshot=self.snapshot)
        self.metrics_address: tuple[str, int] | None = None

    # ----- life cycle ----------------------------------------------------------------------------------
    async def start(self) -> dict[str, Any]:
        """Create one device actor per inventory device on its node, learn their slots, start dispatching."""
        if self._started:
            return self._summary()
        import ray

        from actors.ray_actor import DeviceActor
        from farm.placement import device_actor_options

        remote_cls = ray.remote(DeviceActor)
        for dev in self.inventory.devices:
            opts = device_actor_options(dev, max_restarts=self.options.actor_max_restarts)
            self.devices[dev.id] = remote_cls.options(**opts).remote(dev.model_dump(mode="json"))
        infos = await asyncio.gather(*(h.info.remote() for h in self.devices.values()), return_exceptions=True)
        for dev, info in zip(self.inventory.devices, infos, strict=True):
            if isinstance(info, BaseException):
                log.error("device %s did not start: %s", dev.id, info)
                for slot in dev.slots():
                    self._add_slot(slot, SlotState.OFFLINE)
                continue
            self.device_info[dev.id] = info
            if info.get("synthetic"):
                self.synthetic_devices.add(dev.id)
            for data in info["slots"]:
                self._add_slot(Slot.model_validate(data), SlotState.IDLE)
        # Learn each slot's real state (offline, unauthorized) before the first run is handed out.
        await self.check_health()
        if self.options.metrics_port is not None:
            self.metrics_address = self.metrics.serve(self.options.metrics_host, self.options.metrics_port)
        self._tasks.append(asyncio.get_running_loop().create_task(self._dispatch_loop()))
        self._tasks.append(asyncio.get_running_loop().create_task(self._health_loop()))
        self._started = True
        return self._summary()

    def _add_slot(self, slot: Slot, state: SlotState) -> None:
        self.slots[slot.slot_id] = slot
        self.scheduler.add_slot(slot.slot_id, state)
        if state is not SlotState.IDLE:
            self.scheduler.set_available(slot.slot_id, False, time.monotonic(), state)

    def _summary(self) -> dict[str, Any]:
        return {
            "devices": len(self.devices),
            "slots": len(self.slots),
            "metrics_address": self.metrics_address,
        }

    def snapshot(self) -> FarmSnapshot:
        """Read by the metrics exporter at scrape time (from its own thread: copy, never iterate live dicts)."""
        states = self.scheduler.slot_states()
        temps = dict(self.temperatures)
        powers = dict(self.powers)
        devices = [
            DeviceSnapshot(
                slot=slot.slot_id,
                kind=slot.kind,
                node=str(self.device_info.get(slot.device_id, {}).get("hostname", slot.node or "")),
                state=states.get(slot.slot_id, SlotState.OFFLINE).value,
                temperature_c=temps.get(slot.device_id),
                power_w=powers.get(slot.slot_id),
            )
            for slot in list(self.slots.values())
        ]
        queue = {}
        for rec in list(self.jobs.values()):
            if rec.state not in TERMINAL:
                st = self._status(rec)
                queue[rec.spec.name] = st["queued"]
        return FarmSnapshot(devices=devices, queue_depth=queue)

    async def shutdown(self) -> None:
        for rec in self.jobs.values():
            if rec.state not in TERMINAL:
                await self.cancel(rec.job_id)
        for _ in range(3000):  # killed runs reporting, rows being written, cancellation records (at most 30 s)
            if not any(rec.recording or rec.state not in TERMINAL for rec in self.jobs.values()):
                break
            self._wake.set()
            await asyncio.sleep(0.01)
        for rec in self.jobs.values():
            rec.writer.close()
        for task in self._tasks:
            task.cancel()
        self.metrics.close()
        # Close the devices' connections (SSH sessions, …) while their actors are still there to do it.
        closing = [h.close.remote() for h in self.devices.values()]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 30)

    # ----- jobs ----------------------------------------------------------------------------------------
    async def submit(
        self,
        job_data: dict[str, Any],
        source: str,
        base_dir: str,
        artifacts: list[ArtifactRef],
        rerun: bool = False,
        single: dict[str, Any] | None = None,
    ) -> str:
        """Queue a job; returns its job id at once. Already-``ok`` runs of the same job are skipped.

        ``single`` (``farm rerun``): run only this one recorded run — ``run_id``, ``slot_id``, ``params``,
        ``repeat``, ``warmup`` as its row says — as the next attempt of that run id.
        """
        spec = job_from_dict(job_data, source, Path(base_dir))
        active = [r for r in self.jobs.values() if r.spec.name == spec.name and r.state not in TERMINAL]
        if active:
            raise ControllerError(f"job {spec.name!r} is already running as {active[0].job_id}")
        slot_list = list(self.slots.values())
        check_job_on(spec, slot_list, source, "the farm")
        counts = count_runs(spec, slot_list)
        plan: Iterable[RunSpec] = plan_runs(spec, slot_list)
        if single is not None:
            if single["slot_id"] not in self.slots:
                raise ControllerError(f"no device slot {single['slot_id']!r} in this farm's inventory")
            run = (single["run_id"], single["slot_id"], dict(single["params"]), int(single["repeat"]))
            plan = [RunSpec(*run, warmup=bool(single.get("warmup")))]
            counts, rerun = {single["slot_id"]: 1}, True
        if not counts:
            raise ConfigError.single(source, "devices", "matches no device of the farm")
        job_id = f"{spec.name}-{uuid.uuid4().hex[:8]}"
        done = set() if rerun else await asyncio.to_thread(self.store.done_run_ids, spec.name, spec.build)
        attempt_base = await asyncio.to_thread(self.store.attempts, spec.name)
        rec = _JobRecord(
            job_id=job_id,
            spec=spec,
            source=source,
            adapter=make_adapter(spec.workload, spec.workload_options),
            writer=self.store.writer(spec.name, self.options.flush_rows, self.options.flush_seconds),
            artifacts=artifacts,
            total=sum(counts.values()),
            attempt_base=attempt_base,
            submitted_at=time.time(),
            settings=job_settings(spec),
            sizer=BatchSizer(self.options.batch_window_s, self.options.batch_max),
        )
        self.jobs[job_id] = rec
        chosen = [s for s in spec.devices.select(slot_list)]
        adaptive = adaptive_repeats(spec) if single is None else None  # a rerun repeats one run, no more
        rec.headline = adaptive.metric if adaptive is not None else None
        known: dict[str, float] = {}
        if adaptive is not None and done:  # the values of the repeats done before count toward the decision
            known = await asyncio.to_thread(self.store.metric_values, spec.name, adaptive.metric, done, spec.build)
        self.scheduler.submit(
            job_id,
            plan,
            [s.slot_id for s in chosen],
            spec.retries,
            done,
            adaptive=adaptive,
            grid_order=spec.order == "grid",
            known=known,
        )
        log.info("job %s submitted: %d runs, %d already done", job_id, rec.total, len(done))
        self._wake.set()
        return job_id

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Stop the job: running runs are killed (each gets its ``cancelled`` row), runs that never started get no
        row; they are counted once in the job's cancellation record (:meth:`ResultsStore.write_job_record`).
        Constant time whatever the size of the sweep."""
        rec = self._job(job_id)
        if rec.state in TERMINAL:
            return self._status(rec)
        rec.state = "cancelling"
        rec.cancelled_at = time.time()
        self.scheduler.cancel(job_id)
        prog = self.scheduler.progress(job_id)
        rec.not_started = max(0, rec.total - sum(rec.statuses.values()) - prog["running"] - prog["skipped"])
        for slot_id, fl in list(self.inflight.items()):
            if fl.job_id == job_id:
                dev = self.slots[slot_id].device_id
                self.devices[dev].cancel.remote([req.run_id for _, req in fl.runs])
        self._wake.set()
        return self._status(rec)

    async def wait(self, job_id: str, timeout_s: float | None = None) -> dict[str, Any]:
        rec = self._job(job_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rec.done_event.wait(), timeout_s)
        return self._status(rec)

    async def status(self, job_id: str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        if job_id is not None:
            return self._status(self._job(job_id))
        return [self._status(r) for r in self.jobs.values()]

    async def devices_status(self) -> list[dict[str, Any]]:
        out = []
        states = self.scheduler.slot_states()
        for slot_id, slot in self.slots.items():
            info = self.device_info.get(slot.device_id, {})
            fl = self.inflight.get(slot_id)
            out.append(
                {
                    "slot": slot_id,
                    "device_id": slot.device_id,
                    "kind": slot.kind,
                    "node": info.get("hostname", slot.node or ""),
                    "node_id": info.get("node_id", ""),
                    "state": states[slot_id].value,
                    "current_run": f"{fl.job_id}:{fl.runs[0][1].run_id}" if fl else "",
                    "reason": self.scheduler.slot_reason(slot_id),
                    "temperature_c": self.temperatures.get(slot.device_id),
                    "holder": fl.job_id if fl else "",  # the job whose run holds the slot's lease
                }
            )
        return out

    def _job(self, job_id: str) -> _JobRecord:
        rec = self.jobs.get(job_id)
        if rec is None:
            raise ControllerError(f"no job {job_id!r}; known: {', '.join(self.jobs) or 'none'}")
        return rec

    def _status(self, rec: _JobRecord) -> dict[str, Any]:
        prog = self.scheduler.progress(rec.job_id) if rec.job_id in self.scheduler.jobs() else {}
        finished = sum(rec.statuses.values())
        return {
            "job_id": rec.job_id,
            "job": rec.spec.name,
            "state": rec.state,
            "total": rec.total,
            "skipped": rec.skipped + prog.get("skipped", 0),
            "finished": finished,
            "running": prog.get("running", 0),
            "queued": max(0, rec.total - finished - prog.get("running", 0) - prog.get("skipped", 0) - rec.not_started),
            "not_started": rec.not_started,
            "retries": rec.retries,
            "statuses": dict(rec.statuses),
            "submitted_at": rec.submitted_at,
            "finished_at": rec.finished_at,
        }

    # ----- dispatch ------------------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        while True:
            self._wake.clear()
            now = time.monotonic()
            try:
                for final in self.scheduler.stranded(now):
                    self._record_final_without_result(self.jobs[final.job_id], final)
                for slot_id, leased in itertools.groupby(self.scheduler.assign(), key=lambda a: a.slot_id):
                    self._launch(slot_id, list(leased))
                self._finish_jobs()
            except Exception:  # the loop must survive any one bad run
                log.exception("dispatch loop error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    def _launch(self, slot_id: str, leased: list[Assignment]) -> None:
        """Send the slot's leased runs (one, or a batch of one job's short runs) to its device in one call."""
        rec = self.jobs[leased[0].job_id]
        slot = self.slots[slot_id]
        runs: list[tuple[RunSpec, RunRequest]] = []
        for a in leased:
            try:
                rendered = render(rec.spec, a.run, slot, rec.source)
            except ConfigError as exc:
                self.scheduler.finish(slot_id, "failed", str(exc), time.monotonic(), run_id=a.run.run_id)
                req = _request(rec, a.run, slot_id, a.attempt)
                self._record(rec, a.run, req, RunResult(started_at=time.time()), "failed", "; ".join(exc.lines()), {})
                rec.statuses["failed"] += 1
                continue
            arts = [
                ArtifactRef(x.name, x.sha256, x.size, dst, x.mode, x.local_path, x.ref, tuple(consts.items()))
                for x, (_, dst, _), consts in zip(rec.artifacts, rendered.artifacts, rendered.constants, strict=True)
            ]
            req = _request(rec, a.run, slot_id, a.attempt, rendered, arts)
            runs.append((a.run, req))
        if not runs:
            return
        data, refs = pack_requests([req for _, req in runs])
        self.calls += 1
        self.runs_sent += len(runs)
        actor = self.devices[slot.device_id]
        ref = actor.execute.remote(data, refs) if refs else actor.execute.remote(data)
        self.inflight[slot_id] = _Inflight(rec.job_id, runs, ref)
        asyncio.get_running_loop().create_task(self._await_call(slot_id))

    async def _await_call(self, slot_id: str) -> None:
        fl = self.inflight[slot_id]
        lost: str | None = None  # why the device's actor is gone
        try:
            results = unpack_results(await fl.ref)
        except Exception as exc:  # the first run gets the failure; the rest are run again (see farm.batching)
            failed = _failed_call(exc)
            lost = failed.infra_error
            results = [failed, *[None] * (len(fl.runs) - 1)]
        del self.inflight[slot_id]
        rec = self.jobs[fl.job_id]
        unstarted: list[str] = []
        for (run, req), res in zip(fl.runs, results, strict=True):
            if res is None:
                unstarted.append(req.run_id)
            else:
                self._ended(slot_id, rec, run, req, res)
        if unstarted:
            self.scheduler.release(slot_id, unstarted)
            if rec.state == "cancelling":
                rec.not_started += len(unstarted)
        if lost is not None:
            self._hold_until_healthy(self.slots[slot_id].device_id, lost)
        self.scheduler.set_batch(rec.job_id, rec.sizer.observe(r.held_s for r in results if r is not None))
        # The slot is free: let the loop hand it its next runs while the recorder thread writes these runs' logs
        # and rows (file I/O and Parquet flushes would delay every other slot's dispatch); the job is not reported
        # done until ``recording`` is back to 0.
        self._wake.set()

    def _ended(self, slot_id: str, rec: _JobRecord, run: RunSpec, req: RunRequest, res: RunResult) -> None:
        """One run of a call came back: tell the scheduler and the metrics, queue its log and row."""
        status, error, metrics = classify(res, rec.adapter)
        if rec.state == "cancelling" and status == "infra_error":
            status, error = "cancelled", "cancelled while running"
        slot = self.slots[slot_id]
        if res.dispatch_latency_s is not None:
            self.dispatch_latencies.append(res.dispatch_latency_s)
            self.metrics.dispatched(job=rec.spec.name, slot=slot_id, latency_s=res.dispatch_latency_s)
        for key in ("temp_max_c", "temp_end_c", "temp_start_c"):
            if key in res.samples:
                self.temperatures[slot.device_id] = res.samples[key]
                break
        if res.energy.get("energy_valid") is True and isinstance(watts := res.energy.get("avg_power_w"), float):
            self.powers[slot_id] = watts
        value = metrics.get(rec.headline) if rec.headline is not None else None
        final = self.scheduler.finish(slot_id, status, error or "", time.monotonic(), value=value, run_id=req.run_id)
        rec.total += final.added if final is not None else 0  # repeats the stopping rule asked for
        self.metrics.run_finished(
            job=rec.spec.name,
            slot=slot_id,
            kind=slot.kind,
            node=res.node or str(slot.node or ""),
            status=status,
            duration_s=res.duration_s,
            metrics=metrics,
            peak_rss_mib=res.samples.get("peak_rss_mib"),
            bytes_pushed=res.bytes_pushed,
            artifacts=len(req.artifacts),
        )
        if final is None:
            rec.retries += 1
            self.metrics.retried(job=rec.spec.name, slot=slot_id)
            log.warning("run %s on %s: %s — retrying", req.run_id, slot_id, error)
        else:
            rec.statuses[status] += 1
        rec.recording += 1
        closing = final.closing if final is not None else None
        write = functools.partial(self._record, rec, run, req, res, status, error, metrics, closing)
        self._recorder().submit(rec, write)

    def _recorder(self) -> Recorder:
        if self._recorder_thread is None:
            self._recorder_thread = Recorder(asyncio.get_running_loop(), self._recorded)
        return self._recorder_thread

    def _recorded(self, records: list[_JobRecord]) -> None:
        """On the loop: the recorder wrote these runs' logs and rows."""
        for rec in records:
            rec.recording -= 1
        self._wake.set()

    def _record(
        self,
        rec: _JobRecord,
        run: RunSpec,
        req: RunRequest,
        res: RunResult,
        status: str,
        error: str | None,
        metrics: dict[str, float],
        closing: dict[str, Any] | None = None,
    ) -> None:
        """Write the run's log and row; ``closing``: the adaptive-repeat decision of the point this run closed."""
        if run.warmup and not rec.spec.record_warmup:
            return
        # Synced with the row flush that writes this run's row, not per run (farm.results.run_logs).
        log_path = self.store.write_log(rec.spec.name, req.run_id, req.attempt, log_text(req, res), durable=False)
        try:
            files = self.store.write_files(
                rec.spec.name, req.run_id, req.attempt, [(f.path, f.data) for f in res.collected]
            )
        except ResultsError as exc:  # the row is still written, saying the files are missing
            files, res.collect_error = None, f"collected files not stored: {exc}"
        slot = self.slots.get(req.slot_id)
        row = build_row(
            job=rec.spec.name,
            req=req,
            params=run.params,
            repeat=run.repeat,
            warmup=run.warmup,
            device_kind=slot.kind if slot else "",
            res=res,
            status=status,
            error=error,
            metrics=metrics,
            log_path=log_path,
            synthetic=rec.spec.synthetic or (slot is not None and slot.device_id in self.synthetic_devices),
            settings=rec.settings,
            adapter=rec.adapter,
            device_id=slot.device_id if slot else None,
            build=rec.spec.build,
        )
        row.update(collected_columns(res, files))
        row.update(closing or {})
        row["job_id"] = rec.job_id  # the submission the row belongs to (the HTTP API pages a submission's rows)
        if not row["node"] and slot is not None:
            row["node"] = self.device_info.get(slot.device_id, {}).get("hostname", slot.node or "")
        rec.writer.add(row)
        rec.writer.flush_if_due()

    def _record_final_without_result(self, rec: _JobRecord, final: Final) -> None:
        """A run that ends without reaching a device (stranded on a slot that stayed unavailable)."""
        slot_id = final.run.slot_id or (final.run.candidates[0] if final.run.candidates else ANY_SLOT)
        argv: list[str] = []
        slot = self.slots.get(slot_id)
        if slot is not None:
            with contextlib.suppress(ConfigError):
                argv = render(rec.spec, final.run, slot, rec.source).argv
        req = dataclasses.replace(_request(rec, final.run, slot_id, final.attempt), argv=argv)
        self._record(rec, final.run, req, RunResult(started_at=time.time()), final.status, final.error, {})
        rec.statuses[final.status] += 1

    def _finish_jobs(self) -> None:
        for rec in self.jobs.values():
            if rec.state in TERMINAL or rec.job_id not in self.scheduler.jobs() or rec.recording:
                continue
            if self.scheduler.job_done(rec.job_id):
                rec.skipped = self.scheduler.progress(rec.job_id)["skipped"]
                self.scheduler.forget(rec.job_id)
                rec.state = "cancelled" if rec.state == "cancelling" else "done"
                rec.finished_at = time.time()
                try:
                    rec.writer.close()  # flushes, and gives up the job's partition lock
                    if rec.state == "cancelled":
                        self.store.write_job_record(rec.spec.name, rec.job_id, self._cancellation(rec))
                except Exception:
                    log.exception("job %s: its last rows or its cancellation record could not be written", rec.job_id)
                # then sets done_event; kept in _tasks so the task is not collected while it waits
                self._tasks.append(asyncio.get_running_loop().create_task(self._end_bench_mode(rec)))
                log.info("job %s %s: %s", rec.job_id, rec.state, dict(rec.statuses))

    async def _end_bench_mode(self, rec: _JobRecord) -> None:
        """The job's devices restore their own settings (bench mode) before the job is reported finished."""
        chosen = {s.device_id for s in rec.spec.devices.select(list(self.slots.values()))}
        devices = sorted(d for d in chosen if d in self.devices)
        try:
            calls = [self.devices[d].end_bench_mode.remote(rec.spec.name) for d in devices]
            results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 120)
            for device, problems in zip(devices, results, strict=True):
                if problems:
                    log.error("job %s: %s did not restore its own settings: %s", rec.job_id, device, problems)
        except Exception:
            log.exception("job %s: restoring the devices' own settings failed", rec.job_id)
        finally:
            rec.done_event.set()

    def _cancellation(self, rec: _JobRecord) -> dict[str, Any]:
        st = self._status(rec)
        return {
            "job": rec.spec.name,
            "job_id": rec.job_id,
            "state": rec.state,
            "total": rec.total,
            "not_started": rec.not_started,
            "finished": sum(rec.statuses.values()),
            "skipped": st["skipped"],
            "statuses": dict(rec.statuses),
            "submitted_at": rec.submitted_at,
            "cancelled_at": rec.cancelled_at,
            "finished_at": rec.finished_at,
        }

    # ----- health --------------------------------------------------------------------------------------
    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.health_interval_s)
            await self.check_health()

    async def check_health(self, device_ids: list[str] | None = None) -> None:
        now = time.monotonic()
        for dev_id, handle in self.devices.items():
            if device_ids is not None and dev_id not in device_ids:
                continue
            try:
                report: dict[str, Any] = await asyncio.wait_for(handle.health_report.remote(), 30)
                states: dict[str, str] = report["states"]
                reason = str(report.get("reason") or "")
            except Exception as exc:
                log.warning("device %s health check failed: %s", dev_id, exc)
                states = {s.slot_id: "offline" for s in self.slots.values() if s.device_id == dev_id}
                reason = f"its actor did not answer: {type(exc).__name__}"
            for slot_id, state in states.items():
                if slot_id not in self.slots:
                    continue
                ok = state == "idle"
                self.scheduler.set_available(slot_id, ok, now, SlotState.IDLE if ok else SlotState(state), reason)
        self._wake.set()

    def _hold_until_healthy(self, device_id: str, reason: str) -> None:
        """A device whose actor died gets no run until its (restarted) actor answers a health check: a retry sent
        into a restarting actor would fail too and burn the run's retries on one fault."""
        now = time.monotonic()
        for slot in self.slots.values():
            if slot.device_id == device_id:
                self.scheduler.set_available(slot.slot_id, False, now, SlotState.OFFLINE, reason)
        if device_id not in self._rechecking:
            self._rechecking.add(device_id)
            asyncio.get_running_loop().create_task(self._recheck(device_id))

    async def _recheck(self, device_id: str) -> None:
        delay = 0.2
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    await asyncio.wait_for(self.devices[device_id].health_report.remote(), 30)
                except Exception:  # still restarting (or gone: the health loop and offline grace take over)
                    delay = min(delay * 2, self.options.health_interval_s)
                    continue
                await self.check_health([device_id])
                return
        finally:
            self._rechecking.discard(device_id)

    async def device_handles(self) -> dict[str, Any]:
        return dict(self.devices)

    async def stats(self) -> dict[str, Any]:
        """Figures the benchmarks read: dispatch latencies (s) of every run so far, the controller's pid, the calls
        sent to devices and the runs they carried."""
        return {
            "dispatch_latencies_s": list(self.dispatch_latencies),
            "pid": os.getpid(),
            "calls": self.calls,
            "runs_sent": self.runs_sent,
        }


def _failed_call(exc: BaseException) -> RunResult:
    """The outcome of an ``execute`` call that raised. The actor's own code raising (Ray's ``RayTaskError``) is a
    failed run, never a strike against the device; the actor or its node dying (``RayActorError``, a lost
    worker, …) is an infra fault of the device."""
    import ray.exceptions as rex

    if isinstance(exc, rex.RayTaskError) and not isinstance(exc, rex.RayActorError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        return RunResult(
            exit_code=255, stderr=f"farm: the device actor raised {type(cause).__name__}: {str(cause)[:500]}"
        )
    return RunResult(infra_error=f"device actor failed: {type(exc).__name__}: {str(exc)[:300]}")


def _request(
    rec: _JobRecord,
    run: RunSpec,
    slot_id: str,
    attempt: int,
    rendered: Rendered | None = None,
    artifacts: list[ArtifactRef] | None = None,
) -> RunRequest:
    """The request of one run, as rendered (None: a run that never reaches a device, recorded with an empty
    command)."""
    cd = rec.spec.cooldown
    cores = run.params.get("cores")
    return RunRequest(
        job=rec.spec.name,
        run_id=run.run_id,
        attempt=rec.attempt_base.get(run.run_id, 0) + attempt,
        slot_id=slot_id,
        argv=rendered.argv if rendered is not None else [],
        env=rendered.env if rendered is not None else {},
        workdir=rendered.workdir if rendered is not None else None,
        timeout_s=rec.spec.timeout,
        artifacts=artifacts or [],
        cores=str(cores) if cores is not None and not isinstance(cores, bool) else None,
        thermal=ThermalGate(cd.max_temp_c, cd.margin_c, cd.max_wait, cd.poll) if cd else None,
        dispatched_at=time.time(),
        collect_clear=rec.spec.collect_clear,
        docker=rec.spec.exec.docker if rec.spec.exec is not None else None,
        bench_mode=rec.spec.bench_mode.profile() if rec.spec.bench_mode is not None else None,
        inputs=rendered.inputs if rendered is not None else [],
        collect=rendered.collect if rendered is not None else [],
    )
