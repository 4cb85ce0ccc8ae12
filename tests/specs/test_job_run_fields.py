"""The job fields around a run: ``inputs``, ``collect`` / ``collect_clear``, ``exec`` and artifact ``constants``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm.errors import ConfigError
from farm.plan import plan_runs, render
from farm.specs.inventory import Slot
from farm.specs.job import job_from_dict, load_job

BASE: dict[str, Any] = {"name": "j", "workload": "sophgo_llm_tpu", "command": ["python3", "pipeline.py"]}
SLOT = Slot(slot_id="box/chip1", device_id="box", kind="sophgo", node=None, labels={}, index=1)


def issues(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as err:
        job_from_dict({**BASE, **fields}, "job.yaml")
    return err.value.issues


def test_fields_render_per_run() -> None:
    job = job_from_dict(
        {
            **BASE,
            "workdir": "~/demo",
            "inputs": ["{model}", "/abs/{model}.sha"],
            "collect": ["out_{device.chip}_*.npz"],
            "collect_clear": True,
            "exec": {"docker": "cann-7.0"},
            "artifacts": [
                {"src": "d.py", "dst": "~/demo/d_{batch}.py", "constants": {"BATCH_SIZE": "{batch}", "N": 5}}
            ],
            "grid": {"model": ["a.bmodel"], "batch": [1, 5]},
        }
    )
    assert job.exec is not None and job.exec.docker == "cann-7.0" and job.artifacts[0].constants["N"] == "5"
    runs = list(plan_runs(job, [SLOT]))
    rendered = render(job, runs[1], SLOT)
    assert rendered.inputs == ["a.bmodel", "/abs/a.bmodel.sha"] and rendered.collect == ["out_1_*.npz"]
    assert rendered.constants == [{"BATCH_SIZE": "5", "N": "5"}] and rendered.artifacts[0][1] == "~/demo/d_5.py"


@pytest.mark.parametrize(
    ("fields", "path", "reason"),
    [
        ({"workdir": "/w", "collect": ["/tmp/*.npz"]}, "collect[0]", "relative to the workdir"),
        ({"workdir": "/w", "collect": ["../*.npz"]}, "collect[0]", "no '..'"),
        ({"workdir": "/w", "collect": ["**/*.npz"]}, "collect[0]", "'**' is not supported"),
        ({"collect": ["*.npz"]}, "collect", "needs a workdir"),
        ({"workdir": "/w", "collect_clear": True}, "collect_clear", "needs collect"),
        ({"inputs": ["{nope}"]}, "inputs[0]", "not a grid axis"),
        ({"exec": {"docker": "bad name; rm -rf /"}}, "exec.docker", "pattern"),
        ({"exec": {"podman": "x"}}, "exec.podman", "unknown key"),
        ({"artifacts": [{"src": "a", "dst": "/b", "constants": {"1X": "1"}}]}, "artifacts[0].constants", "identifier"),
        (
            {"artifacts": [{"src": "a", "dst": "/b", "constants": {"X": "{nope}"}}]},
            "artifacts[0].constants.X",
            "grid axis",
        ),
    ],
)
def test_bad_fields_name_their_path(fields: dict[str, Any], path: str, reason: str) -> None:
    found = issues(**fields)
    assert any(p.startswith(path) and reason in r for p, r in found), found


def test_constants_missing_from_the_script_are_caught_before_submitting(tmp_path: Path) -> None:
    (tmp_path / "demo.py").write_text("DEVICE_ID = 0\nBATCH_SIZE = 5\n")
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: j\nworkload: ascend_llama_adapter\ncommand: [python3, demo.py]\n"
        "artifacts: [{src: demo.py, dst: /w/demo.py, constants: {BATCH_SIZE: '1', INFER_LOOP: '25'}}]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_job(job, check_artifacts=True)
    assert err.value.issues[0][0] == "artifacts[0].constants" and "INFER_LOOP is not assigned" in str(err.value)


def test_build_label() -> None:
    assert job_from_dict({**BASE, "build": "v1.2-3f9c"}, "job.yaml").build == "v1.2-3f9c"
    assert job_from_dict(BASE, "job.yaml").build is None  # the binary's sha256 then (farm.rows.build_identity)
    for bad in ("", "a\nb", "x" * 201, ["v1"]):
        assert [path for path, _ in issues(build=bad)] == ["build"], bad
