"""Prometheus metrics of a farm: event counters/histograms fed by the controller, state read at scrape time.

Names follow ``farm_<noun>_<unit>``; labels are low-cardinality only (job, slot, kind, node, status,
metric) — never run ids or parameter values. docs/metrics.md lists every metric: type, labels, meaning.

Two kinds of data, two mechanisms:

* events (a run finished, a run was dispatched, a retry) are counted by the controller's calls into
  :class:`FarmMetrics`, which never raise into the controller;
* state that already lives in the controller (device states, temperatures, queue depth) is read at scrape
  time by :class:`FarmStateCollector` from a :class:`FarmSnapshot`, never mirrored into gauges by hand.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from farm.errors import ControllerError

log = logging.getLogger(__name__)

RUN_STATUSES = ("ok", "failed", "timeout", "infra_error", "parse_error", "cancelled")
DEVICE_STATES = ("idle", "busy", "offline", "unauthorized", "untrusted", "quarantined")
# Statuses of runs whose command actually ran on the device: only these have a meaningful duration.
RAN_STATUSES = frozenset({"ok", "failed", "timeout", "parse_error"})

# Benchmarks take from a fraction of a second (an op micro-benchmark) to an hour (a full model sweep point).
RUN_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# Hand-out → process start: milliseconds on a warm host, seconds with an artifact push, minutes behind a
# thermal gate.
DISPATCH_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# Workload metric suffix → factor to the Prometheus base unit (seconds / bytes). Binary sizes are ``_kib``/
# ``_mib``/``_gib`` (``peak_rss_mib`` is VmHWM KiB / 1024); ``_mb`` is a tool's own MB (bm-smi, npu-smi), which
# those tools count in 2^20 bytes: every size suffix converts as a 1024-multiple.
TIME_SUFFIXES: dict[str, float] = {
    "_ns": 1e-9,
    "_us": 1e-6,
    "_ms": 1e-3,
    "_s": 1.0,
    "_min": 60.0,
    "_h": 3600.0,
}
MEMORY_SUFFIXES: dict[str, float] = {
    "_bytes": 1.0,
    "_kb": 1024.0,
    "_kib": 1024.0,
    "_mb": 1024.0**2,
    "_mib": 1024.0**2,
    "_gb": 1024.0**3,
    "_gib": 1024.0**3,
}
THROUGHPUT_SUFFIX = "_per_s"
MIB = 1024.0**2


@dataclass(frozen=True)
class DeviceSnapshot:
    slot: str
    kind: str
    node: str
    state: str  # idle, busy, offline, unauthorized, untrusted, quarantined
    temperature_c: float | None = None
    power_w: float | None = None  # average power of the slot's last run with a valid energy (docs/measurement.md)


@dataclass(frozen=True)
class FarmSnapshot:
    """The controller's state at scrape time."""

    devices: list[DeviceSnapshot] = field(default_factory=list)
    queue_depth: dict[str, int] = field(default_factory=dict)  # job name → runs waiting


@functools.lru_cache(maxsize=4096)  # called for every metric of every run; names repeat
def classify_metric(name: str) -> tuple[str, float] | None:
    """Which exported gauge a workload metric feeds and the factor to its base unit, or None (Parquet only).

    ``("throughput", 1.0)`` for ``*_per_s``; ``("latency", f)`` for time values (``_ms`` … ``_h``);
    ``("memory", f)`` for sizes (``_bytes`` … ``_gib``).
    """
    if name.endswith(THROUGHPUT_SUFFIX):
        return "throughput", 1.0
    for suffix, factor in TIME_SUFFIXES.items():
        if name.endswith(suffix):
            return "latency", factor
    for suffix, factor in MEMORY_SUFFIXES.items():
        if name.endswith(suffix):
            return "memory", factor
    return None


