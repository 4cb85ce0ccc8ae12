"""Loading a job through DuckDB and its report: statistics by hand, status counts, failures, files written."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from farm.analysis.jobdata import load_job_data, order_metrics
from farm.analysis.report import build_report, write_report
from farm.errors import ConfigError
from tests.analysis.jobs import job, write_job

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sweep_rows() -> list[dict[str, Any]]:
    p1 = {"slot": "phone-1", "fp_soc": "sm8550", "fp_build": "b1", "exit_code": 0, "temp_start_c": 31.0}
    p2 = {"slot": "phone-2", "fp_soc": "mt6983"}
    return [
        {**p1, "run_id": "w", "p_threads": 4, "warmup": True, "decode_tokens_per_s": 1.0},
        {**p1, "run_id": "a", "p_threads": 4, "decode_tokens_per_s": 10.0, "peak_rss_mib": 100.0},
        {**p1, "run_id": "b", "p_threads": 4, "repeat": 1, "decode_tokens_per_s": 12.0, "peak_rss_mib": 104.0},
        {**p1, "run_id": "c", "p_threads": 4, "repeat": 2, "status": "infra_error", "error": "device gone"},
        {**p1, "run_id": "c", "attempt": 2, "p_threads": 4, "repeat": 2, "decode_tokens_per_s": 11.0},
        {**p1, "run_id": "d", "p_threads": 8, "decode_tokens_per_s": 20.0},
        {**p1, "run_id": "e", "p_threads": 8, "repeat": 1, "decode_tokens_per_s": 20.5},
        {**p1, "run_id": "f", "p_threads": 8, "repeat": 2, "decode_tokens_per_s": 19.5},
        {**p2, "run_id": "g", "p_threads": 4, "decode_tokens_per_s": 30.0, "fp_build": "b1"},
        {**p2, "run_id": "h", "p_threads": 4, "repeat": 1, "decode_tokens_per_s": 30.0, "fp_build": "b2"},
        {**p2, "run_id": "i", "p_threads": 4, "repeat": 2, "status": "timeout", "error": "killed after 600.0s"},
    ]


def test_load_job_classifies_columns(tmp_path: Path) -> None:
    write_job(tmp_path, "other", [{"p_other_axis": 1, "other_metric_ms": 5.0}])
    data = job(tmp_path, "sweep", sweep_rows())
    assert data.axes == ("p_threads",)
    # exit_code and temp_start_c describe the run; other jobs' columns are not this job's.
    assert data.metrics == ("decode_tokens_per_s", "peak_rss_mib")
    assert set(data.fingerprints) == {"fp_soc", "fp_build"}
    assert len(data.rows) == 11 and len(data.measurements) == 8
    assert data.synthetic and data.devices == ["phone-1", "phone-2"]


def test_load_job_rejects_unknown_and_malformed_names(tmp_path: Path) -> None:
    write_job(tmp_path, "sweep", sweep_rows())
    with pytest.raises(ConfigError, match=r"no results for job 'nope'.*jobs with results: sweep"):
        load_job_data(str(tmp_path), "nope")
    with pytest.raises(ConfigError, match="cannot name a results partition"):
        load_job_data(str(tmp_path), "../x")


def test_statistics_per_point_and_device(tmp_path: Path) -> None:
    report = build_report(job(tmp_path, "sweep", sweep_rows()), cv_threshold=0.05)
    decode = {(s.device, s.point): s for s in report.stats if s.metric == "decode_tokens_per_s"}
    p1_4 = decode[("phone-1", (4,))]  # 10, 12, 11 (warm-up 1.0 and the infra error left out)
    assert (p1_4.summary.n, p1_4.summary.median) == (3, 11.0)
    assert p1_4.summary.p90 == pytest.approx(11.8)
    assert p1_4.summary.cv == pytest.approx(1 / 11) and p1_4.noisy
    p1_8 = decode[("phone-1", (8,))]  # 20, 20.5, 19.5
    assert p1_8.summary.median == 20.0 and p1_8.summary.p90 == pytest.approx(20.4)
    assert p1_8.summary.cv == pytest.approx(0.025) and not p1_8.noisy
    p2_4 = decode[("phone-2", (4,))]
    assert (p2_4.summary.n, p2_4.summary.median, p2_4.summary.cv) == (2, 30.0, 0.0)
    rss = [s for s in report.stats if s.metric == "peak_rss_mib"]
    assert [(s.device, s.point, s.summary.median) for s in rss] == [("phone-1", (4,), 102.0)]
    assert [(s.device, s.point) for s in report.noisy] == [("phone-1", (4,))]


def test_status_counts_failures_and_environment(tmp_path: Path) -> None:
    report = build_report(job(tmp_path, "sweep", sweep_rows()))
    assert report.status_counts == {"ok": 9, "infra_error": 1, "timeout": 1}
    assert report.warmup_rows == 1 and report.rows == 11
    failures = {(f.run_id, f.status): f for f in report.failures}
    assert failures[("c", "infra_error")].recovered and failures[("c", "infra_error")].error == "device gone"
    assert not failures[("i", "timeout")].recovered
    assert failures[("i", "timeout")].point == "threads=4"
    assert report.fingerprints["phone-2"]["fp_build"] == ["b1", "b2"]
    assert report.fingerprints["phone-1"]["fp_soc"] == ["sm8550"]


def test_metric_choice_and_threshold(tmp_path: Path) -> None:
    data = job(tmp_path, "sweep", sweep_rows())
    report = build_report(data, ["peak_rss_mib"], cv_threshold=0.5)
    assert {s.metric for s in report.stats} == {"peak_rss_mib"} and report.shown == ("peak_rss_mib",)
    assert not report.noisy


def test_written_report(tmp_path: Path) -> None:
    data = job(tmp_path / "results", "sweep", sweep_rows())
    report = build_report(data)
    files = write_report(report, data, tmp_path / "out")
    md = files.markdown.read_text(encoding="utf-8")
    assert "| phone-1 | 4 | 3 | 11 | 11.8 | 9.1% | ⚠ noisy |" in md
    assert "| phone-1 | 8 | 3 | 20 | 20.4 | 2.5% |  |" in md
    assert "| ok | 9 |" in md and "| timeout | 1 |" in md
    assert "| i | phone-2 | 1 | threads=4 | timeout | killed after 600.0s | no |" in md
    assert "⚠ 2 values: b1; b2" in md and "Includes synthetic results" in md
    assert "![" in md and "plots/decode_tokens_per_s_vs_threads.png" in md
    page = files.html.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<td class=n>20.4</td>" in page
    with files.stats_csv.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    row = next(r for r in rows if r["slot"] == "phone-1" and r["p_threads"] == "4" and r["metric"] == "peak_rss_mib")
    assert (row["n"], float(row["median"]), float(row["min"]), float(row["max"])) == ("2", 102.0, 100.0, 104.0)
    assert len(rows) == 4  # decode × 3 points + peak_rss_mib × 1
    assert [p.name for p in files.plots] == ["decode_tokens_per_s_vs_threads.png"]
    png = files.plots[0].read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000


def test_report_without_plots(tmp_path: Path) -> None:
    data = job(tmp_path, "sweep", sweep_rows())
    files = write_report(build_report(data), data, tmp_path / "out", with_plots=False)
    assert files.plots == [] and not (tmp_path / "out" / "plots").exists()
    assert "Plots not requested." in files.markdown.read_text(encoding="utf-8")


def test_empty_store_and_all_failed_job(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"jobs with results: none"):
        load_job_data(str(tmp_path / "empty"), "sweep")
    data = job(tmp_path / "results", "broken", [{"status": "failed", "error": "exit code 127: not found"}])
    report = build_report(data)
    assert report.stats == [] and report.metrics == () and report.status_counts == {"failed": 1}
    files = write_report(report, data, tmp_path / "out")
    md = files.markdown.read_text(encoding="utf-8")
    assert files.plots == [] and "No plot: the job has no measurement to draw." in md
    assert "exit code 127: not found" in md


def test_sampler_bookkeeping_is_no_metric_and_never_flagged_noisy(tmp_path: Path) -> None:
    settings = json.dumps({"workload": "regex", "workload_options": {"patterns": {"throughput_pictures_per_s": "x"}}})
    rows = [
        {"repeat": r, "npu_mem_peak_mb": 6000.0, "throughput_pictures_per_s": 6.0, "settings": settings,
         "sampler_polls": 1.0 + 5 * r, "sampler_poll_ms": 10.0 + 90 * r}
        for r in range(3)
    ]  # fmt: skip
    data = job(tmp_path, "ascend", rows)
    assert data.metrics == ("throughput_pictures_per_s", "npu_mem_peak_mb")  # the job's headline first
    assert data.headline == ("throughput_pictures_per_s",) and data.main_metric() == "throughput_pictures_per_s"
    report = build_report(data)
    assert report.noisy == [] and {s.metric for s in report.stats} == set(data.metrics)


def test_any_rate_ranks_with_the_headline_metrics_when_the_workload_names_none() -> None:
    metrics = ["answers_count", "pictures_per_s", "latency_ms", "npu_mem_peak_mb", "decode_tokens_per_s"]
    assert order_metrics(metrics) == [
        "decode_tokens_per_s", "pictures_per_s", "latency_ms", "answers_count", "npu_mem_peak_mb"
    ]  # fmt: skip
    assert order_metrics(metrics, ("npu_mem_peak_mb",))[0] == "npu_mem_peak_mb"
