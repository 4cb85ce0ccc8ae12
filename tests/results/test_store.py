"""The results store: atomic part files, deduplication, union of columns, bookkeeping queries, compaction."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from farm.errors import ResultsError
from farm.results import REQUIRED_COLUMNS, ResultsStore, query
from farm.results.batches import rows_to_table
from farm.results.schema import ColumnKinds, validate_row
from tests.results.rows import make_row


def test_layout_and_round_trip(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        assert w.add(make_row(run_id="a", p_threads=4, decode_tokens_per_s=12.5))
    (part,) = store.part_files("sweep")
    assert Path(part).parent == tmp_path / "runs" / "job=sweep"
    assert Path(part).name.startswith("part-") and part.endswith(".parquet")
    assert "job" not in pq.read_schema(part).names  # the partition directory carries it
    t = store.table("sweep")
    assert t.column_names[0] == "job"
    assert set(REQUIRED_COLUMNS) <= set(t.column_names)
    row = t.to_pylist()[0]
    assert row["job"] == "sweep" and row["p_threads"] == 4 and row["decode_tokens_per_s"] == 12.5
    assert row["started_at"] == make_row()["started_at"]


def test_rows_buffer_until_flush_rows(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    w = store.writer("sweep", flush_rows=3, flush_seconds=3600)
    for i in range(7):
        w.add(make_row(run_id=f"r{i}"))
    assert len(store.part_files("sweep")) == 2 and w.pending == 1
    w.close()
    assert len(store.part_files("sweep")) == 3
    assert store.table("sweep").num_rows == 7
    with pytest.raises(ResultsError, match="closed"):
        w.add(make_row(run_id="late"))


def test_time_based_flush_happens_on_add_and_flush_if_due(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    w = store.writer("sweep", flush_rows=1000, flush_seconds=0.05)
    w.add(make_row(run_id="a"))
    assert w.flush_if_due() is None  # not yet due
    time.sleep(0.1)
    w.add(make_row(run_id="b"))  # the oldest row has waited long enough: both go out
    assert w.pending == 0 and store.table("sweep").num_rows == 2
    w.add(make_row(run_id="c"))
    time.sleep(0.1)
    assert w.flush_if_due() is not None
    assert store.table("sweep").num_rows == 3
    w.close()


def test_duplicates_dropped_within_writer_and_across_reopen(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        assert w.add(make_row(run_id="a"))
        assert not w.add(make_row(run_id="a", status="failed"))  # same (run_id, attempt)
        assert w.add(make_row(run_id="a", attempt=2))
    with store.writer("sweep") as w:
        assert not w.add(make_row(run_id="a", attempt=2))
        assert w.add(make_row(run_id="b"))
        assert w.rows_dropped == 1
    keys = sorted(zip(*(store.table("sweep").column(c).to_pylist() for c in ("run_id", "attempt")), strict=True))
    assert keys == [("a", 1), ("a", 2), ("b", 1)]


def test_bad_row_raises_and_is_not_buffered(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        with pytest.raises(ResultsError, match="status"):
            w.add(make_row(status="done"))
        with pytest.raises(ResultsError, match="given to the writer"):
            w.add(make_row(job="other"))
        assert w.pending == 0


def test_column_kind_is_kept_across_writers(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        w.add(make_row(run_id="a", p_model="7b"))
    with store.writer("sweep") as w, pytest.raises(ResultsError, match="p_model"):
        w.add(make_row(run_id="b", p_model=7))


def test_union_of_columns_that_appear_later_and_differ_by_job(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("llm", flush_rows=1) as w:
        w.add(make_row(job="llm", run_id="a", p_threads=4))  # metric not measured in the first file
        w.add(make_row(job="llm", run_id="b", p_threads=8, decode_tokens_per_s=9.5, peak_rss_mib=512))
        w.add(make_row(job="llm", run_id="c", p_threads=2.5))  # int axis gains a float in a later file
    with store.writer("codl") as w:
        w.add(make_row(job="codl", run_id="x", p_part_ratio=0.5, latency_ms=3.0, fp_soc="sm8550"))
    llm = store.table("llm").sort_by("run_id")
    assert llm.column("decode_tokens_per_s").to_pylist() == [None, 9.5, None]
    assert llm.column("p_threads").to_pylist() == [4, 8, 2.5]
    both = store.table()
    assert both.num_rows == 4 and {"latency_ms", "decode_tokens_per_s", "fp_soc"} <= set(both.column_names)
    sql = query(store, "SELECT job, count(*) AS n, count(latency_ms) AS lat FROM runs GROUP BY job ORDER BY job")
    assert sql.to_pylist() == [{"job": "codl", "n": 1, "lat": 1}, {"job": "llm", "n": 3, "lat": 0}]
    # DuckDB's union_by_name must promote the int64 and float64 files of p_threads alike.
    assert query(store, "SELECT sum(p_threads) AS s FROM runs WHERE job = 'llm'").to_pylist() == [{"s": 14.5}]


def test_done_run_ids_and_attempts(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        w.add(make_row(run_id="ok1"))
        w.add(make_row(run_id="retried", status="infra_error", error="device offline"))
        w.add(make_row(run_id="retried", attempt=2))
        w.add(make_row(run_id="failed", status="failed", error="exit 1"))
        w.add(make_row(run_id="warm", warmup=True))
        w.add(make_row(run_id="gave_up", status="timeout"))
        w.add(make_row(run_id="gave_up", attempt=3, status="timeout"))
    assert store.done_run_ids("sweep") == {"ok1", "retried"}
    assert store.attempts("sweep") == {"ok1": 1, "retried": 2, "failed": 1, "warm": 1, "gave_up": 3}
    assert store.done_run_ids("nothing") == set() and store.attempts("nothing") == {}


def test_done_run_ids_of_a_build_label(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("nightly") as w:
        w.add(make_row(job="nightly", run_id="a"))  # before builds were labelled
    assert store.done_run_ids("nightly", "v1") == set() and store.done_run_ids("nightly") == {"a"}
    with store.writer("nightly") as w:
        w.add(make_row(job="nightly", run_id="b", build="v1"))
        w.add(make_row(job="nightly", run_id="c", build="v2"))
    assert store.done_run_ids("nightly", "v1") == {"b"}  # a new build label runs everything again
    assert store.done_run_ids("nightly", "v3") == set() and store.done_run_ids("nightly") == {"a", "b", "c"}


def test_metric_values_of_done_runs_for_adaptive_repeats(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        w.add(make_row(run_id="a", tok_s=10.0, build="v1"))
        w.add(make_row(run_id="b", status="failed", error="exit 1", build="v1"))
        w.add(make_row(run_id="c", tok_s=1.0, build="v1"))
        w.add(make_row(run_id="c", attempt=2, tok_s=3.0, build="v1"))  # the latest attempt's value
        w.add(make_row(run_id="w", warmup=True, tok_s=5.0, build="v1"))
        w.add(make_row(run_id="d", tok_s=7.0, build="v2"))
    assert store.metric_values("sweep", "tok_s", {"a", "b", "c", "w", "d"}, "v1") == {"a": 10.0, "c": 3.0}
    assert store.metric_values("sweep", "tok_s", {"a", "d"}) == {"a": 10.0, "d": 7.0}
    assert store.metric_values("sweep", "latency_ms", {"a"}) == {} and store.metric_values("none", "x", {"a"}) == {}


def test_jobs_lists_only_partitions_with_part_files(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    assert store.jobs() == []
    (tmp_path / "runs" / "job=empty").mkdir(parents=True)
    with store.writer("b") as w:
        w.add(make_row(job="b"))
    with store.writer("a") as w:
        w.add(make_row(job="a"))
    assert store.jobs() == ["a", "b"]


def test_concurrent_adds_write_every_row_once(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    w = store.writer("sweep", flush_rows=37)

    def worker(k: int) -> None:
        # Threads overlap on half their run ids: each (run_id, attempt) must land exactly once.
        for i in range(200):
            w.add(make_row(run_id=f"r{(k * 100 + i) % 500}"))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    ids = store.table("sweep").column("run_id").to_pylist()
    assert len(ids) == len(set(ids)) == 500
    assert w.rows_written == 500 and w.rows_dropped == 500


_CRASH_SCRIPT = """
import io, os, sys
import pyarrow.parquet as pq
from farm.results import ResultsStore
from tests.results.rows import make_row

