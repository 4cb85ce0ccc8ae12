"""Every job under jobs/ and the example inventory validate, and each job plans runs on the example lab."""

from __future__ import annotations

import itertools
import shlex
from pathlib import Path

import pytest
import yaml

from farm.plan import count_runs, plan_runs, render
from farm.specs.inventory import load_inventory
from farm.specs.job import job_from_dict, load_job

REPO = Path(__file__).resolve().parents[2]
JOBS = sorted((REPO / "jobs").glob("*.yaml"))
INVENTORY = REPO / "deploy" / "inventory.example.yaml"


SEED_JOBS = {
    "elastic-infer-baseline.yaml",
    "elastic-infer-sparsity.yaml",
    "elastic-infer-bound.yaml",
    "codl-op-latency.yaml",
    "codl-split-ratio.yaml",
    "codl-data-sharing.yaml",
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


RECIPE = './mymain-{L}-aarch64 -ngl 999 -m ./Llama-2-7b-chat-hf-{L}-Q4_0.gguf -n 4 -p "Once upon a time" --temp -1.0 \
--attn-sp {S} --ffn-sp {S} -b 1 -t {T}'
CORES = {8: "0,1,2,3,4,5,6,7", 6: "2,3,4,5,6,7", 4: "4,5,6,7"}


def test_elastic_infer_jobs_are_the_recipe() -> None:
    jobs = {n: load_job(REPO / "jobs" / f"elastic-infer-{n}.yaml") for n in ("baseline", "sparsity", "bound")}
    for name, layout in (("baseline", "nt"), ("sparsity", "t"), ("bound", "t")):
        job = jobs[name]
        assert job.workdir == "/data/local/tmp/elastic-infer"
        slots = load_inventory(INVENTORY).slots()
        for run in plan_runs(job, slots):
            argv = render(job, run, next(s for s in slots if s.slot_id == run.slot_id)).argv
            sparsity = "0.00" if name == "baseline" else str(run.params["sparsity"])
            threads = run.params.get("threads", 8)
            assert argv == shlex.split(RECIPE.format(L=layout, S=sparsity, T=threads)), argv
        assert {Path(a.src).name for a in job.artifacts} == {
            "libc++_shared.so", "liburing.so.2.8", f"mymain-{layout}-aarch64", f"Llama-2-7b-chat-hf-{layout}-Q4_0.gguf"
        }  # fmt: skip
        ld = job.env["LD_LIBRARY_PATH"]
        assert getattr(ld, "prepend", None) == "/data/local/tmp/elastic-infer" and getattr(ld, "sep", None) == ":"
        assert job.env["LLAMA_LOADING_THREAD_CPU_CORE_ID"] == "0"
        assert "cores" not in job.grid_spec.names  # no taskset: the loading thread must reach core 0
        assert "num_cross_layers" not in job.grid_spec.names  # off until the binary has the flag
    base = jobs["baseline"].command
    assert base[base.index("--attn-sp") + 1] == base[base.index("--ffn-sp") + 1] == "0.00"
    assert "LLAMA_LOAD_SPARSE_TENSOR" not in jobs["baseline"].env  # step 2 runs before the exports of step 3
    for name in ("baseline", "sparsity"):
        points = list(jobs[name].grid_spec.points())
        assert {(p["threads"], p["compute_cores"]) for p in points} == set(CORES.items())
    assert sorted({p["sparsity"] for p in jobs["sparsity"].grid_spec.points()}) == [0.5, 0.7, 0.8]
    assert (
        jobs["sparsity"].env["LLAMA_LOAD_SPARSE_TENSOR"] == jobs["sparsity"].env["LLAMA_USE_OUT_DIM_INDEX_CACHE"] == "1"
    )
    bound = jobs["bound"]
    assert [(p["step"], p["load_sparse"], p["sparsity"]) for p in bound.grid_spec.points()] == [
        ("4-1", 0, 0.5),
        ("4-2", 1, 0.5),
    ]
    assert (
        bound.env["LLAMA_USE_OUT_DIM_INDEX_CACHE"] == "1" and bound.env["LLAMA_LOAD_SPARSE_TENSOR"] == "{load_sparse}"
    )


def test_num_cross_layers_turns_on_with_one_line() -> None:
    for name in ("elastic-infer-sparsity", "elastic-infer-bound"):
        text = (REPO / "jobs" / f"{name}.yaml").read_text()
        line = "  # num_cross_layers: [2, 4, 8]     # uncomment once mymain-t-aarch64 takes the flag\n"
        assert line in text
        on = text.replace(line, "  num_cross_layers: [2, 4, 8]\n")
        path = REPO / "jobs" / f"{name}.yaml"
        job = load_job(path)
        job_on = job_from_dict(yaml.safe_load(on), base_dir=path.parent)
        assert {p["num_cross_layers"] for p in job_on.grid_spec.points()} == {2, 4, 8}
        slots = load_inventory(INVENTORY).slots()
        run = next(iter(plan_runs(job_on, slots)))
        argv = render(job_on, run, next(s for s in slots if s.slot_id == run.slot_id)).argv
        assert argv[-2:] == ["--num-cross-layers", str(run.params["num_cross_layers"])]
        run_off = next(iter(plan_runs(job, slots)))
        assert (
            "--num-cross-layers"
            not in render(job, run_off, next(s for s in slots if s.slot_id == run_off.slot_id)).argv
        )


CODL_FLAGS = {"compute", "cpu_affinity_policy", "rounds", "gpu_memory_type", "num_threads", "part_dim", "part_ratio",
              "cu_hint", "op_type", "input_shape", "weight_shape", "strides"}  # fmt: skip


def test_codl_jobs_pass_only_flags_codl_op_run_takes_with_their_types() -> None:
    from farm.sim.codl_standin import CODL_FLAGS as TOOL_FLAGS
    from farm.sim.codl_standin import gflags_parse

    seen_flags: set[str] = set()
    seen_ops: set[str] = set()
    seen_mem: set[str] = set()
    slots = load_inventory(INVENTORY).slots()
    for path in sorted((REPO / "jobs").glob("codl-*.yaml")):
        job = load_job(path)
        if job.workload != "codl_op":
            continue
        for run in plan_runs(job, slots):
            argv = render(job, run, next(s for s in slots if s.slot_id == run.slot_id)).argv
            values = gflags_parse(argv[1:], TOOL_FLAGS)  # raises on an unknown flag or an ill-typed value
            seen_flags |= {a[2:].split("=")[0] for a in argv[1:]}
            seen_ops.add(values["op_type"])
            seen_mem.add(values["gpu_memory_type"])
    assert seen_flags >= CODL_FLAGS
    assert seen_ops >= {"Conv2D", "FullyConnected", "Pooling"} and seen_mem >= {"1", "2"}


def test_codl_ratio_axis_has_eleven_values() -> None:
    job = load_job(REPO / "jobs" / "codl-split-ratio.yaml")
    ratios = sorted({p["part_ratio"] for p in job.grid_spec.points()})
    assert ratios == [round(i / 10, 1) for i in range(11)]


def test_each_phone_job_names_its_analysis() -> None:
    for path in JOBS:
        if (yaml.safe_load(path.read_text()).get("devices") or {}).get("kind") == "android":
            lines = [ln for ln in path.read_text().splitlines() if ln.startswith("# analysis: farm ")]
            assert len(lines) == 1, f"{path.name}: one '# analysis: farm …' header line"
