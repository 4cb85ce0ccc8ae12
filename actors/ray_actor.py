"""The Ray actor around a :class:`~actors.device.Device`: one per physical device, placed on its node.

Part of the Ray glue; :mod:`farm.client` lists the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from typing import Any

from actors.messages import RunResult, pack_results, unpack_requests
from actors.registry import make_device
from farm.specs.inventory import Inventory

log = logging.getLogger(__name__)

RAY_INJECTED_ENV: dict[str, str | None] = {"OMP_NUM_THREADS": "1", "PYTHONBREAKPOINT": "ray.util.rpdb.set_trace"}


class DeviceActor:
    """Threaded Ray actor (``max_concurrency`` = slots + control calls): each slot's call occupies one thread;
    ``cancel``/``health``/``info`` stay answerable while runs are in flight."""

    def __init__(self, spec_data: dict[str, Any]) -> None:
        for name, value in RAY_INJECTED_ENV.items():
            # Ray sets these in its workers; benchmarks must not inherit them (a job sets them in `env:` if needed).
            if value is None or os.environ.get(name) == value:
                os.environ.pop(name, None)
        inv = Inventory.model_validate({"devices": [spec_data]})
        self.spec = inv.devices[0]
        self.device = make_device(self.spec)
        self.node_id = _ray_node_id()
        self.hostname = socket.gethostname()
        self._closed = False
        self._lock = threading.Lock()
        self._cancels: dict[str, threading.Event] = {}  # run id → its cancel, for every run of the calls in hand

    def info(self) -> dict[str, Any]:
        return {
            "device_id": self.spec.id,
            "kind": self.spec.kind,
            "node_id": self.node_id,
            "hostname": self.hostname,
            "pid": os.getpid(),
            "slots": [s.model_dump() for s in self.device.slots()],
            "synthetic": self.device.synthetic,
        }

    def execute(self, data: bytes, refs: list[Any] | None = None) -> bytes:
        """Run the requests packed by :func:`~actors.messages.pack_requests` one after another (``refs`` only when
        an artifact has an object reference); their results, packed.

        A call holding several runs is a batch of short runs (``farm.batching``). A run queued behind another in
        it counts its dispatch latency from the moment that one ended. The batch stops at the first infra fault
        (the device may be gone) and skips runs cancelled before they started: each run not started comes back
        as None, for the controller to queue again or count as never started.
        """
        reqs = unpack_requests(data, refs or [])
        events = {req.run_id: threading.Event() for req in reqs}
        with self._lock:
            self._cancels.update(events)
        results: list[RunResult | None] = []
        stopped = False  # an infra fault: the rest are not started
        try:
            for i, req in enumerate(reqs):
                cancel = events[req.run_id]
                if stopped or cancel.is_set():
                    results.append(None)
                    continue
                t0 = time.monotonic()
                # queued behind the previous run: its dispatch latency counts from the moment that one ended
                res = self.device.execute(dataclasses.replace(req, dispatched_at=time.time()) if i else req, cancel)
                res.node, res.held_s = self.hostname, time.monotonic() - t0
                results.append(res)
                stopped = res.infra_error is not None
        finally:
            with self._lock:
                for run_id in events:
                    self._cancels.pop(run_id, None)
        return pack_results(results)

    def cancel(self, run_ids: list[str]) -> int:
        """Stop these runs of the calls in hand: the running one is killed, those waiting behind it in a batch do
        not start. Returns how many were found."""
        with self._lock:
            events = [e for e in map(self._cancels.get, run_ids) if e is not None]
        for event in events:
            event.set()
        return len(events)

    def health(self) -> dict[str, str]:
        if self._closed:  # a health round still in flight when the controller stopped must not reconnect
            return {s.slot_id: "offline" for s in self.spec.slots()}
        try:
            return self.device.health()
        except Exception as exc:  # a health probe must answer, whatever broke underneath
            log.warning("health check of %s failed: %s", self.spec.id, exc)
            self.device.health_reason = f"health check raised {type(exc).__name__}: {exc}"
            return {s.slot_id: "offline" for s in self.spec.slots()}

    def health_report(self) -> dict[str, Any]:
        """``{"states": {slot: state}, "reason": why the device is unusable ("" when it is fine)}``."""
        states = self.health()
        return {"states": states, "reason": self.device.health_reason}

    def end_bench_mode(self, job: str) -> list[str]:
        """``job`` ended on this device: restore the device's own settings (the settings that would not restore)."""
        return self.device.end_bench_mode(job)

    def close(self) -> None:
        """Restore what bench mode changed, then release the device's connections (SSH, …) for good: from now
        on health checks do not connect."""
        self._closed = True
        try:
            self.device.close_bench_mode()
        finally:
            self.device.close()

    def __ray_shutdown__(self) -> None:  # called by Ray when the actor exits gracefully
        self.close()

    def pid(self) -> int:
        return os.getpid()


def _ray_node_id() -> str:
    """The node of the actor ("" outside Ray: asking Ray's runtime context then would start a Ray instance)."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""
    except Exception:
        return ""