store = ResultsStore(sys.argv[1])
w = store.writer("sweep")
w.add(make_row(run_id="kept"))
w.flush()
real_write = pq.write_table

def dying_write(table, sink, **kwargs):
    # Write half of a real Parquet file, then die as a killed process would: no cleanup, no rename.
    buf = io.BytesIO()
    real_write(table, buf, **kwargs)
    data = buf.getvalue()
    sink.write(data[: len(data) // 2])
    sink.flush()
    os._exit(137)

pq.write_table = dying_write
w.add(make_row(run_id="lost"))
w.flush()
"""


def test_crash_mid_write_leaves_only_an_ignored_temp_file(tmp_path: Path) -> None:
    root = tmp_path / "results"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(root)],
        cwd=repo,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 137, proc.stderr
    partition = root / "runs" / "job=sweep"
    leftovers = sorted(p.name for p in partition.iterdir() if not p.name.endswith(".parquet"))
    assert len(leftovers) == 1 and leftovers[0].startswith(".part-") and leftovers[0].endswith(".tmp")
    assert (partition / leftovers[0]).stat().st_size > 0  # the torn bytes are really there

    store = ResultsStore(str(root))
    assert store.table("sweep").column("run_id").to_pylist() == ["kept"]
    assert query(store, "SELECT run_id FROM runs").column("run_id").to_pylist() == ["kept"]
    # The lost row was never written, so a new writer accepts it again; the kept one stays deduplicated.
    with store.writer("sweep") as w:
        assert w.add(make_row(run_id="lost"))
        assert not w.add(make_row(run_id="kept"))
    assert sorted(store.table("sweep").column("run_id").to_pylist()) == ["kept", "lost"]
    assert store.compact("sweep").rows_after == 2


def test_failed_flush_keeps_rows_buffered(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path / "root"))
    w = store.writer("sweep")
    (tmp_path / "root" / "runs").write_text("a file where the runs directory should be")
    w.add(make_row(run_id="a"))
    with pytest.raises(ResultsError, match="cannot write"):
        w.flush()
    assert w.pending == 1


def test_compact_keeps_every_row_once(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep", flush_rows=4) as w:
        for i in range(10):
            w.add(make_row(run_id=f"r{i}", latency_ms=float(i) if i > 5 else None))
    # A crash between a compaction's rename and its deletes leaves a row twice: compact must drop the copy.
    duplicate = validate_row(make_row(run_id="r3"))
    kinds = ColumnKinds()
    kinds.learn(kinds.check(duplicate))
    store.write_table("sweep", rows_to_table([duplicate], kinds))
    before = store.table("sweep")
    assert len(store.part_files("sweep")) == 4 and before.num_rows == 11

    result = store.compact("sweep")
    assert (result.files_before, result.files_after, result.rows_before, result.rows_after) == (4, 1, 11, 10)
    after = store.table("sweep").sort_by("run_id")
    assert len(store.part_files("sweep")) == 1
    assert after.column("run_id").to_pylist() == sorted(f"r{i}" for i in range(10))
    assert after.column("latency_ms").to_pylist() == [None] * 6 + [6.0, 7.0, 8.0, 9.0]
    expected = before.sort_by("run_id").to_pylist()
    expected.pop(4)  # one of the two r3 rows
    assert after.to_pylist() == expected
    # Idempotent: a second compaction rewrites nothing.
    files = store.part_files("sweep")
    assert store.compact("sweep").rows_after == 10 and store.part_files("sweep") == files


def test_write_log_is_atomic_and_named_by_run(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    path = store.write_log("sweep", "abc123", 2, "prompt eval time = 1 ms\n")
    assert Path(path) == tmp_path / "logs" / "sweep" / "abc123-2.log"
    assert Path(path).read_text() == "prompt eval time = 1 ms\n"
    assert [p.name for p in Path(path).parent.iterdir()] == ["abc123-2.log"]
    with pytest.raises(ResultsError):
        store.write_log("sweep", "../x", 1, "")


def test_file_uri_root(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path.as_uri())
    with store.writer("sweep") as w:
        w.add(make_row(run_id="a", log_path=store.write_log("sweep", "a", 1, "out")))
    assert (tmp_path / "runs" / "job=sweep").is_dir()
    assert store.table().column("log_path").to_pylist() == [str(tmp_path / "logs" / "sweep" / "a-1.log")]
    assert query(store, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 1}]


def test_non_local_filesystem_goes_through_pyarrow(tmp_path: Path) -> None:
    # pyarrow's in-memory mock filesystem stands for an object store: no DuckDB glob, an Arrow table.
    store = ResultsStore("mock:///bucket/results")
    assert not store.is_local
    assert query(store, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 0}]
    with store.writer("sweep") as w:
        w.add(make_row(run_id="a", p_threads=4))
        w.add(make_row(run_id="b", p_threads=8))
    log_uri = store.write_log("sweep", "a", 1, "x")
    assert log_uri.startswith("mock://") and log_uri.endswith("/logs/sweep/a-1.log")
    out = query(store, "SELECT job, sum(p_threads) AS s FROM runs GROUP BY job")
    assert out.to_pylist() == [{"job": "sweep", "s": 12}]


def test_unusable_job_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="job name"):
        ResultsStore(str(tmp_path)).writer(".hidden")


def test_schema_reports_union_of_files(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    assert store.schema("sweep") is None
    with store.writer("sweep", flush_rows=1) as w:
        w.add(make_row(run_id="a"))
        w.add(make_row(run_id="b", energy_j=2.0))
    schema = store.schema("sweep")
    assert schema is not None and schema.field("energy_j").type == pa.float64()


def test_compact_leaves_big_files_and_drops_their_keys_from_small_ones(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep") as w:
        for i in range(300):
            w.add(make_row(run_id=f"big{i}", p_threads=4))
    (big,) = store.part_files("sweep")
    big_bytes = Path(big).read_bytes()
    with store.writer("sweep", flush_rows=2) as w:
        for i in range(5):
            w.add(make_row(run_id=f"small{i}"))
    # Left over from a crashed compaction: a small file repeating a row of the big file.
    copy = validate_row(make_row(run_id="big7", p_threads=4))
    kinds = ColumnKinds()
    kinds.learn(kinds.check(copy))
    store.write_table("sweep", rows_to_table([copy], kinds))
    assert len(store.part_files("sweep")) == 5

    result = store.compact("sweep", small_file_bytes=len(big_bytes))
    assert (result.files_before, result.files_after, result.rows_before, result.rows_after) == (5, 2, 306, 305)
    files = store.part_files("sweep")
    assert big in files and Path(big).read_bytes() == big_bytes  # never rewritten
    ids = store.table("sweep").column("run_id").to_pylist()
    assert len(ids) == len(set(ids)) == 305
    # Nothing left to merge: a second compaction is a no-op.
    assert store.compact("sweep", small_file_bytes=len(big_bytes)).files_after == 2
    assert store.part_files("sweep") == files


def test_jobs_using_one_column_name_differently_read_as_text(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("a") as w:
        w.add(make_row(job="a", run_id="x", p_size=7))
    with store.writer("b") as w:
        w.add(make_row(job="b", run_id="y", p_size="7b"))
    both = store.table().sort_by("job")
    assert both.schema.field("p_size").type == pa.string()
    assert both.column("p_size").to_pylist() == ["7", "7b"]
    assert store.table("a").column("p_size").to_pylist() == [7]
    assert query(store, "SELECT p_size FROM runs ORDER BY job").column("p_size").to_pylist() == ["7", "7b"]


def test_rows_of_several_shapes_are_stored_in_the_order_added(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep", flush_rows=100) as w:
        for i in range(40):
            # Failed runs carry no metrics, so the rows of one flush come in two sets of columns.
            extra = {"latency_ms": float(i), "fp_soc": "sm8550"} if i % 3 else {}
            w.add(make_row(run_id=f"r{i:02d}", status="ok" if i % 3 else "failed", p_threads=i % 4, **extra))
    (part,) = store.part_files("sweep")
    t = pq.read_table(part)
    assert t.column("run_id").to_pylist() == [f"r{i:02d}" for i in range(40)]
    assert t.column("latency_ms").to_pylist() == [float(i) if i % 3 else None for i in range(40)]
    assert t.schema.field("p_threads").type == pa.int64()


def test_huge_integers_are_stored_as_floats_and_never_block_the_writer(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    with store.writer("sweep", flush_rows=1) as w:
        assert w.add(make_row(run_id="a", bytes_total=2**60, p_seed=2**70))
        assert w.pending == 0  # flushed: a value Arrow will not round must not leave the row stuck
        assert w.add(make_row(run_id="b", bytes_total=5, p_seed=3))
    rows = store.table("sweep").sort_by("run_id").to_pylist()
    assert [r["bytes_total"] for r in rows] == [float(2**60), 5.0]
    assert [r["p_seed"] for r in rows] == [float(2**70), 3.0]


def test_row_changed_after_add_is_stored_as_it_was_added(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    row = make_row(run_id="a", latency_ms=1.0)
    with store.writer("sweep") as w:
        w.add(row)
        row["latency_ms"] = "changed"
        row["run_id"] = "b"
    (stored,) = store.table("sweep").to_pylist()
    assert stored["run_id"] == "a" and stored["latency_ms"] == 1.0


def test_a_writer_holds_its_job_partition_alone(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    first = store.writer("sweep")
    with pytest.raises(ResultsError, match=r"already being run or written into .* \(lock held by pid \d+ "):
        store.writer("sweep")  # a second writer of the job, even in this process
    with store.writer("other") as w:  # other jobs are not affected
        w.add(make_row(job="other", run_id="a"))
    first.add(make_row(run_id="a"))
    first.close()
    with store.writer("sweep") as again:  # closing gave the partition up
        assert not again.add(make_row(run_id="a"))


_HOLDER_SCRIPT = """
import sys, time
from farm.results import ResultsStore

w = ResultsStore(sys.argv[1]).writer("sweep")
print("holding", flush=True)
time.sleep(600)
"""


def test_the_partition_lock_holds_across_processes_and_ends_with_its_holder(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER_SCRIPT, str(tmp_path)], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        with pytest.raises(ResultsError, match=f"pid {holder.pid} "):
            ResultsStore(str(tmp_path)).writer("sweep")
    finally:
        holder.kill()  # a crash: no close, no cleanup
        holder.wait(60)
    with ResultsStore(str(tmp_path)).writer("sweep") as w:
        assert w.add(make_row(run_id="after"))


def test_a_log_is_never_overwritten(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    first = store.write_log("sweep", "r1", 1, "first\n")
    second = store.write_log("sweep", "r1", 1, "second\n")
    assert first != second and Path(first).name == "r1-1.log"
    assert Path(first).read_text() == "first\n" and Path(second).read_text() == "second\n"
    assert sorted(p.name for p in (tmp_path / "logs" / "sweep").iterdir() if p.name.startswith(".")) == []


def test_job_records_are_stored_and_queryable(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    record = {"job": "sweep", "job_id": "sweep-1a2b", "state": "cancelled", "total": 10**6, "not_started": 999_990,
              "finished": 10, "skipped": 0, "statuses": {"ok": 9, "cancelled": 1}, "submitted_at": 1.7e9,
              "cancelled_at": 1.7e9 + 5, "finished_at": 1.7e9 + 6}  # fmt: skip
    path = store.write_job_record("sweep", "sweep-1a2b", record)
    assert path == str(tmp_path / "jobs" / "sweep" / "sweep-1a2b.json")
    assert store.job_records("sweep") == [record] and store.job_records() == [record]
    got = query(store, "SELECT job, not_started, finished, statuses FROM cancellations").to_pylist()
    assert got == [{"job": "sweep", "not_started": 999_990, "finished": 10, "statuses": '{"cancelled": 1, "ok": 9}'}]
    assert query(ResultsStore(str(tmp_path / "empty")), "SELECT count(*) AS n FROM cancellations").to_pylist() == [
        {"n": 0}
    ]


def test_collected_files_are_stored_per_run_and_paths_stay_inside(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    assert store.write_files("j", "r1", 1, []) is None
    folder = store.write_files("j", "r1", 2, [("output_0.npz", b"a"), ("dumps/x.npz", b"bb")])
    assert folder == str(tmp_path / "files" / "j" / "r1-2")
    assert (tmp_path / "files/j/r1-2/output_0.npz").read_bytes() == b"a"
    assert (tmp_path / "files/j/r1-2/dumps/x.npz").read_bytes() == b"bb"
    for bad in ("../escape.npz", "/etc/passwd", "a//b", ""):
        with pytest.raises(ResultsError, match="not a plain relative path"):
            store.write_files("j", "r1", 3, [(bad, b"x")])
    assert not (tmp_path / "files" / "escape.npz").exists()


def test_unsynced_logs_are_synced_before_the_rows_that_name_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # farm.results.run_logs: a log written with durable=False is synced by the flush of its row, before the part
    # file is written, so no crash can leave a row whose log is missing.
    store = ResultsStore(str(tmp_path))
    calls: list[str] = []
    sync, write_table = store.sync_logs, store.write_table
    monkeypatch.setattr(store, "sync_logs", lambda: (calls.append("sync"), sync())[1])
    monkeypatch.setattr(store, "write_table", lambda job, table: (calls.append("part"), write_table(job, table))[1])
    w = store.writer("sweep", flush_rows=2, flush_seconds=3600)
    first = store.write_log("sweep", "a", 1, "one\n", durable=False)
    again = store.write_log("sweep", "a", 1, "again\n", durable=False)  # the same run and attempt: a second file
    assert Path(first).read_text() == "one\n" and Path(again).read_text() == "again\n" and first != again
    w.add(make_row(run_id="a", log_path=first))
    assert calls == []
    w.add(make_row(run_id="b", log_path=store.write_log("sweep", "b", 1, "two\n", durable=False)))
    assert calls == ["sync", "part"]
    w.close()
    assert store.table("sweep").num_rows == 2


def test_without_syncfs_each_owed_log_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from farm.results import run_logs

    monkeypatch.setattr(run_logs, "_syncfs", None)
    synced: list[int] = []
    real_fsync = run_logs.os.fsync
    monkeypatch.setattr(run_logs.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    store = ResultsStore(str(tmp_path))
    for run in ("a", "b", "c"):
        store.write_log("sweep", run, 1, run, durable=False)
    store.sync_logs()
    assert len(synced) == 4  # three logs and their one folder
    store.sync_logs()
    assert len(synced) == 4  # nothing owed any more


def test_a_failed_log_sync_fails_the_flush_and_keeps_the_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from farm.results import run_logs

    store = ResultsStore(str(tmp_path))
    w = store.writer("sweep", flush_rows=100, flush_seconds=3600)
    w.add(make_row(run_id="a", log_path=store.write_log("sweep", "a", 1, "x", durable=False)))

    def broken(fd: int) -> int:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(run_logs, "_syncfs", None)
    monkeypatch.setattr(run_logs.os, "fsync", broken)
    with pytest.raises(ResultsError, match="cannot sync the run logs"):
        w.flush()
    assert w.pending == 1 and store.part_files("sweep") == []
    monkeypatch.undo()
    w.close()  # the sync is still owed, and now succeeds
    assert store.table("sweep").num_rows == 1
