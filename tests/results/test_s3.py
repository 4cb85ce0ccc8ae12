"""Results on an S3-compatible object store (moto's server on loopback, tests/fixtures/s3.py): the store, compaction
next to a writer, refusing credentials in URIs, and a sweep that writes there read back by query, report and regress.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest
import yaml

from farm.cli.main import main
from farm.errors import ResultsError
from farm.results import ResultsStore
from tests.fixtures.s3 import S3Server
from tests.results.rows import make_row

REPO = Path(__file__).resolve().parents[2]


def _root(s3: S3Server) -> str:
    return s3.root(f"lab-{uuid.uuid4().hex[:8]}")


def test_rows_logs_and_compaction_round_trip(s3_server: S3Server) -> None:
    store = ResultsStore(_root(s3_server))
    assert not store.is_local
    with store.writer("sweep", flush_rows=5) as writer:
        for i in range(12):
            writer.add(make_row(job="sweep", run_id=f"r{i}"))
    assert len(store.part_files("sweep")) == 3 and store.table("sweep").num_rows == 12
    log = store.write_log("sweep", "r0", 1, "hello")
    assert log.startswith("s3://") and store.write_log("sweep", "r0", 1, "again") != log  # never overwritten
    result = store.compact("sweep")
    assert (result.files_before, result.files_after, result.rows_after) == (3, 1, 12)
    # no rename on S3: the file was uploaded under its final name, and no temporary object is left behind
    listing = s3_server.filesystem().get_file_info(pafs.FileSelector(store.runs_dir("sweep"), recursive=True))
    assert [i.base_name.startswith("part-") for i in listing] == [True]


def test_a_failed_serialization_uploads_nothing(s3_server: S3Server) -> None:
    store = ResultsStore(_root(s3_server))

    def torn(sink: Any) -> None:
        sink.write(b"PAR1 half a file")
        raise OSError("disk full while serializing")

    with pytest.raises(ResultsError, match="disk full"):
        store.write_atomic(store.runs_dir("torn"), "part-x.parquet", torn)
    assert store.part_files("torn") == []


def test_compaction_next_to_a_writer_and_a_reader_loses_nothing(s3_server: S3Server) -> None:
    store = ResultsStore(_root(s3_server))
    total = 120
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []  # distinct run ids per read: never fewer than a read before (nothing lost meanwhile)

    def write() -> None:
        try:
            with store.writer("busy", flush_rows=6) as writer:
                for i in range(total):
                    writer.add(make_row(job="busy", run_id=f"r{i:03d}"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    def read() -> None:
        # S3 has no atomic directory view: a reader lists the files, then reads them, and a compaction may delete
        # one in between (after writing the merged file); the store lists again instead of failing.
        while not done.is_set():
            try:
                seen.append(len(set(store.table("busy").column("run_id").to_pylist())))
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    compactions = 0
    while not done.is_set() or compactions == 0:
        store.compact("busy", small_file_bytes=1 << 30)
        compactions += 1
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert seen and seen == sorted(seen), seen
    store.compact("busy")
    ids = store.table("busy").column("run_id").to_pylist()
    assert sorted(ids) == [f"r{i:03d}" for i in range(total)] and compactions >= 1
    assert len(store.part_files("busy")) == 1


@pytest.mark.parametrize(
    "uri",
    [
        "s3://AKIAEXAMPLE:topsecret@bucket/lab",
        "s3://bucket/lab?secret_key=topsecret&access_key=AKIAEXAMPLE",
        "s3://bucket/lab?session_token=topsecret",
    ],
)
def test_a_uri_carrying_a_credential_is_refused(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "SELECT 1", "--results", uri]) == 2
    assert main(["regress", "job", "--baseline", "rolling:1", "--results", uri]) == 2
    err = capsys.readouterr().err
    assert "credential" in err and "AWS_PROFILE" in err and "topsecret" not in err
    with pytest.raises(Exception, match="credential"):
        ResultsStore(uri)


def _farm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_ADDRESS": "", "FARM_LEASE_DIR": str(cwd / "leases"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "farm.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.ray
def test_a_sweep_writes_to_s3_and_query_report_regress_read_it(s3_server: S3Server, tmp_path: Path) -> None:
    root = _root(s3_server)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [{"id": "host-1", "kind": "host"}]}))
    # v2: 10 % slower (value_ms: lower is better); its new build label runs every point again without --rerun
    for build, value in [("v1", 100), ("v2", 110)]:
        job = tmp_path / f"{build}.yaml"
        job.write_text(yaml.safe_dump({
            "name": "echo-s3", "build": build, "workload": "regex", "repeat": 6,
            "workload_options": {"patterns": {"value_ms": r"value_ms=(\d+)"}},
            "command": ["echo", f"value_ms={value}"], "grid": {"size": [1, 2]},
        }))  # fmt: skip
        done = _farm("run", str(job), "--inventory", str(inventory), "--results", root, "--no-progress",
                     cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    table = ResultsStore(root).table("echo-s3")
    assert table.num_rows == 24 and set(table.column("build").to_pylist()) == {"v1", "v2"}
    assert pc.all(pc.starts_with(table.column("log_path"), "s3://")).as_py()

    query = _farm("query", "SELECT build, count(*) AS n FROM runs GROUP BY 1 ORDER BY 1", "--format", "csv",
                  "--results", root, cwd=tmp_path)  # fmt: skip
    assert query.returncode == 0 and query.stdout.split() == ["build,n", "v1,12", "v2,12"], query
    report = _farm("report", "echo-s3", "--results", root, "--no-plots", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "reports" / "echo-s3").is_dir()
    regress = _farm("regress", "echo-s3", "--baseline", "v1", "--results", root, cwd=tmp_path)
    assert regress.returncode == 1, regress.stdout + regress.stderr
    assert regress.stdout.count("regression") >= 2  # both grid points
    same = _farm("regress", "echo-s3", "--baseline", "v1", "--candidate", "v1", "--results", root, cwd=tmp_path)
    assert same.returncode == 2 and "--baseline" in same.stderr
