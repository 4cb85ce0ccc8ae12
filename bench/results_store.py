"""Benchmark of the results store: append rate, DuckDB group-by with p90 over 1M rows, files and compaction.

Every row is synthetic (generated here, ``synthetic=True``), of a realistic width: the 15 required columns, 5
grid parameters, 12 metrics, 3 extras and 6 fingerprint columns (41 with ``job``); as in the controller's rows,
a failed run (3 %) has no parsed metrics, so its row lacks those 11 columns. Each figure is printed next
to a baseline measured in the same run on the same rows:

- append: ``ResultsWriter.add`` (validation, dedup, buffering, an atomic fsynced part file per 5,000 rows)
  against ``pa.Table.from_pylist`` (with the batch's schema given) + ``pq.write_table`` of the same 5,000-row
  batches (no checks, no fsync); both are warmed up once first (pyarrow imports pandas on first use);
- query: ``farm.results.query`` (connect, the ``runs`` view, the SQL) against DuckDB's ``read_parquet`` of
  files holding the same rows, without the view;
- compaction: file count after many small flushes and after ``compact``.

Usage: ``PYTHONPATH=. .venv/bin/python bench/results_store.py [--rows 1000000] [--batch 5000] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from farm.results import ResultsStore, query

JOB = "bench"
SLOTS = [f"phone-{i}" for i in range(6)] + ["tpu-box-0/chip0", "tpu-box-0/chip1"]
MODELS = ["llama2-7b-q4_0", "gemma3-270m-q4_k_m", "qwen2-1.5b-q8_0"]
SQL = (
    "SELECT slot, p_threads, count(*) AS n, avg(decode_tokens_per_s) AS mean_tps, "
    "quantile_cont(decode_tokens_per_s, 0.9) AS p90_tps, quantile_cont(latency_ms, 0.9) AS p90_latency_ms "
    "FROM runs WHERE status = 'ok' AND NOT warmup GROUP BY ALL ORDER BY ALL"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# What a llama.cpp parser reports: absent from the row of a run that failed before printing it.
PARSED_METRICS = (
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "latency_ms",
    "ttft_ms",
    "load_ms",
    "sample_ms",
    "eval_ms",
    "prompt_eval_ms",
    "model_buffer_mb",
    "kv_cache_mb",
    "compute_buffer_mb",
)


def synthetic_rows(start: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + count):
        threads = rng.choice((1, 2, 4, 6, 8))
        slot = SLOTS[i % len(SLOTS)]
        failed = rng.random() < 0.03
        row = {
            "job": JOB,
            "run_id": f"{i:016x}",
            "device_id": slot.split("/", 1)[0],
            "slot": slot,
            "device_kind": "phone" if slot.startswith("phone") else "sophgo",
            "node": f"node-{i % 3}",
            "status": "failed" if failed else "ok",
            "error": "exit code 1" if failed else None,
            "attempt": 1,
            "repeat": i % 5,
            "warmup": i % 5 == 0,
            "started_at": T0 + timedelta(seconds=i),
            "duration_s": rng.uniform(1.0, 30.0),
            "synthetic": True,
            "command": f"./llama-cli -m /data/local/tmp/m.gguf -t {threads} -c 512 -n 64 -p hello",
            "log_path": f"/results/logs/{JOB}/{i:016x}-1.log",
            "p_threads": threads,
            "p_ctx": rng.choice((256, 512, 1024)),
            "p_model": rng.choice(MODELS),
            "p_batch": rng.choice((1, 8, 32)),
            "p_part_ratio": rng.choice((0.0, 0.25, 0.5, 0.75, 1.0)),
            "decode_tokens_per_s": rng.gauss(4.0 * threads, 1.5),
            "prefill_tokens_per_s": rng.uniform(10, 200),
            "latency_ms": rng.uniform(5, 900),
            "ttft_ms": rng.uniform(50, 2000),
            "load_ms": rng.uniform(100, 5000),
            "sample_ms": rng.uniform(1, 50),
            "eval_ms": rng.uniform(100, 9000),
            "prompt_eval_ms": rng.uniform(50, 3000),
            "model_buffer_mb": 3647.87,
            "kv_cache_mb": rng.choice((128.0, 256.0, 512.0)),
            "compute_buffer_mb": 70.5,
            "energy_j": rng.uniform(1, 100),
            "temp_start_c": rng.uniform(30, 45),
            "peak_rss_mib": rng.uniform(500, 4000),
            "bytes_pushed": float(rng.choice((0, 3_825_205_248))),
            "fp_model": "SM-S9180",
            "fp_soc": "SM8550",
            "fp_build": "UP1A.231005.007",
            "fp_kernel": "5.15.94-android14",
            "fp_binary_sha256": "9f2c4e" * 10 + "abcd",
            "fp_model_sha256": "1a2b3c" * 10 + "ef01",
        }
        if failed:
            for key in PARSED_METRICS:
                del row[key]
        rows.append(row)
    return rows


def batches(total: int, size: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(seed)
    for start in range(0, total, size):
        yield synthetic_rows(start, min(size, total - start), rng)


def timed(fn: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the dataset the query scans")
    parser.add_argument("--batch", type=int, default=5_000, help="rows per writer flush (and per baseline file)")
    parser.add_argument("--small-flushes", type=int, default=400, help="flushes of 50 rows for the file-count test")
    parser.add_argument("--dir", help="work directory (default: a fresh temporary directory, removed at the end)")
    args = parser.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="farm-bench-"))
    store_root, base_root = work / "store", work / "baseline"
    base_root.mkdir(parents=True, exist_ok=True)

    # 1. Append: the same batches through the store and through raw pyarrow; generation is not timed.
    store = ResultsStore(str(store_root))
    writer = store.writer(JOB, flush_rows=args.batch, flush_seconds=3600)
    # Store and baseline alternate batch by batch so both see the same load from other processes.
    store_batches: list[float] = []
    base_batches: list[float] = []
    # CPU seconds of this process per step: the code's own cost, which other load on the machine cannot inflate.
    cpu_store = cpu_base = 0.0
    # The baseline is given the columns of a whole row (from_pylist would take them from a batch's first row,
    # dropping the metrics of every batch that starts with a failed run); both sides are warmed up untimed.
    warm = synthetic_rows(0, args.batch, random.Random(0))
    warm.sort(key=len, reverse=True)
    base_schema = pa.Table.from_pylist(warm).schema
    with ResultsStore(str(work / "warmup")).writer(JOB, flush_rows=args.batch) as warm_writer:
        for row in warm:
            warm_writer.add(row)
    pq.write_table(pa.Table.from_pylist(warm, schema=base_schema), work / "warmup.parquet", compression="zstd")
    width = len(base_schema)
    for n, rows in enumerate(batches(args.rows, args.batch, seed=1)):
        t0, c0 = time.perf_counter(), time.process_time()
        for row in rows:
            writer.add(row)
        writer.flush()
        store_batches.append(time.perf_counter() - t0)
        cpu_store += time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        table = pa.Table.from_pylist(rows, schema=base_schema)
        pq.write_table(table, base_root / f"part-{n:05d}.parquet", compression="zstd")
        base_batches.append(time.perf_counter() - t0)
        cpu_base += time.process_time() - c0
    writer.close()
    t_store, t_base = sum(store_batches), sum(base_batches)
    files_query = len(store.part_files(JOB))

    # 2. Query: median of 5 after one warm-up, over the files the writer produced (one per flush).
    query(store, SQL)
    t_query = timed(lambda: query(store, SQL), 5)
    result = query(store, SQL)
    pattern = str(base_root / "*.parquet").replace("'", "''")

    def raw_duckdb(options: str) -> None:
        con = duckdb.connect()
        con.sql(SQL.replace("FROM runs", f"FROM read_parquet('{pattern}'{options})")).to_arrow_table()
        con.close()

    # Plain read_parquet trusts the first file's schema; union_by_name (which the store needs, as columns
    # differ between files) reads every file's footer first.
    raw_duckdb("")
    t_raw = timed(lambda: raw_duckdb(""), 5)
    t_raw_union = timed(lambda: raw_duckdb(", union_by_name = true"), 5)

    # 3. Compaction of the 1M-row job, then the query again over one file.
    t0 = time.perf_counter()
    compaction = store.compact(JOB)
    t_compact = time.perf_counter() - t0
    t_query_compacted = timed(lambda: query(store, SQL), 5)

    # 4. Many small flushes (e.g. a slow sweep with time-based flushes), then compact.
    small = ResultsStore(str(work / "small"))
    with small.writer(JOB, flush_rows=50, flush_seconds=3600) as w:
        for rows in batches(50 * args.small_flushes, 50, seed=2):
            for row in rows:
                w.add(row)
    files_small_before = len(small.part_files(JOB))
    t0 = time.perf_counter()
    small_compaction = small.compact(JOB)
    t_small_compact = time.perf_counter() - t0
    files_small_after = len(small.part_files(JOB))
    small_rows = small.table(JOB).num_rows

    if not args.dir:
        shutil.rmtree(work)

    store_rate, base_rate = args.rows / t_store, args.rows / t_base
    store_median = args.batch / statistics.median(store_batches)
    base_median = args.batch / statistics.median(base_batches)
    # The fastest batch is the best view of the code's own cost on a machine shared with other work.
    store_best, base_best = args.batch / min(store_batches), args.batch / min(base_batches)
    load = os.getloadavg()[0]
    q, raw, qc = statistics.median(t_query), statistics.median(t_raw), statistics.median(t_query_compacted)
    raw_union = statistics.median(t_raw_union)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(f"result groups: {result.num_rows}; first: {result.slice(0, 1).to_pylist()}")
    print()
    print("== farm results store benchmark (synthetic rows) ==")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {cpu}, {os.cpu_count()} CPUs; "
        f"python {platform.python_version()}, pyarrow {pa.__version__}, duckdb {duckdb.__version__}"
    )
    print(
        f"rows: {args.rows:,} x {width} columns (failed runs: {width - len(PARSED_METRICS)}); "
        f"batches of {args.batch:,}; 1-min load average at the end: {load:.1f}"
    )
    print(
        f"append, ResultsWriter.add+flush: {store_rate:,.0f} rows/s overall ({t_store:.2f} s), "
        f"{store_median:,.0f} rows/s median batch, {store_best:,.0f} rows/s best batch"
    )
    print(
        f"append, baseline from_pylist+write_table: {base_rate:,.0f} rows/s overall ({t_base:.2f} s), "
        f"{base_median:,.0f} rows/s median batch, {base_best:,.0f} rows/s best batch; ratio store/baseline "
        f"{store_rate / base_rate:.2f} overall, {store_median / base_median:.2f} median, "
        f"{store_best / base_best:.2f} best"
    )
    print(
        f"append, CPU time of this process: store {args.rows / cpu_store:,.0f} rows per CPU-second, baseline "
        f"{args.rows / cpu_base:,.0f}; ratio {cpu_base / cpu_store:.2f}"
    )
    print(
        f"query group-by + p90 over {args.rows:,} rows in {files_query} files: median {q:.3f} s "
        f"(min {min(t_query):.3f}); baseline raw DuckDB read_parquet: median {raw:.3f} s (ratio {q / raw:.2f}), "
        f"with union_by_name: median {raw_union:.3f} s (ratio {q / raw_union:.2f})"
    )
    print(
        f"compact {compaction.files_before} files -> {compaction.files_after} "
        f"({compaction.rows_after:,} rows): {t_compact:.2f} s; query after compact: median {qc:.3f} s"
    )
    print(
        f"small flushes: {args.small_flushes} flushes of 50 rows -> {files_small_before} files; "
        f"after compact {files_small_after} file(s), {small_rows:,} rows "
        f"(rows before {small_compaction.rows_before:,}); compact {t_small_compact:.2f} s"
    )


if __name__ == "__main__":
    main()
