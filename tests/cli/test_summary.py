"""The table ``farm run`` prints at the end: this job's columns only, its headline metric first, identifying values
whole, sampler bookkeeping left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm.cli.summary import print_summary
from farm.client import JobStatus
from tests.analysis.jobs import write_job

DEVICE = "ascend-310p-server-in-the-lab-basement/npu7"
MODEL = "llama-adapter-multimodal-7b-bsz-variant.om"
STATUS = JobStatus.from_dict(
    {"job_id": "ascend-1", "job": "ascend", "state": "done", "total": 4, "skipped": 0, "finished": 4, "running": 0}
    | {"queued": 0, "retries": 0, "statuses": {"ok": 4}, "submitted_at": 0.0, "finished_at": 1.0}
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    other = [{"p_threads": t, "repeat": r, "decode_tokens_per_s": 10.0 + t} for t in (1, 4) for r in (0, 1)]
    write_job(tmp_path, "llama-sweep", other)
    settings = json.dumps({"workload": "regex", "workload_options": {"patterns": {"throughput_pictures_per_s": "x"}}})
    ascend = [
        {
            "slot": DEVICE,
            "p_batch_size": b,
            "p_model": MODEL,
            "repeat": r,
            "throughput_pictures_per_s": 6.0 * b + r,
            "npu_mem_peak_mb": 6000.0 + r,
            "npu_aicore_max_pct": 80.0,
            "temp_max_c": 50.0,
            "sampler_polls": 3.0 + r,
            "sampler_poll_ms": 40.0 + 10 * r,
            "settings": settings,
        }
        for b in (1, 5)
        for r in (0, 1)
    ]
    write_job(tmp_path, "ascend", ascend)
    return tmp_path


def test_summary_is_scoped_to_the_job_headline_first_nothing_cut(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    print_summary(str(root), "ascend", STATUS)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "device" in line)
    assert "threads" not in out and "decode" not in out  # the other job's axis and metric
    assert header.index("pictures/s") < header.index("npu mem peak MB")  # the headline metric comes first
    assert "sampler" not in out and "poll" not in out  # bookkeeping is not a metric
    assert DEVICE in out and MODEL in out  # device ids and model names are never cut
    assert "6.50" in out and "30.50" in out  # medians of (6, 7) and (30, 31)


def test_summary_folds_rather_than_cuts_on_a_narrow_terminal(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    print_summary(str(root), "ascend", STATUS)
    out = capsys.readouterr().out
    assert "…" not in out  # folded over lines, never ellipsized
