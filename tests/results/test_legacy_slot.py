"""Files written before the ``slot`` column stored the slot id as ``device_id``: they read as today's rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from farm.results import ResultsStore
from farm.results.query import query
from farm.results.schema import FILE_REQUIRED_SCHEMA, slot_device
from tests.results.rows import make_row

# The required columns as files stored them before ``slot`` existed.
OLD_SCHEMA = pa.schema([f for f in FILE_REQUIRED_SCHEMA if f.name != "slot"])


def write_old_file(store: ResultsStore, job: str, rows: list[dict[str, Any]]) -> None:
    """A part file as an older Farm wrote it: ``device_id`` holds the slot id and there is no ``slot`` column."""
    columns = {name: [r[name] for r in rows] for name in OLD_SCHEMA.names}
    store.write_table(job, pa.table(columns, schema=OLD_SCHEMA))


def old_row(run_id: str, slot: str) -> dict[str, Any]:
    row = make_row(job="sweep", run_id=run_id)
    row["device_id"] = slot  # what an old file holds in device_id
    del row["slot"]
    return row


def test_slot_device_is_the_part_before_the_slash() -> None:
    assert [slot_device(s) for s in ("pixel7", "tpu-box/chip1", "npu-server/npu0")] == [
        "pixel7",
        "tpu-box",
        "npu-server",
    ]


def test_old_and_new_files_read_alike_through_the_store_the_query_view_and_compaction(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    write_old_file(store, "sweep", [old_row("old-box", "tpu-box/chip1"), old_row("old-phone", "pixel7")])
    with store.writer("sweep") as writer:
        writer.add(make_row(run_id="new-box", slot="tpu-box/chip0"))
    expected = {
        "old-box": ("tpu-box", "tpu-box/chip1"),
        "old-phone": ("pixel7", "pixel7"),
        "new-box": ("tpu-box", "tpu-box/chip0"),
    }

    def seen(rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        return {r["run_id"]: (r["device_id"], r["slot"]) for r in rows}

    assert seen(store.table("sweep").to_pylist()) == expected
    assert seen(query(store, "SELECT run_id, device_id, slot FROM runs").to_pylist()) == expected
    grouped = query(store, "SELECT device_id, count(*) AS n FROM runs GROUP BY ALL ORDER BY ALL").to_pylist()
    assert grouped == [{"device_id": "pixel7", "n": 1}, {"device_id": "tpu-box", "n": 2}]

    result = store.compact("sweep")
    assert (result.files_before, result.files_after, result.rows_after) == (2, 1, 3)
    assert "slot" in store.schema("sweep").names  # type: ignore[union-attr]  # rewritten in today's form
    assert seen(store.table("sweep").to_pylist()) == expected
    assert seen(query(store, "SELECT run_id, device_id, slot FROM runs").to_pylist()) == expected


def test_a_store_of_old_files_only_still_has_a_slot_column(tmp_path: Path) -> None:
    store = ResultsStore(str(tmp_path))
    write_old_file(store, "sweep", [old_row("a", "npu-server/npu1")])
    got = query(store, "SELECT device_id, slot FROM runs").to_pylist()
    assert got == [{"device_id": "npu-server", "slot": "npu-server/npu1"}]
    assert store.table().select(["device_id", "slot"]).to_pylist() == got
