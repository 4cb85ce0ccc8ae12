"""Row validation and the rows → Arrow conversion of the results schema."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from farm.errors import ResultsError
from farm.results.batches import RowBatch, RowValidator, rows_to_table
from farm.results.schema import REQUIRED_COLUMNS, ColumnKinds, validate_row
from tests.results.rows import make_row


def test_valid_row_is_normalized_to_utc_and_float() -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=8)))
    out = validate_row(make_row(started_at=local, duration_s=3))
    assert out["started_at"] == local and out["started_at"].utcoffset() == timedelta(0)
    assert out["duration_s"] == 3.0 and isinstance(out["duration_s"], float)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "weird"}, "status"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": True}, "attempt"),
        ({"repeat": -1}, "repeat"),
        ({"warmup": 1}, "warmup"),
        ({"started_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"duration_s": float("nan")}, "duration_s"),
        ({"error": 3}, "error"),
        ({"run_id": ""}, "run_id"),
        ({"job": "../escape"}, "job name"),
        ({"fp_soc": 8}, "fingerprint"),
        ({"p_shape": [1, 2]}, "scalar"),
        ({"bad name": 1.0}, "plain identifier"),
    ],
)
def test_bad_rows_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ResultsError, match=message):
        validate_row(make_row(**changes))


def test_missing_required_column_is_named() -> None:
    row = make_row()
    del row["node"]
    with pytest.raises(ResultsError, match=r"missing required column.*node"):
        validate_row(row)


def test_non_finite_metric_becomes_null_in_the_table() -> None:
    validator = RowValidator("sweep")
    rows = []
    for i, value in enumerate((float("inf"), 2.0, float("nan"))):
        row, new = validator.validate(make_row(run_id=f"r{i}", latency_ms=value))
        validator.learn(new)
        rows.append(row)
    assert rows_to_table(rows, validator.kinds).column("latency_ms").to_pylist() == [None, 2.0, None]


def test_fast_and_slow_paths_agree() -> None:
    validator = RowValidator("sweep")
    _, new = validator.validate(make_row(run_id="a", p_threads=4, energy_j=1.0, fp_soc="x"))
    assert [c for c, _ in new] == ["p_threads", "energy_j", "fp_soc"]
    validator.learn(new)
    # Same shape again: the fast path must still refuse every rule the slow path enforces.
    second, new = validator.validate(make_row(run_id="b", p_threads=8, energy_j=None, fp_soc="y"))
    assert new == [] and second["p_threads"] == 8
    cases: list[dict[str, Any]] = [
        {"status": "weird"},
        {"attempt": 0},
        {"repeat": -1},
        {"duration_s": float("nan")},
        {"run_id": ""},
        {"started_at": datetime(2026, 1, 1)},
        {"energy_j": "high"},
        {"fp_soc": 1},
        {"p_threads": True},
        {"job": "other"},
    ]
    for changes in cases:
        with pytest.raises(ResultsError):
            validator.validate(make_row(**{"run_id": "c", "p_threads": 8, "energy_j": 1.0, "fp_soc": "y", **changes}))
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    row, _ = validator.validate(make_row(run_id="d", p_threads=8, energy_j=1.0, fp_soc="y", started_at=local))
    assert row["started_at"].utcoffset() == timedelta(0) and row["started_at"] == local


def test_a_column_that_is_always_none_keeps_rows_on_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import farm.results.batches as batches

    slow: list[str] = []

    def counted(row: dict[str, Any]) -> dict[str, Any]:
        slow.append(row["run_id"])
        return validate_row(row)

    monkeypatch.setattr(batches, "validate_row", counted)
    validator = RowValidator("sweep")
    for i in range(4):  # a job without a build: its ``build`` column is None in every row
        _, new = validator.validate(make_row(run_id=f"r{i}", build=None, tokens=i))
        validator.learn(new)
    assert slow == ["r0"]  # the first row teaches ``tokens``; the others are checked by their shape
    bad_name = {**make_row(run_id="bad"), "build id": None}
    with pytest.raises(ResultsError, match="plain identifier"):
        validator.validate(bad_name)
    row, new = validator.validate(make_row(run_id="later", build="v2", tokens=1))  # the column gets its kind
    assert row["build"] == "v2" and new == [("build", "str")]


def test_column_kind_change_is_refused() -> None:
    kinds = ColumnKinds()
    kinds.learn(kinds.check(make_row(p_model="7b")))
    with pytest.raises(ResultsError, match="p_model"):
        kinds.check(make_row(p_model=7))


def test_table_types_metrics_float_params_int_and_job_left_out() -> None:
    rows = [validate_row(make_row(run_id=f"r{i}", p_threads=4, tokens=i, fp_soc="sm8550")) for i in range(3)]
    kinds = ColumnKinds()
    for r in rows:
        kinds.learn(kinds.check(r))
    table = rows_to_table(rows, kinds)
    assert "job" not in table.column_names
    assert table.column_names[: len(REQUIRED_COLUMNS) - 1] == list(REQUIRED_COLUMNS[1:])
    assert table.schema.field("p_threads").type == pa.int64()
    assert table.schema.field("tokens").type == pa.float64()
    assert table.schema.field("fp_soc").type == pa.string()
    assert table.column_names[-1] == "fp_soc"


def test_all_null_column_of_unknown_kind_is_left_out() -> None:
    rows = [validate_row(make_row(peak_rss_mib=None))]
    assert "peak_rss_mib" not in rows_to_table(rows, ColumnKinds()).column_names


def test_batch_of_several_shapes_keeps_row_order_and_values() -> None:
    validator = RowValidator("sweep")
    reordered = make_row(run_id="c", p_threads=2.5, latency_ms=float("inf"))
    rows = [
        make_row(run_id="a", p_threads=4, latency_ms=1.0, fp_soc="x"),
        make_row(run_id="b", p_threads=8),  # a failed run: no metric, no fingerprint
        dict(reversed(list(reordered.items()))),  # same columns in another order, a float parameter
        make_row(run_id="d", p_threads=16, latency_ms=None, fp_soc="y", energy_j=3),
        make_row(run_id="e", p_threads=1, latency_ms=2.0, fp_soc="z"),
    ]
    batch = RowBatch()
    for row in rows:
        shape, values, key, new = validator.check(row)
        assert key == (row["run_id"], 1)
        validator.learn(new)
        batch.append(shape, values)
    table = batch.to_table(validator.kinds)
    assert len(batch) == 5 and table.num_rows == 5
    assert table.column_names[: len(REQUIRED_COLUMNS) - 1] == list(REQUIRED_COLUMNS[1:])
    assert table.schema.field("p_threads").type == pa.float64()  # one row holds a float
    got = {c: table.column(c).to_pylist() for c in table.column_names}
    assert got["run_id"] == ["a", "b", "c", "d", "e"]
    assert got["p_threads"] == [4.0, 8.0, 2.5, 16.0, 1.0]
    assert got["latency_ms"] == [1.0, None, None, None, 2.0]
    assert got["fp_soc"] == ["x", None, None, "y", "z"]
    assert got["energy_j"] == [None, None, None, 3.0, None]
    assert got["started_at"] == [r["started_at"] for r in rows]
    assert table.equals(rows_to_table([validate_row(r) for r in rows], validator.kinds))


def test_integer_parameters_stay_integers_across_shapes() -> None:
    validator = RowValidator("sweep")
    batch = RowBatch()
    for i, row in enumerate([make_row(run_id="a", p_threads=4, tps=1.5), make_row(run_id="b", p_threads=8)]):
        shape, values, _, new = validator.check(row)
        validator.learn(new)
        batch.append(shape, values)
        assert i == 0 or new == []
    table = batch.to_table(validator.kinds)
    assert table.schema.field("p_threads").type == pa.int64()
    assert table.column("p_threads").to_pylist() == [4, 8]
