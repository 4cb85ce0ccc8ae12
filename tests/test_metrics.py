"""FarmMetrics: what the controller's calls and the snapshot become on the exporter, each test on its own registry."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from farm.errors import ControllerError
from farm.metrics import DeviceSnapshot, FarmMetrics, FarmSnapshot, classify_metric


def finish(m: FarmMetrics, **overrides: object) -> None:
    kwargs: dict[str, object] = {
        "job": "sweep",
        "slot": "pixel7/0",
        "kind": "android",
        "node": "lab-1",
        "status": "ok",
        "duration_s": 3.0,
        "metrics": {},
        "peak_rss_mib": None,
        "bytes_pushed": 0,
        "artifacts": 0,
    }
    kwargs.update(overrides)
    m.run_finished(**kwargs)  # type: ignore[arg-type]


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


@pytest.fixture
def reg() -> CollectorRegistry:
    return CollectorRegistry()


def test_run_outcomes_are_counted_by_status_and_other_statuses_start_at_zero(reg: CollectorRegistry) -> None:
    m = FarmMetrics(reg)
    finish(m)
    finish(m)
    finish(m, status="failed")
    labels = {"job": "sweep", "slot": "pixel7/0", "kind": "android"}
    assert value(reg, "farm_runs_total", status="ok", **labels) == 2
    assert value(reg, "farm_runs_total", status="failed", **labels) == 1
    assert value(reg, "farm_runs_total", status="timeout", **labels) == 0
    assert value(reg, "farm_infra_errors_total", job="sweep", slot="pixel7/0") == 0
    assert value(reg, "farm_run_retries_total", job="sweep", slot="pixel7/0") == 0


def test_infra_errors_and_retries(reg: CollectorRegistry) -> None:
    m = FarmMetrics(reg)
    finish(m, status="infra_error", duration_s=0.0, artifacts=2)
    m.retried(job="sweep", slot="pixel7/0")
    finish(m, status="ok", artifacts=2, bytes_pushed=10)
    assert value(reg, "farm_infra_errors_total", job="sweep", slot="pixel7/0") == 1
    assert value(reg, "farm_run_retries_total", job="sweep", slot="pixel7/0") == 1
    # The infra error never ran the command: no duration observed for it.
    assert value(reg, "farm_run_duration_seconds_count", job="sweep", slot="pixel7/0") == 1
    # Nor is it known what it placed.
    assert value(reg, "farm_artifacts_placed_total", job="sweep", slot="pixel7/0") == 2


def test_duration_histogram_buckets(reg: CollectorRegistry) -> None:
    m = FarmMetrics(reg)
    finish(m, duration_s=0.3)
    finish(m, duration_s=42.0, status="failed")
    finish(m, duration_s=5.0, status="cancelled")  # a cancelled run's time says nothing about the benchmark
    lbl = {"job": "sweep", "slot": "pixel7/0"}
    assert value(reg, "farm_run_duration_seconds_count", **lbl) == 2
    assert value(reg, "farm_run_duration_seconds_sum", **lbl) == pytest.approx(42.3)
    assert value(reg, "farm_run_duration_seconds_bucket", le="0.5", **lbl) == 1
    assert value(reg, "farm_run_duration_seconds_bucket", le="60.0", **lbl) == 2


def test_workload_metrics_become_throughput_latency_and_memory_in_base_units(reg: CollectorRegistry) -> None:
    m = FarmMetrics(reg)
    metrics = {
        "decode_tokens_per_s": 21.5,
        "ttft_ms": 250.0,
        "makespan_s": 3.5,
        "kv_cache_mb": 2.0,
        "sparsity_pct": 40.0,  # no exported gauge: it stays in Parquet
    }
    finish(m, metrics=metrics, peak_rss_mib=512.0)
    lbl = {"job": "sweep", "slot": "pixel7/0"}
    assert value(reg, "farm_run_throughput_per_second", metric="decode_tokens_per_s", **lbl) == 21.5
    assert value(reg, "farm_run_latency_seconds", metric="ttft_ms", **lbl) == pytest.approx(0.25)
    assert value(reg, "farm_run_latency_seconds", metric="makespan_s", **lbl) == 3.5
    assert value(reg, "farm_run_memory_bytes", metric="kv_cache_mb", **lbl) == 2 * 1024**2
    assert value(reg, "farm_run_peak_rss_bytes", **lbl) == 512 * 1024**2
    names = {s.name for fam in reg.collect() for s in fam.samples}
    assert not any("sparsity" in str(s.labels) for fam in reg.collect() for s in fam.samples)
    assert "farm_run_latency_seconds" in names


def test_gauges_keep_the_last_ok_run(reg: CollectorRegistry) -> None:
    m = FarmMetrics(reg)
    finish(m, metrics={"decode_tokens_per_s": 10.0}, peak_rss_mib=100.0)
    finish(m, metrics={"decode_tokens_per_s": 12.0}, peak_rss_mib=90.0)
    finish(m, status="failed", metrics={}, peak_rss_mib=999.0)  # a failed run does not overwrite them
    lbl = {"job": "sweep", "slot": "pixel7/0"}
    assert value(reg, "farm_run_throughput_per_second", metric="decode_tokens_per_s", **lbl) == 12.0
    assert value(reg, "farm_run_peak_rss_bytes", **lbl) == 90 * 1024**2


def test_non_finite_values_are_skipped_not_exported(reg: CollectorRegistry) -> None:
    m = FarmMetrics(reg)
    finish(m, metrics={"decode_tokens_per_s": float("nan")}, duration_s=float("inf"))
    m.dispatched(job="sweep", slot="pixel7/0", latency_s=float("nan"))
    lbl = {"job": "sweep", "slot": "pixel7/0"}
    assert value(reg, "farm_run_throughput_per_second", metric="decode_tokens_per_s", **lbl) is None
    assert value(reg, "farm_run_duration_seconds_count", **lbl) is None
    assert value(reg, "farm_dispatch_latency_seconds_count", **lbl) is None


def test_artifact_bytes_and_cache_hits(reg: CollectorRegistry) -> None:
    m = FarmMetrics(reg)
    lbl = {"job": "sweep", "slot": "pixel7/0"}
    finish(m, artifacts=1, bytes_pushed=4096)  # first run: pushed
    finish(m, artifacts=1, bytes_pushed=0)  # second: the device had it
    finish(m, artifacts=3, bytes_pushed=100, artifacts_cached=2)  # the caller knows exactly
    finish(m, artifacts=2, bytes_pushed=0, status="infra_error")  # unknown: not counted
    assert value(reg, "farm_artifact_pushed_bytes_total", **lbl) == 4196
    assert value(reg, "farm_artifacts_placed_total", **lbl) == 5
    assert value(reg, "farm_artifact_cache_hits_total", **lbl) == 3


def test_dispatch_latency_histogram(reg: CollectorRegistry) -> None:
    m = FarmMetrics(reg)
    m.dispatched(job="sweep", slot="pixel7/0", latency_s=0.02)
    m.dispatched(job="sweep", slot="pixel7/0", latency_s=7.0)
    lbl = {"job": "sweep", "slot": "pixel7/0"}
    assert value(reg, "farm_dispatch_latency_seconds_count", **lbl) == 2
    assert value(reg, "farm_dispatch_latency_seconds_bucket", le="0.025", **lbl) == 1
    assert value(reg, "farm_dispatch_latency_seconds_bucket", le="10.0", **lbl) == 2


def test_state_is_read_from_the_snapshot_at_every_scrape(reg: CollectorRegistry) -> None:
    snap = FarmSnapshot(
        devices=[
            DeviceSnapshot("pixel7/0", "android", "lab-1", "busy", temperature_c=41.5, power_w=3.25),
            DeviceSnapshot("box/chip0", "sophgo", "head", "quarantined"),
        ],
        queue_depth={"sweep": 7},
    )
    current = {"snap": snap}
    FarmMetrics(reg, snapshot=lambda: current["snap"])
    dev = {"slot": "pixel7/0", "kind": "android", "node": "lab-1"}
    assert value(reg, "farm_device_state", state="busy", **dev) == 1
    assert value(reg, "farm_device_state", state="idle", **dev) == 0
    assert value(reg, "farm_device_temperature_celsius", **dev) == 41.5
    assert value(reg, "farm_device_power_watts", **dev) == 3.25
    assert value(reg, "farm_device_power_watts", slot="box/chip0", kind="sophgo", node="head") is None
    # No sensor: no temperature series rather than a made-up number.
    assert value(reg, "farm_device_temperature_celsius", slot="box/chip0", kind="sophgo", node="head") is None
    assert value(reg, "farm_job_queued_runs", job="sweep") == 7
    assert value(reg, "farm_devices", state="quarantined") == 1
    assert value(reg, "farm_devices", state="offline") == 0

    # The next scrape sees the controller's new state, with nothing copied by hand.
    current["snap"] = FarmSnapshot(devices=[DeviceSnapshot("pixel7/0", "android", "lab-1", "idle", 35.0)])
    assert value(reg, "farm_device_state", state="busy", **dev) == 0
    assert value(reg, "farm_device_state", state="idle", **dev) == 1
    assert value(reg, "farm_device_temperature_celsius", **dev) == 35.0
    assert value(reg, "farm_job_queued_runs", job="sweep") is None  # a finished job leaves the queue


def test_a_failing_snapshot_does_not_break_the_scrape(reg: CollectorRegistry) -> None:
    def broken() -> FarmSnapshot:
        raise RuntimeError("controller state mid-update")

    m = FarmMetrics(reg, snapshot=broken)
    finish(m)
    assert value(reg, "farm_runs_total", job="sweep", slot="pixel7/0", kind="android", status="ok") == 1
    assert value(reg, "farm_devices", state="idle") is None


def test_bad_input_never_raises_into_the_controller(reg: CollectorRegistry, caplog: pytest.LogCaptureFixture) -> None:
    m = FarmMetrics(reg)
    finish(m, bytes_pushed="lots")  # a caller bug must be logged, not crash the controller's loop
    assert "metrics: recording a finished run" in caplog.text


def test_classify_metric() -> None:
    assert classify_metric("prefill_tokens_per_s") == ("throughput", 1.0)
    assert classify_metric("latency_us") == ("latency", 1e-6)
    assert classify_metric("graph_search_min") == ("latency", 60.0)
    assert classify_metric("peak_mem_gib") == ("memory", 1024.0**3)
    assert classify_metric("energy_mj") is None
    assert classify_metric("tokens_count") is None


@pytest.fixture
def served(reg: CollectorRegistry) -> Iterator[tuple[FarmMetrics, tuple[str, int]]]:
    m = FarmMetrics(reg, snapshot=lambda: FarmSnapshot([DeviceSnapshot("h/0", "host", "n1", "idle")], {"j": 2}))
    address = m.serve()
    try:
        yield m, address
    finally:
        m.close()


def test_serve_binds_loopback_on_a_free_port_and_exports(served: tuple[FarmMetrics, tuple[str, int]]) -> None:
    m, (host, port) = served
    assert host == "127.0.0.1"
    assert port > 0
    assert m.serve() == (host, port)  # idempotent
    finish(m, metrics={"decode_tokens_per_s": 3.0})
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["farm_runs"].type == "counter"
    assert families["farm_run_duration_seconds"].type == "histogram"
    assert families["farm_device_state"].type == "gauge"
    queued = [s for s in families["farm_job_queued_runs"].samples if s.labels == {"job": "j"}]
    assert [s.value for s in queued] == [2.0]
    for fam in families.values():
        for sample in fam.samples:
            assert "run_id" not in sample.labels


def test_serve_on_a_taken_port_is_a_controller_error(reg: CollectorRegistry) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ControllerError, match=f"127.0.0.1:{port}"):
            FarmMetrics(reg).serve("127.0.0.1", port)


def test_close_stops_the_exporter(reg: CollectorRegistry) -> None:
    m = FarmMetrics(reg)
    host, port = m.serve()
    m.close()
    m.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5)
    with pytest.raises(ControllerError):
        m.address()