class FarmStateCollector(Collector):
    """Device states, temperatures and queue depths, read from the controller's snapshot at every scrape."""

    def __init__(self, snapshot: Callable[[], FarmSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        # Lets the registry detect name clashes at registration without calling into the controller.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        try:
            snap = self._snapshot()
        except Exception:  # a scrape must never take the controller down; the gap shows in the graphs
            log.exception("metrics: reading the controller snapshot failed")
            return []
        state, temperature, queued, devices, power = families
        per_state: dict[str, int] = dict.fromkeys(DEVICE_STATES, 0)
        for dev in snap.devices:
            # One series per known state (1 for the current one, as prometheus_client's Enum does): a device
            # leaving a state drops that series to 0 instead of making it vanish.
            states = DEVICE_STATES if dev.state in DEVICE_STATES else (*DEVICE_STATES, dev.state)
            for name in states:
                state.add_metric([dev.slot, dev.kind, dev.node, name], 1.0 if name == dev.state else 0.0)
            per_state[dev.state] = per_state.get(dev.state, 0) + 1
            if dev.temperature_c is not None and math.isfinite(dev.temperature_c):
                temperature.add_metric([dev.slot, dev.kind, dev.node], dev.temperature_c)
            if dev.power_w is not None and math.isfinite(dev.power_w):
                power.add_metric([dev.slot, dev.kind, dev.node], dev.power_w)
        for job, depth in sorted(snap.queue_depth.items()):
            queued.add_metric([job], float(depth))
        for name, count in per_state.items():
            devices.add_metric([name], float(count))
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "farm_device_state",
                "Device slot state: 1 for the slot's current state, 0 for the others",
                labels=["slot", "kind", "node", "state"],
            ),
            GaugeMetricFamily(
                "farm_device_temperature_celsius",
                "Last temperature seen on the device (hottest sensor), for devices that have a sensor",
                labels=["slot", "kind", "node"],
            ),
            GaugeMetricFamily(
                "farm_job_queued_runs", "Runs of an unfinished job waiting for a device slot", labels=["job"]
            ),
            GaugeMetricFamily("farm_devices", "Device slots in each state", labels=["state"]),
            GaugeMetricFamily(
                "farm_device_power_watts",
                "Average power of the slot's last run with a valid energy reading (fuel gauge, RAPL, npu-smi, "
                "bm-smi or an external meter)",
                labels=["slot", "kind", "node"],
            ),
        ]


