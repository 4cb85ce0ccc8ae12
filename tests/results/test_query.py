"""SQL over the results with DuckDB: the ``runs`` view, an empty dataset, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import ConfigError
from farm.results import REQUIRED_COLUMNS, ResultsStore, query
from tests.results.rows import make_row


def test_empty_dataset_has_the_required_columns(tmp_path: Path) -> None:
    out = query(str(tmp_path / "nothing-here"), "SELECT * FROM runs")
    assert out.num_rows == 0 and out.column_names == list(REQUIRED_COLUMNS)
    assert query(str(tmp_path), "SELECT count(*) AS n FROM runs WHERE status = 'ok'").to_pylist() == [{"n": 0}]


def test_job_column_comes_once_as_a_string(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("2024") as w:  # a numeric-looking job name must not be auto-cast to an integer
        w.add(make_row(job="2024", run_id="a", decode_tokens_per_s=10.0))
        w.add(make_row(job="2024", run_id="b", decode_tokens_per_s=20.0))
    out = query(store, "SELECT * FROM runs")
    assert out.column_names.count("job") == 1 and out.column_names[0] == "job"
    assert query(store, "SELECT DISTINCT typeof(job) AS t, job FROM runs").to_pylist() == [
        {"t": "VARCHAR", "job": "2024"}
    ]
    p90 = query(store, "SELECT quantile_cont(decode_tokens_per_s, 0.9) AS p FROM runs").column("p")[0].as_py()
    assert p90 == pytest.approx(19.0)


def test_temp_files_are_not_read(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        w.add(make_row(run_id="a"))
    (tmp_path / "runs" / "job=sweep" / ".part-x.tmp").write_bytes(b"PAR1 torn")
    assert query(store, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 1}]


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELEC 1", "Parser Error"),
        ("SELECT nope FROM runs", "Binder Error"),
        ("SELECT * FROM other", "Catalog"),
    ],
)
def test_sql_errors_are_bad_input_on_one_line(tmp_path: Path, sql: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        query(str(tmp_path), sql)
    (line,) = info.value.lines()
    assert fragment in line and "\n" not in line and "LINE 1" not in line
