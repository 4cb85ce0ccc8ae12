"""``farm report``, ``farm analyze``, ``farm export codl-dataset`` and ``farm compare`` through the real entry point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from farm.cli import main as cli_main
from tests.analysis.jobs import write_job
from tests.analysis.test_bound import bound_rows
from tests.analysis.test_report import sweep_rows
from tests.analysis.test_split import split_rows


@pytest.fixture(autouse=True)
def only_analysis_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # The entry point under test with just this module's commands (others may not exist yet).
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["farm.cli.report_cmd"])
    monkeypatch.delenv("FARM_RESULTS", raising=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    write_job(root, "sweep", sweep_rows())
    write_job(root, "bound", bound_rows())
    write_job(root, "codl", split_rows())
    return root


def test_report_default_out_dir(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["report", "sweep", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    folder = results / "reports" / "sweep"
    for name in ("report.md", "report.html", "stats.csv", "plots/decode_tokens_per_s_vs_threads.png"):
        assert (folder / name).stat().st_size > 0
        assert f"wrote {folder / name}" in out
    assert "1 point(s) with CV above 5.0%" in out and "synthetic" in out


def test_report_options(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_RESULTS", str(results))
    args = [
        "report",
        "sweep",
        "--out",
        str(tmp_path),
        "--metric",
        "peak_rss_mib",
        "--cv-threshold",
        "0.01",
        "--no-plots",
    ]
    assert cli_main.main(args) == 0
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Results: peak_rss_mib" in md and "## Results: decode_tokens_per_s" not in md
    assert "| phone-1 | 4 | 2 | 102 | 103.6 | 2.8% | ⚠ noisy |" in md  # 100, 104: p90 103.6, CV 2.83 %
    assert not (tmp_path / "plots").exists()


def test_report_bad_input_exits_2(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["report", "nope", "--results", str(results)]) == 2
    assert "no results for job 'nope'" in capsys.readouterr().err
    assert cli_main.main(["report", "sweep", "--metric", "joules", "--results", str(results)]) == 2
    assert "has no metric 'joules' (measured: decode_tokens_per_s, peak_rss_mib)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["report", "sweep", "--cv-threshold", "-1"])
    assert exc.value.code == 2


def test_analyze_bound_table_and_json(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["analyze", "bound", "bound", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "loading axis 'load_sparse' (with index_cache)" in out
    assert "method: loading off: T_enc/T_dec < 0.2" in out
    for text in ("synchronization-bound", "Flash-IO-bound", "RAM-IO-bound", "undetermined", "155", "1.55"):
        assert text in out
    assert cli_main.main(["analyze", "bound", "bound", "--json", "--ram-ratio", "1.6", "--results", str(results)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ram_ratio"] == 1.6 and payload["sync_ratio"] == 0.2
    verdicts = [(r["device"], r["point"]["sparsity"], r["verdict"]) for r in payload["rows"]]
    assert verdicts == [
        ("phone-1", 0.0, "synchronization-bound"),
        ("phone-1", 0.5, "RAM-IO-bound"),
        ("phone-1", 0.9, "RAM-IO-bound"),
        ("phone-2", 0.5, "undetermined"),
    ]
    assert payload["rows"][3]["t_dec_on_ms"] is None and payload["rows"][1]["t_dec_on_ms"] == 155.0
    assert cli_main.main(["analyze", "bound", "sweep", "--results", str(results)]) == 2


def test_analyze_split(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["analyze", "split", "codl", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "phone-1" in x and "1,56,56,64" in x)
    for cell in ("0.5", "6.2", "11", "8", "1.77", "1.29"):
        assert f" {cell} " in line
    assert cli_main.main(["analyze", "split", "codl", "--json", "--results", str(results)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["metric"] == "latency_ms" and len(payload["rows"]) == 3


def test_export_codl_dataset(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["export", "codl-dataset", "codl", "--out", str(tmp_path), "--results", str(results)]) == 0
    path = tmp_path / "sm8550" / "t_mulayer_conv2d_cpu.csv"  # the two shapes at part_ratio 0
    out = capsys.readouterr().out
    assert f"wrote {path} (2 rows)" in out and "skipped 6 measurement row(s): co-execution run" in out
    assert "not exported: t_conv2d_cpu_{direct,gemm,winograd,winograd_gemm}.csv" in out
    with path.open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert cli_main.main(["export", "codl-dataset", "sweep", "--out", str(tmp_path), "--results", str(results)]) == 2


def test_compare(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["compare", "sweep", "sweep", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "A = sweep, B = sweep" in out and "4 matched point×metric rows" in out  # 3 points × decode, 1 × peak_rss_mib
    assert cli_main.main(["compare", "sweep", "sweep", "--where", "threads=4", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "filtered on threads=4" in out and "3 matched point×metric rows" in out  # 2 points × decode, 1 × rss
    assert cli_main.main(["compare", "sweep", "sweep", "--where", "threads", "--results", str(results)]) == 2
    assert "--where: expected AXIS=VALUE" in capsys.readouterr().err
    assert cli_main.main(["compare", "sweep", "nope", "--results", str(results)]) == 2
    assert "no results for job 'nope'" in capsys.readouterr().err
    assert cli_main.main(["compare", "sweep", "codl", "--results", str(results)]) == 0
    assert "no metric measured by both jobs" in capsys.readouterr().out
    # No common axis: pooling every axis would compare different configurations; refused unless asked for.
    assert cli_main.main(["compare", "sweep", "bound", "--results", str(results)]) == 2
    assert "axis 'threads' is only in A (sweep) and takes several values" in capsys.readouterr().err
    assert cli_main.main(["compare", "sweep", "bound", "--pool", "--json", "--results", str(results)]) == 0
    payload = json.loads(capsys.readouterr().out)
    # With --pool: points match on the device alone, every axis pooled over and named.
    assert payload["only_a"] == ["threads"] and payload["only_b"] == ["sparsity", "load_sparse", "index_cache"]
    assert payload["warnings"][0].startswith("A pooled over threads")
    assert [(r["device"], r["metric"], r["median_a"], r["median_b"]) for r in payload["rows"]] == [
        ("phone-2", "decode_tokens_per_s", 30.0, 10.0)
    ]
