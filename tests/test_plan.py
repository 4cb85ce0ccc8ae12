"""Planning: run ids, run orders, warm-ups, placement, and rendering of commands for a slot."""

from __future__ import annotations

import itertools
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from farm.errors import ConfigError
from farm.plan import ANY_SLOT, RunSpec, check_job_on, count_runs, plan_runs, render, run_id
from farm.specs.inventory import Inventory, Slot
from farm.specs.job import JobSpec, job_from_dict, load_job

INVENTORY = Inventory.model_validate(
    {
        "devices": [
            {"kind": "android", "id": "phone-a", "adb": {"serial": "A1"}, "labels": {"soc": "sd888"}},
            {"kind": "android", "id": "phone-b", "adb": {"serial": "10.0.0.5:5555"}},
            {"kind": "sophgo", "id": "tpu", "ssh": {"host": "h", "user": "u"}, "chips": [0, 3]},
            {"kind": "ascend", "id": "npu-box", "ssh": {"host": "h", "user": "u"}, "npus": [1, 2]},
            {"kind": "host", "id": "ws"},
        ]
    }
)
SLOTS = INVENTORY.slots()


def job(**overrides: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": "sweep",
        "workload": "json",
        "command": ["bench", "-t", "{threads}", "-b", "{batch}"],
        "grid": {"threads": [1, 2, 4], "batch": [1, 8]},
        "devices": {"kind": "android"},
    }
    data.update(overrides)
    return job_from_dict(data)


def on_slot(runs: list[RunSpec], slot: str) -> list[RunSpec]:
    return [r for r in runs if r.slot_id == slot]


def measured_points(runs: list[RunSpec]) -> list[tuple[int, tuple[tuple[str, Any], ...]]]:
    return [(r.repeat, tuple(r.params.items())) for r in runs if not r.warmup]


def test_run_id_recipe_is_pinned() -> None:
    # Changing this hash recipe makes every resubmitted job re-run its done runs: do it on purpose only.
    assert run_id("elastic", "pixel7", {"threads": 4, "sparsity": 0.5}, 0) == "b39ebeb74ee8d7dc2bd4"


def test_run_id_changes_with_each_part() -> None:
    base = run_id("job", "dev", {"t": 4}, 0)
    others = [
        run_id("job2", "dev", {"t": 4}, 0),
        run_id("job", "dev2", {"t": 4}, 0),
        run_id("job", "dev", {"t": 8}, 0),
        run_id("job", "dev", {"t": 4.0}, 0),
        run_id("job", "dev", {"t": "4"}, 0),
        run_id("job", "dev", {"t": 4}, 1),
        run_id("job", "dev", {"t": 4}, 0, warmup=True),
    ]
    assert len({base, *others}) == len(others) + 1
    assert run_id("job", "dev", {"a": 1, "b": 2}, 0) == run_id("job", "dev", {"b": 2, "a": 1}, 0)


