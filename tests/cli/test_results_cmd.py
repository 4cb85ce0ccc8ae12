"""``farm query`` and ``farm results`` through the real ``farm`` entry point: output and exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from farm.cli import main as cli_main
from farm.cli import results_cmd
from farm.results import ResultsStore
from tests.results.rows import make_row


@pytest.fixture(autouse=True)
def only_results_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # The entry point under test, with just this module's commands registered (others may not exist yet).
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["farm.cli.results_cmd"])
    monkeypatch.delenv("FARM_RESULTS", raising=False)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        w.add(make_row(run_id="a", p_threads=4, decode_tokens_per_s=12.5, fp_soc="sm8550"))
        w.add(make_row(run_id="b", p_threads=8, decode_tokens_per_s=20.25, command="[bold]x[/bold]"))
        w.add(make_row(run_id="c", p_threads=8, status="failed", error="exit code 1"))
        w.add(make_row(run_id="w", p_threads=8, warmup=True, decode_tokens_per_s=1.0))
    return tmp_path


def test_query_json(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT p_threads, count(*) AS n FROM runs WHERE NOT warmup GROUP BY 1 ORDER BY 1"
    assert cli_main.main(["query", sql, "--results", str(results), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"p_threads": 4, "n": 1}, {"p_threads": 8, "n": 2}]


def test_query_csv_and_env_default(
    results: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARM_RESULTS", str(results))
    sql = "SELECT run_id, error, started_at FROM runs ORDER BY run_id"
    assert cli_main.main(["query", sql, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["run_id"] for r in rows] == ["a", "b", "c", "w"]
    assert rows[2]["error"] == "exit code 1" and rows[0]["error"] == ""
    assert rows[0]["started_at"] == make_row(attempt=1)["started_at"].isoformat()


def test_query_table_prints_values_verbatim(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["query", "SELECT command FROM runs WHERE run_id = 'b'", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "[bold]x[/bold]" in out and "1 row" in out


def test_query_sql_error_exits_2_with_one_line(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["query", "SELECT nope FROM runs", "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Binder Error" in err[0] and "nope" in err[0]


def test_query_on_empty_results_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "query",
        "SELECT count(*) AS n FROM runs",
        "--results",
        str(tmp_path / "none"),
        "--format",
        "json",
    ]
    assert cli_main.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 0}]


def test_results_shows_params_metrics_and_counts(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["results", "sweep", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    for text in ("p_threads", "decode_tokens_per_s", "12.50", "20.25", "exit code 1", "synthetic"):
        assert text in out
    assert "fp_soc" not in out  # fingerprints only with --all-columns
    assert "run_id" in out  # what `farm rerun` takes
    assert "ok: 3" in out and "failed: 1" in out and "warm-up rows: 1" in out


def test_results_all_columns(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["results", "sweep", "--results", str(results), "--all-columns"]) == 0
    assert "fp_soc" in capsys.readouterr().out


def test_results_unknown_job_exits_2(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["results", "nope", "--results", str(results)]) == 2
    assert "sweep" in capsys.readouterr().err  # names the jobs that do exist
    assert cli_main.main(["results", "../etc", "--results", str(results)]) == 2


def test_unreadable_results_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    partition = tmp_path / "runs" / "job=sweep"
    partition.mkdir(parents=True)
    (partition / "part-0-corrupt.parquet").write_bytes(b"not parquet at all")
    assert cli_main.main(["results", "sweep", "--results", str(tmp_path)]) == 1
    assert "part-0-corrupt.parquet" in capsys.readouterr().err


def test_big_results_are_cut_in_table_format_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results_cmd, "MAX_TABLE_ROWS", 3)
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        for i in range(5):
            w.add(make_row(run_id=f"r{i}"))
    assert cli_main.main(["query", "SELECT run_id FROM runs ORDER BY run_id", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "r2" in out and "r3" not in out and "5 rows, the first 3 shown" in out
    argv = ["query", "SELECT run_id FROM runs", "--results", str(tmp_path), "--format", "json"]
    assert cli_main.main(argv) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5
    assert cli_main.main(["results", "sweep", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the last 3 shown" in out and "ok: 5" in out


def test_results_puts_the_headline_metric_first_and_leaves_bookkeeping_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = json.dumps({"workload": "regex", "workload_options": {"patterns": {"throughput_pictures_per_s": "x"}}})
    with ResultsStore(str(tmp_path)).writer("ascend") as w:
        for i in range(2):
            extra = {"npu_mem_peak_mb": 6000.0, "sampler_polls": 3.0, "sampler_poll_ms": 40.0, "settings": settings}
            w.add(make_row(job="ascend", run_id=f"r{i}", p_batch=i, **extra, throughput_pictures_per_s=6.5))
    assert cli_main.main(["results", "ascend", "--results", str(tmp_path)]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if "status" in line)
    assert header.index("throughput_pictures_per_s") < header.index("npu_mem_peak_mb")
    assert "sampler" not in header