class FarmMetrics:
    """Owned by the controller; every method is cheap and never raises into the caller."""

    def __init__(
        self, registry: CollectorRegistry | None = None, snapshot: Callable[[], FarmSnapshot] | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._snapshot = snapshot
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._seen: set[tuple[str, str, str]] = set()  # (job, slot, kind) whose counters are initialised
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}  # see _child
        r = self.registry
        self.runs = Counter(
            "farm_runs",
            "Run outcomes recorded (each retried infra_error attempt counts once)",
            ["job", "slot", "kind", "status"],
            registry=r,
        )
        self.run_duration = Histogram(
            "farm_run_duration_seconds",
            "Wall time of runs whose command ran on the device",
            ["job", "slot"],
            buckets=RUN_DURATION_BUCKETS,
            registry=r,
        )
        self.throughput = Gauge(
            "farm_run_throughput_per_second",
            "Last ok run's throughput metric (*_per_s), per job, slot, metric",
            ["job", "slot", "metric"],
            registry=r,
        )
        self.latency = Gauge(
            "farm_run_latency_seconds",
            "Last ok run's time-valued metric (*_ms, *_s, …) converted to seconds",
            ["job", "slot", "metric"],
            registry=r,
        )
        self.memory = Gauge(
            "farm_run_memory_bytes",
            "Last ok run's memory-valued metric (*_mib, *_mb, *_bytes, …) converted to bytes",
            ["job", "slot", "metric"],
            registry=r,
        )
        self.peak_rss = Gauge(
            "farm_run_peak_rss_bytes",
            "Peak resident memory of the last run's benchmark process",
            ["job", "slot"],
            registry=r,
        )
        self.bytes_pushed = Counter(
            "farm_artifact_pushed_bytes",
            "Artifact bytes copied to devices (0 for content already there)",
            ["job", "slot"],
            registry=r,
        )
        self.artifacts_placed = Counter(
            "farm_artifacts_placed",
            "Artifacts placed on devices for runs, pushed or found in the device cache",
            ["job", "slot"],
            registry=r,
        )
        self.cache_hits = Counter(
            "farm_artifact_cache_hits",
            "Artifacts the device already held (by sha256): nothing was copied",
            ["job", "slot"],
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "farm_dispatch_latency_seconds",
            "Time from handing a run out to its process starting on the device",
            ["job", "slot"],
            buckets=DISPATCH_LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "farm_run_retries", "Runs handed out again after an infra error", ["job", "slot"], registry=r
        )
        self.infra_errors = Counter(
            "farm_infra_errors",
            "Runs that ended in an infrastructure fault (device, link or actor failed)",
            ["job", "slot"],
            registry=r,
        )
        if snapshot is not None:
            self.registry.register(FarmStateCollector(snapshot))

    # ----- events from the controller ----------------------------------------------------------------------
    def run_finished(
        self,
        *,
        job: str,
        slot: str,
        kind: str,
        node: str,
        status: str,
        duration_s: float,
        metrics: Mapping[str, float],
        peak_rss_mib: float | None,
        bytes_pushed: int,
        artifacts: int,
        artifacts_cached: int | None = None,
    ) -> None:
        """A run outcome was recorded (including retried infra errors).

        ``artifacts_cached``: how many of the run's ``artifacts`` the device already held. Without it, a run
        that pushed no byte counts all its artifacts as hits and one that pushed bytes counts none — exact for
        one artifact, a lower bound for several. ``node`` is not a label of run series: a device's node is on
        its state series (``farm_device_state``), so joins recover it without multiplying run series.
        """
        try:
            self._init_children(job, slot, kind)
            self._child(self.runs, job, slot, kind, status).inc()
            if status == "infra_error":
                self._child(self.infra_errors, job, slot).inc()
            if status in RAN_STATUSES and math.isfinite(duration_s) and duration_s >= 0:
                self._child(self.run_duration, job, slot).observe(duration_s)
            if status == "ok":
                self._set_run_values(job, slot, metrics, peak_rss_mib)
            if bytes_pushed > 0:
                self._child(self.bytes_pushed, job, slot).inc(bytes_pushed)
            # An infra error may strike before or during the pushes: then what was placed is unknown.
            if status != "infra_error" and artifacts > 0:
                self._child(self.artifacts_placed, job, slot).inc(artifacts)
                if artifacts_cached is None:
                    artifacts_cached = artifacts if bytes_pushed == 0 else 0
                if artifacts_cached > 0:
                    self._child(self.cache_hits, job, slot).inc(min(artifacts_cached, artifacts))
        except Exception:  # metrics must never break the run bookkeeping
            log.exception("metrics: recording a finished run of %s on %s failed", job, slot)

    def dispatched(self, *, job: str, slot: str, latency_s: float) -> None:
        """A run started on its device ``latency_s`` after it was handed out."""
        try:
            if math.isfinite(latency_s) and latency_s >= 0:
                self._child(self.dispatch_latency, job, slot).observe(latency_s)
        except Exception:
            log.exception("metrics: recording a dispatch on %s failed", slot)

    def retried(self, *, job: str, slot: str) -> None:
        """An infra error is being retried."""
        try:
            self._child(self.retries, job, slot).inc()
        except Exception:
            log.exception("metrics: recording a retry on %s failed", slot)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: prometheus_client validates and hashes the labels on every
        call, which at hundreds of runs per second was a tenth of the controller's own time."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _init_children(self, job: str, slot: str, kind: str) -> None:
        # Counters of a job/device pair start at 0 for every status, so rate() and "failures" panels read 0
        # rather than "no data" until the first failure (Prometheus' advice: initialise known label values).
        key = (job, slot, kind)
        if key in self._seen:
            return
        self._seen.add(key)
        for status in RUN_STATUSES:
            self._child(self.runs, job, slot, kind, status)
        for counter in (
            self.infra_errors,
            self.retries,
            self.bytes_pushed,
            self.artifacts_placed,
            self.cache_hits,
        ):
            self._child(counter, job, slot)

    def _set_run_values(self, job: str, slot: str, metrics: Mapping[str, float], peak_rss_mib: float | None) -> None:
        gauges = {"throughput": self.throughput, "latency": self.latency, "memory": self.memory}
        for name, value in metrics.items():
            kind = classify_metric(name)
            if kind is None or not math.isfinite(value):
                continue
            gauge, factor = gauges[kind[0]], kind[1]
            self._child(gauge, job, slot, name).set(value * factor)
        if peak_rss_mib is not None and math.isfinite(peak_rss_mib):
            self._child(self.peak_rss, job, slot).set(peak_rss_mib * MIB)

    # ----- the exporter ------------------------------------------------------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Start the HTTP exporter; returns the bound address (port 0 picks a free one).

        Loopback by default: the endpoint is unauthenticated, so exposing it on a lab network is a choice made
        with ``host`` (e.g. the head node's LAN address for a Prometheus on another machine).
        """
        if self._server is not None:
            return self.address()
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ControllerError(f"metrics exporter cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self._server, self._thread = server, thread
        bound = self.address()
        log.info("metrics exporter listening on http://%s/metrics", _url_host(*bound))
        return bound

    def address(self) -> tuple[str, int]:
        """The exporter's bound ``(host, port)``; :class:`ControllerError` when it is not serving."""
        if self._server is None:
            raise ControllerError("the metrics exporter is not serving")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Stop the exporter (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _url_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