def test_run_ids_do_not_depend_on_yaml_key_order(tmp_path: Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text(
        "name: sweep\nworkload: json\ncommand: [bench, '{threads}', '{batch}']\n"
        "grid:\n  threads: [1, 2]\n  batch: [1, 8]\n  zip: [{a: 1, b: 2}, {a: 3, b: 4}]\nrepeat: 2\n"
    )
    two = tmp_path / "two.yaml"
    two.write_text(
        "repeat: 2\ngrid:\n  zip: [{b: 2, a: 1}, {b: 4, a: 3}]\n  batch: [1, 8]\n  threads: [1, 2]\n"
        "command: [bench, '{threads}', '{batch}']\nworkload: json\nname: sweep\n"
    )
    ids = [sorted(r.run_id for r in plan_runs(load_job(p), SLOTS)) for p in (one, two)]
    assert ids[0] == ids[1]
    assert len(ids[0]) == len(set(ids[0])) == 8 * 2 * len(SLOTS)  # points × repeats × slots (placement each)


def test_run_ids_unique_across_a_plan_with_warmups() -> None:
    runs = list(plan_runs(job(repeat=3, warmup=2), SLOTS))
    assert len({r.run_id for r in runs}) == len(runs) == 6 * 5 * 2  # points × (3 + 2) × phones


def test_grid_order_runs_each_point_back_to_back_warmups_first() -> None:
    runs = on_slot(list(plan_runs(job(order="grid", repeat=2, warmup=1), SLOTS)), "phone-a")
    assert [(r.params["threads"], r.params["batch"], r.repeat, r.warmup) for r in runs[:6]] == [
        (1, 1, 0, True),
        (1, 1, 0, False),
        (1, 1, 1, False),
        (1, 8, 0, True),
        (1, 8, 0, False),
        (1, 8, 1, False),
    ]


def test_interleave_visits_every_point_once_per_round() -> None:
    runs = on_slot(list(plan_runs(job(order="interleave", repeat=3), SLOTS)), "phone-a")
    measured = measured_points(runs)
    assert [rep for rep, _ in measured] == [0] * 6 + [1] * 6 + [2] * 6
    rounds = [[p for rep, p in measured if rep == r] for r in range(3)]
    assert rounds[0] == rounds[1] == rounds[2]
    assert len(set(rounds[0])) == 6


def test_warmups_come_right_before_the_first_measured_repeat_of_their_point() -> None:
    runs = on_slot(list(plan_runs(job(order="interleave", repeat=2, warmup=2), SLOTS)), "phone-b")
    assert sum(r.warmup for r in runs) == 6 * 2
    for i, r in enumerate(runs):
        if r.warmup:
            nxt = next(x for x in runs[i + 1 :] if not x.warmup)
            assert (nxt.params, nxt.repeat) == (r.params, 0)
    # No warm-up in later rounds.
    first_round_end = max(i for i, r in enumerate(runs) if r.repeat == 0 and not r.warmup)
    assert not any(r.warmup for r in runs[first_round_end:])


def shuffled(seed: int, repeat: int = 2) -> list[RunSpec]:
    big = {"threads": [1, 2, 4, 6, 8], "batch": [1, 2, 4, 8, 16, 32, 64]}
    return on_slot(list(plan_runs(job(order="shuffle", seed=seed, repeat=repeat, grid=big), SLOTS)), "phone-a")


def test_shuffle_is_deterministic_per_seed_and_a_permutation_per_round() -> None:
    first, again, other = shuffled(1), shuffled(1), shuffled(2)
    assert [r.run_id for r in first] == [r.run_id for r in again]
    assert [r.run_id for r in first] != [r.run_id for r in other]
    grid_order = measured_points(
        on_slot(
            list(
                plan_runs(
                    job(order="grid", grid={"threads": [1, 2, 4, 6, 8], "batch": [1, 2, 4, 8, 16, 32, 64]}),
                    SLOTS,
                )
            ),
            "phone-a",
        )
    )
    for runs in (first, other):
        measured = measured_points(runs)
        rounds = [[p for rep, p in measured if rep == r] for r in range(2)]
        for points in rounds:
            assert Counter(points) == Counter(p for _, p in grid_order)  # every point exactly once
            assert points != [p for _, p in grid_order]
        assert rounds[0] != rounds[1]  # each round gets its own permutation


def test_shuffle_respects_exclude_and_include() -> None:
    grid = {"a": [1, 2, 3, 4], "include": [{"a": 10}], "exclude": [{"a": 2}]}
    runs = list(plan_runs(job(order="shuffle", grid=grid, command=["x", "{a}"], seed=5), SLOTS))
    assert sorted(r.params["a"] for r in on_slot(runs, "phone-a")) == [1, 3, 4, 10]


def test_placement_each_plans_every_point_on_every_matching_slot() -> None:
    j = job(devices={"kind": "android", "placement": "each"}, repeat=2)
    runs = list(plan_runs(j, SLOTS))
    assert Counter(r.slot_id for r in runs) == {"phone-a": 12, "phone-b": 12}
    assert count_runs(j, SLOTS) == {"phone-a": 12, "phone-b": 12}
    # Both phones see the same sequence at the same position.
    a, b = on_slot(runs, "phone-a"), on_slot(runs, "phone-b")
    assert [(r.params, r.repeat, r.seq) for r in a] == [(r.params, r.repeat, r.seq) for r in b]


def test_placement_any_plans_each_run_once_with_candidates() -> None:
    j = job(devices={"kind": "android", "placement": "any"}, repeat=2, warmup=1)
    runs = list(plan_runs(j, SLOTS))
    assert len(runs) == 6 * 3
    assert all(r.slot_id is None and r.candidates == ("phone-a", "phone-b") for r in runs)
    assert [r.seq for r in runs] == list(range(len(runs)))
    assert count_runs(j, SLOTS) == {ANY_SLOT: 18}


def test_selector_labels_ids_and_limit() -> None:
    assert count_runs(job(devices={"labels": {"soc": "sd888"}}), SLOTS) == {"phone-a": 6}
    assert count_runs(job(devices={"ids": ["tpu/chip3", "ws"]}), SLOTS) == {"tpu/chip3": 6, "ws": 6}
    assert list(count_runs(job(devices={"kind": None, "limit": 3}), SLOTS)) == [
        "phone-a",
        "phone-b",
        "tpu/chip0",
    ]
    assert count_runs(job(devices={"kind": "sophgo", "labels": {"x": "y"}}), SLOTS) == {}
    assert list(plan_runs(job(devices={"kind": "sophgo", "labels": {"x": "y"}}), SLOTS)) == []


def test_render_fills_chip_and_npu_indexes_of_multi_slot_devices() -> None:
    tpu = job(
        command=["python3", "pipeline.py", "--devid", "{device.chip}", "--slot", "{device.slot}"],
        env={"DEV": "{device.id}", "N": "{threads}"},
        devices={"kind": "sophgo"},
        grid={"threads": [2]},
    )
    got = {r.slot_id: render(tpu, r, slot(r.slot_id)) for r in plan_runs(tpu, SLOTS)}
    assert got["tpu/chip0"].argv == ["python3", "pipeline.py", "--devid", "0", "--slot", "tpu/chip0"]
    assert got["tpu/chip3"].argv == ["python3", "pipeline.py", "--devid", "3", "--slot", "tpu/chip3"]
    assert got["tpu/chip3"].env == {"DEV": "tpu", "N": "2"}

    npu = job(
        command=["demo"],
        env={"ASCEND_RT_VISIBLE_DEVICES": "{device.npu}"},
        devices={"kind": "ascend"},
        grid=None,
    )
    envs = [render(npu, r, slot(r.slot_id)).env for r in plan_runs(npu, SLOTS)]
    assert envs == [{"ASCEND_RT_VISIBLE_DEVICES": "1"}, {"ASCEND_RT_VISIBLE_DEVICES": "2"}]


def test_render_device_fields_labels_and_run_fields() -> None:
    j = job(
        command=["b", "{device.kind}", "{device.label.soc}", "{job}", "{repeat}", "{run_id}", "{threads}"],
        grid={"threads": [0.5]},
        workdir="/data/local/tmp/{job}",
        artifacts=[{"src": "bin/bench", "dst": "/data/local/tmp/{device.id}/", "mode": "0755"}],
    )
    run = next(r for r in plan_runs(j, SLOTS) if r.slot_id == "phone-a")
    out = render(j, run, slot("phone-a"))
    assert out.argv == ["b", "android", "sd888", "sweep", "0", run.run_id, "0.5"]
    assert out.workdir == "/data/local/tmp/sweep"
    assert out.artifacts == [(str(j.base_dir / "bin" / "bench"), "/data/local/tmp/phone-a/bench", 0o755)]


def test_render_chip_on_a_phone_is_a_config_error() -> None:
    j = job(command=["x", "{device.chip}"], grid=None, devices={"ids": ["phone-a", "tpu"]})
    run = next(iter(plan_runs(j, SLOTS)))
    with pytest.raises(ConfigError) as info:
        render(j, run, slot("phone-a"), "job.yaml")
    assert info.value.lines() == ["job.yaml: command[1]: '{device.chip}' has no value for this run on device phone-a"]


def test_a_template_field_of_another_kind_is_refused_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        job(command=["x", "{device.chip}"], grid=None, devices={"kind": "android"})
    assert info.value.issues == [("command[1]", "'{device.chip}' exists only on sophgo devices, not android")]


def test_check_job_on_refuses_what_no_selected_slot_can_run() -> None:
    with pytest.raises(ConfigError) as info:
        check_job_on(job(devices={"kind": "sophgo", "labels": {"x": "y"}}), SLOTS, "job.yaml")
    assert info.value.lines() == ["job.yaml: devices: matches no device of the inventory"]
    j = job(command=["x", "{device.label.soc}", "{device.chip}"], devices={"ids": ["phone-a", "phone-b", "tpu"]})
    with pytest.raises(ConfigError) as info:
        check_job_on(j, SLOTS, "job.yaml")
    assert info.value.lines() == [
        "job.yaml: command[2]: '{device.chip}' has no value for this run on device phone-a",
        "job.yaml: command[1]: '{device.label.soc}' has no value for this run on device phone-b",
        "job.yaml: command[1]: '{device.label.soc}' has no value for this run on device tpu/chip0",
        "job.yaml: command[1]: '{device.label.soc}' has no value for this run on device tpu/chip3",
    ]
    check_job_on(job(command=["x", "{device.chip}"], devices={"kind": "sophgo"}), SLOTS, "job.yaml")


@pytest.mark.parametrize("order", ["grid", "interleave", "shuffle"])
def test_a_million_points_plan_as_a_stream(order: str) -> None:
    tracemalloc.start()
    try:
        start = time.perf_counter()
        j = job(grid={"threads": {"start": 1, "stop": 1000}, "batch": {"start": 1, "stop": 1000}}, order=order)
        assert count_runs(j, SLOTS) == {"phone-a": 1_000_000, "phone-b": 1_000_000}
        first = list(itertools.islice(plan_runs(j, SLOTS), 1000))
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(first) == 1000 and len({r.run_id for r in first}) == 1000
    assert elapsed < 2.0 and peak < 4 << 20


def slot(slot_id: str | None) -> Slot:
    return next(s for s in SLOTS if s.slot_id == slot_id)
