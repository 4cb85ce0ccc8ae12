"""Generates Farm's Grafana dashboards (deploy/grafana/dashboards/*.json) with grafana-foundation-sdk.

The JSON files are committed so a lab can provision them without Python; this script is their source. Edit
here, then regenerate and commit both:

    .venv/bin/python deploy/grafana/build_dashboards.py           # write the JSON files
    .venv/bin/python deploy/grafana/build_dashboards.py --check   # exit 1 if a committed file is out of date

Every query reads metrics documented in docs/metrics.md. Template variables: ``datasource`` (any Prometheus),
``job``, ``slot``, ``kind``, ``metric`` (multi-select, "All" = ``.*``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, stat, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, StackingConfig, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
FAILED = 'status=~"failed|timeout|parse_error|infra_error"'
JOB = 'job=~"$job"'
SLOT = 'slot=~"$slot"'
KIND = 'kind=~"$kind"'
METRIC = 'metric=~"$metric"'


# ----- building blocks --------------------------------------------------------------------------------------
def query(expr: str, legend: str = "", *, instant: bool = False) -> Dataquery:
    q = Dataquery().expr(expr).datasource(DS)
    if legend:
        q = q.legend_format(legend)
    return q.instant() if instant else q.range()


def graph(title: str, unit: str, *queries: Dataquery, stacked: bool = False, desc: str = "") -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(12).fill_opacity(10)
    panel = panel.legend(VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE).show_legend(True))
    if stacked:
        panel = panel.stacking(StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(60)
    if desc:
        panel = panel.description(desc)
    for ref_id, q in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(q.ref_id(ref_id))
    return panel


def number(title: str, unit: str, q: Dataquery, *, desc: str = "", span: int = 6) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DS)
        .height(4)
        .span(span)
        .no_value("0")
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(q.ref_id("A"))
    )
    return panel.description(desc) if desc else panel


def bars(
    title: str, unit: str, q: Dataquery, *, desc: str = "", thresholds: list[model.Threshold] | None = None
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .unit(unit)
        .datasource(DS)
        .height(8)
        .span(12)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(q.ref_id("A"))
    )
    if thresholds:
        panel = panel.thresholds(ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(thresholds))
    return panel.description(desc) if desc else panel


def variable(name: str, label: str, source: str) -> QueryVariable:
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(f"label_values({source}, {name})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def base(uid: str, title: str, description: str, *variables: QueryVariable) -> Dashboard:
    board = (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["farm"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone(common.TimeZoneBrowser)
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for var in variables:
        board = board.with_variable(var)
    return board


# ----- the dashboards ---------------------------------------------------------------------------------------
def overview() -> Dashboard:
    return (
        base(
            "farm-overview",
            "Farm / Overview",
            "Device slots by state, queue depth, run rate and failures of a Farm controller.",
            variable("job", "Job", "farm_runs_total"),
            variable("kind", "Device kind", "farm_device_state"),
        )
        .with_row(Row("Now"))
        .with_panel(number("Slots idle", "none", query(f'sum(farm_device_state{{{KIND}, state="idle"}})'), span=4))
        .with_panel(number("Slots busy", "none", query(f'sum(farm_device_state{{{KIND}, state="busy"}})'), span=4))
        .with_panel(
            number(
                "Slots unavailable",
                "none",
                query(f'sum(farm_device_state{{{KIND}, state=~"offline|unauthorized|untrusted|quarantined"}})'),
                desc="Offline, unauthorized (phone waiting for the USB-debugging prompt), untrusted (unknown or "
                "changed SSH host key) or quarantined.",
                span=4,
            )
        )
        .with_panel(number("Runs queued", "none", query(f"sum(farm_job_queued_runs{{{JOB}}})"), span=4))
        .with_panel(
            number(
                "Runs finished / min",
                "none",
                query(f"sum(rate(farm_runs_total{{{JOB}}}[$__rate_interval])) * 60"),
                span=4,
            )
        )
        .with_panel(
            number(
                "Exporter up",
                "none",
                query('min(up{job="farm"})'),
                desc="1 while Prometheus scrapes the controller's exporter.",
                span=4,
            )
        )
        .with_row(Row("Devices and queue"))
        .with_panel(
            graph(
                "Device slots by state",
                "none",
                query(f"sum by (state) (farm_device_state{{{KIND}}})", "{{state}}"),
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Queue depth per job",
                "none",
                query(f"sum by (job) (farm_job_queued_runs{{{JOB}}})", "{{job}}"),
                desc="Runs of unfinished jobs waiting for a slot; a job's series ends when it finishes.",
            )
        )
        .with_row(Row("Runs"))
        .with_panel(
            graph(
                "Runs finished per minute by status",
                "none",
                query(f"sum by (status) (rate(farm_runs_total{{{JOB}}}[$__rate_interval])) * 60", "{{status}}"),
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Failures by job and status",
                "none",
                query(
                    f"sum by (job, status) (increase(farm_runs_total{{{JOB}, {FAILED}}}[$__rate_interval]))",
                    "{{job}} {{status}}",
                ),
                desc="failed = non-zero exit; timeout; parse_error = output without a result; "
                "infra_error = the device or its link failed (retried).",
            )
        )
        .with_panel(
            graph(
                "Retries and infra errors per slot",
                "none",
                query(
                    f"sum by (slot) (increase(farm_run_retries_total{{{JOB}}}[$__rate_interval]))",
                    "retries {{slot}}",
                ),
                query(
                    f"sum by (slot) (increase(farm_infra_errors_total{{{JOB}}}[$__rate_interval]))",
                    "infra errors {{slot}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Run duration by job (p50, p95)",
                "s",
                query(
                    "histogram_quantile(0.5, sum by (le, job) "
                    f"(rate(farm_run_duration_seconds_bucket{{{JOB}}}[$__rate_interval])))",
                    "p50 {{job}}",
                ),
                query(
                    "histogram_quantile(0.95, sum by (le, job) "
                    f"(rate(farm_run_duration_seconds_bucket{{{JOB}}}[$__rate_interval])))",
                    "p95 {{job}}",
                ),
            )
        )
        .with_row(Row("Dispatch and artifacts"))
        .with_panel(
            graph(
                "Dispatch latency (p50, p95)",
                "s",
                query(
                    "histogram_quantile(0.5, sum by (le) "
                    f"(rate(farm_dispatch_latency_seconds_bucket{{{JOB}}}[$__rate_interval])))",
                    "p50",
                ),
                query(
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(farm_dispatch_latency_seconds_bucket{{{JOB}}}[$__rate_interval])))",
                    "p95",
                ),
                desc="Hand-out → process start on the device; includes artifact pushes and thermal waits.",
            )
        )
        .with_panel(
            graph(
                "Artifact bytes pushed per slot",
                "Bps",
                query(
                    f"sum by (slot) (rate(farm_artifact_pushed_bytes_total{{{JOB}}}[$__rate_interval]))",
                    "{{slot}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Artifact cache hit ratio",
                "percentunit",
                query(
                    f"sum(increase(farm_artifact_cache_hits_total{{{JOB}}}[$__rate_interval])) "
                    f"/ sum(increase(farm_artifacts_placed_total{{{JOB}}}[$__rate_interval]))",
                    "hit ratio",
                ),
                desc="Artifacts a device already held (same sha256) over all artifacts placed; empty while "
                "nothing is placed.",
            )
        )
    )


def throughput() -> Dashboard:
    sel = f"{JOB}, {SLOT}, {METRIC}"
    return (
        base(
            "farm-throughput",
            "Farm / Throughput",
            "Throughput and latency metrics of the last ok run, per job, slot and metric.",
            variable("job", "Job", "farm_runs_total"),
            variable("slot", "Slot", "farm_runs_total"),
            variable("metric", "Throughput metric", "farm_run_throughput_per_second"),
        )
        .with_panel(
            graph(
                "Throughput per slot",
                "none",
                query(
                    f"sum by (job, slot, metric) (farm_run_throughput_per_second{{{sel}}})",
                    "{{slot}} {{metric}} ({{job}})",
                ),
                desc="Value of each *_per_s metric in the last ok run (tokens/s, frames/s, …).",
            )
        )
        .with_panel(
            bars(
                "Latest throughput by job and slot",
                "none",
                query(
                    f"sum by (job, slot, metric) (farm_run_throughput_per_second{{{sel}}})",
                    "{{job}} / {{slot}} / {{metric}}",
                    instant=True,
                ),
            )
        )
        .with_panel(
            graph(
                "Latency-type metrics per slot",
                "s",
                query(
                    f"sum by (job, slot, metric) (farm_run_latency_seconds{{{JOB}, {SLOT}}})",
                    "{{slot}} {{metric}} ({{job}})",
                ),
                desc="Time-valued workload metrics (*_ms, *_us, *_s, …) of the last ok run, in seconds.",
            )
        )
        .with_panel(
            graph(
                "Ok runs per minute per slot",
                "none",
                query(
                    f'sum by (slot) (rate(farm_runs_total{{{JOB}, {SLOT}, status="ok"}}[$__rate_interval])) * 60',
                    "{{slot}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Run duration per slot (p50)",
                "s",
                query(
                    "histogram_quantile(0.5, sum by (le, slot) "
                    f"(rate(farm_run_duration_seconds_bucket{{{JOB}, {SLOT}}}[$__rate_interval])))",
                    "{{slot}}",
                ),
            )
        )
    )


def memory() -> Dashboard:
    sel = f"{JOB}, {SLOT}"
    return (
        base(
            "farm-memory",
            "Farm / Memory",
            "Peak resident memory of the benchmark process and memory-valued workload metrics, last ok run.",
            variable("job", "Job", "farm_runs_total"),
            variable("slot", "Slot", "farm_runs_total"),
        )
        .with_panel(
            graph(
                "Peak RSS per slot",
                "bytes",
                query(f"max by (job, slot) (farm_run_peak_rss_bytes{{{sel}}})", "{{slot}} ({{job}})"),
                desc="VmHWM of the benchmark process, sampled while it ran.",
            )
        )
        .with_panel(
            bars(
                "Latest peak RSS by job and slot",
                "bytes",
                query(
                    f"max by (job, slot) (farm_run_peak_rss_bytes{{{sel}}})",
                    "{{job}} / {{slot}}",
                    instant=True,
                ),
            )
        )
        .with_panel(
            graph(
                "Memory-type workload metrics",
                "bytes",
                query(
                    f"max by (job, slot, metric) (farm_run_memory_bytes{{{sel}}})",
                    "{{slot}} {{metric}} ({{job}})",
                ),
                desc="Workload metrics in *_mib, *_mb, *_bytes, … (e.g. TPU memory from bm-smi), in bytes.",
            )
        )
    )


def temperature() -> Dashboard:
    sel = f"{KIND}, {SLOT}"
    hot = [model.Threshold(None, "green"), model.Threshold(60.0, "orange"), model.Threshold(75.0, "red")]
    return (
        base(
            "farm-temperature",
            "Farm / Temperature",
            "Device temperatures (hottest sensor, last reading) and power (last run) next to when each device was "
            "busy.",
            variable("kind", "Device kind", "farm_device_state"),
            variable("slot", "Slot", "farm_device_state"),
        )
        .with_panel(
            graph(
                "Temperature per slot",
                "celsius",
                query(f"max by (slot) (farm_device_temperature_celsius{{{sel}}})", "{{slot}}"),
                desc="Devices without a temperature sensor have no series.",
            )
        )
        .with_panel(
            bars(
                "Current temperature",
                "celsius",
                query(f"max by (slot) (farm_device_temperature_celsius{{{sel}}})", "{{slot}}", instant=True),
                thresholds=hot,
            )
        )
        .with_panel(
            graph(
                "Busy slots",
                "none",
                query(f'max by (slot) (farm_device_state{{{sel}, state="busy"}})', "{{slot}}"),
                desc="1 while the device runs a benchmark: read with the temperature to spot heat soak.",
            )
        )
        .with_panel(
            graph(
                "Power per slot",
                "watt",
                query(f"max by (slot) (farm_device_power_watts{{{sel}}})", "{{slot}}"),
                desc="Average power of each slot's last run with a valid energy reading (fuel gauge, RAPL, "
                "npu-smi, bm-smi or an external meter). Runs while charging are invalid and leave no point.",
            )
        )
    )


DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "farm-overview.json": overview,
    "farm-throughput.json": throughput,
    "farm-memory.json": memory,
    "farm-temperature.json": temperature,
}


def render(board: Dashboard) -> str:
    """The dashboard as committed: panels numbered in layout order, stable key order, two-space indent."""
    built = board.build()
    for number_, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number_  # Grafana links, alerts and "view panel" URLs address panels by a unique id
    return JSONEncoder(sort_keys=True, indent=2).encode(built) + "\n"


def rendered() -> dict[str, str]:
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is out of date")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        json.loads(text)  # fail loudly on anything the encoder let through
        print(f"wrote {path}")
    if stale:
        print("out of date (run deploy/grafana/build_dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
