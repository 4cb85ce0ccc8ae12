"""Every job under jobs/ and the example inventory validate, and each job plans runs on the example lab."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from farm.plan import count_runs, plan_runs, render
from farm.specs.inventory import load_inventory
from farm.specs.job import load_job

REPO = Path(__file__).resolve().parents[2]
JOBS = sorted((REPO / "jobs").glob("*.yaml"))
INVENTORY = REPO / "deploy" / "inventory.example.yaml"


SEED_JOBS = {
    "elastic-infer-sparsity.yaml",
    "elastic-infer-bound.yaml",
    "codl-split-ratio.yaml",
    "llm-tpu-qwen.yaml",
    "ascend-llama-adapter.yaml",
    "lightcode-search.yaml",
    "lightcode-thresholds.yaml",
    "llm-tpu-qwen-dump.yaml",
}


def test_there_are_seed_jobs() -> None:
    assert {p.name for p in JOBS} >= SEED_JOBS


def test_example_inventory() -> None:
    inv = load_inventory(INVENTORY)
    kinds = sorted(d.kind for d in inv.devices)
    assert kinds == ["android", "android", "android", "ascend", "host", "sophgo"]
    phones = [d for d in inv.devices if d.kind == "android"]
    assert {d.adb.is_tcp for d in phones} == {True, False}  # type: ignore[union-attr]
    assert len({d.node for d in phones}) == 2
    assert [s.slot_id for s in inv.slots() if s.kind in ("sophgo", "ascend")] == [
        "sophgo-box/chip0",
        "sophgo-box/chip1",
        "ascend-310p/npu0",
        "ascend-310p/npu1",
    ]


@pytest.mark.parametrize("path", JOBS, ids=[p.name for p in JOBS])
def test_job_validates_and_renders_on_the_example_lab(path: Path) -> None:
    job = load_job(path)
    slots = load_inventory(INVENTORY).slots()
    counts = count_runs(job, slots)
    assert counts, f"{path.name} matches no device of the example inventory"
    by_id = {s.slot_id: s for s in slots}
    # Render the first runs on every chosen slot: catches device fields that slot kind lacks.
    for run in itertools.islice(plan_runs(job, slots), 4 * len(counts)):
        slot = by_id[run.slot_id if run.slot_id is not None else run.candidates[0]]
        rendered = render(job, run, slot, str(path))
        assert rendered.argv and all("{" not in a for a in rendered.argv)
    if path.name in SEED_JOBS:
        assert path.read_text().startswith("#"), "each job starts with a comment saying what it measures"
        assert f"farm run jobs/{path.name} --inventory deploy/inventory.example.yaml" in path.read_text()


def test_sparsity_job_shape() -> None:
    job = load_job(REPO / "jobs" / "elastic-infer-sparsity.yaml")
    points = list(job.grid_spec.points())
    assert sorted({p["sparsity"] for p in points}) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert {(p["threads"], p["cores"]) for p in points} == {
        (8, "0,1,2,3,4,5,6,7"),
        (6, "2,3,4,5,6,7"),
        (4, "4,5,6,7"),
    }


def test_codl_ratio_axis_has_eleven_values() -> None:
    job = load_job(REPO / "jobs" / "codl-split-ratio.yaml")
    ratios = sorted({p["part_ratio"] for p in job.grid_spec.points()})
    assert ratios == [round(i / 10, 1) for i in range(11)]
