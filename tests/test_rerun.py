"""Re-creating a run from its row alone: the one-run job renders to the same command, env and workdir; artifacts
are found by hash; redacted secrets come from the caller's environment; old rows are refused clearly."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from actors.messages import ArtifactRef, RunRequest, RunResult
from farm import rerun
from farm.errors import ConfigError
from farm.plan import RunSpec, plan_runs, render
from farm.rows import REDACTED, build_row, job_settings
from farm.specs.inventory import Slot
from farm.specs.job import job_from_dict

SLOT = Slot(slot_id="box/chip1", device_id="box", kind="sophgo", node=None, labels={}, index=1)


def _recorded(tmp_path: Path, env_extra: dict[str, str] | None = None) -> tuple[dict[str, Any], Path]:
    """The row of the second repeat of one grid point of a templated job, as the controller would build it."""
    src = tmp_path / "model.bmodel"
    src.write_bytes(b"weights" * 100)
    spec = job_from_dict(
        {
            "name": "qwen",
            "workload": "regex",
            "workload_options": {"patterns": {"answer_s": r"took (\d+)"}},
            "devices": {"kind": "sophgo"},
            "artifacts": [{"src": str(src), "dst": "~/m/{variant}/", "mode": "0644"}],
            "workdir": "~/run/{device.chip}",
            "env": {"VARIANT": "{variant}", "LITERAL": "{{not a template}}"},
            "command": ["python3", "pipeline.py", "--devid", "{device.chip}", "--model", "{variant}", "{{x}}"],
            "grid": {"variant": ["share", "unshare"], "n": [1, 2]},
            "repeat": 2,
            "timeout": "90s",
            "cooldown": {"max_temp_c": 60},
        },
        "job.yaml",
    )
    run = next(r for r in plan_runs(spec, [SLOT]) if r.repeat == 1 and r.params == {"variant": "unshare", "n": 2})
    rendered = render(spec, run, SLOT)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    art = ArtifactRef("model.bmodel", sha, src.stat().st_size, rendered.artifacts[0][1], 0o644, str(src))
    req = RunRequest("qwen", run.run_id, 1, SLOT.slot_id, rendered.argv, rendered.env, rendered.workdir, 90.0, [art])
    env = {"BM_DEV": "1", **rendered.env, **(env_extra or {})}  # the device adds its own variables
    res = RunResult(exit_code=0, started_at=1.0, argv=rendered.argv, env=env)
    row = build_row(
        job="qwen", req=req, params=run.params, repeat=run.repeat, warmup=False, device_kind="sophgo", res=res,
        status="ok", error=None, metrics={"answer_s": 3.0}, log_path="/l", synthetic=True,
        settings=job_settings(spec),
    )  # fmt: skip
    return row, src


def test_the_one_run_job_renders_exactly_what_the_row_recorded(tmp_path: Path) -> None:
    row, src = _recorded(tmp_path)
    run = rerun.from_row(row)
    assert (run.slot_id, run.repeat, run.params) == ("box/chip1", 1, {"variant": "unshare", "n": 2})
    paths = rerun.find_artifacts(run)
    assert paths == [src]
    spec = job_from_dict(rerun.job_data(run, paths, {}), "rerun")
    assert spec.name == "qwen" and spec.timeout == 90.0 and spec.cooldown is not None and spec.record_warmup
    again = render(spec, RunSpec(run.run_id, SLOT.slot_id, run.params, run.repeat), SLOT)
    assert again.argv == ["python3", "pipeline.py", "--devid", "1", "--model", "unshare", "{x}"] == run.command
    assert again.env == {"BM_DEV": "1", "VARIANT": "unshare", "LITERAL": "{not a template}"}
    assert again.workdir == "~/run/1" and again.artifacts == [(str(src), "~/m/unshare/model.bmodel", 0o644)]
    (ref,) = rerun.artifact_refs(run, paths)
    assert (ref.name, ref.sha256, ref.dst) == ("model.bmodel", run.artifacts[0]["sha256"], "~/m/unshare/model.bmodel")
    assert rerun.single(run) == {
        "run_id": row["run_id"], "slot_id": "box/chip1", "params": {"variant": "unshare", "n": 2}, "repeat": 1,
        "warmup": False,
    }  # fmt: skip


def test_print_shows_the_command_line_as_the_device_ran_it(tmp_path: Path) -> None:
    row, _ = _recorded(tmp_path, {"HF_TOKEN": "hf_secret"})
    run = rerun.from_row(row)
    assert "hf_secret" not in row["env"]
    line = rerun.command_line(run)
    assert line == (
        "cd ~/run/1 && env BM_DEV=1 HF_TOKEN=\"$HF_TOKEN\" LITERAL='{not a template}' VARIANT=unshare "
        "python3 pipeline.py --devid 1 --model unshare '{x}'"
    )
    text = "\n".join(rerun.describe(run))
    assert "run " + row["run_id"] in text and "device box/chip1 (sophgo)" in text and "sha256:" in text


def test_a_redacted_secret_comes_from_the_callers_environment(tmp_path: Path) -> None:
    row, src = _recorded(tmp_path, {"HF_TOKEN": "hf_secret"})
    run = rerun.from_row(row)
    assert run.env["HF_TOKEN"] == REDACTED and run.redacted == ["HF_TOKEN"]
    with pytest.raises(ConfigError, match="HF_TOKEN was recorded redacted"):
        rerun.job_data(run, [src], {})
    assert rerun.job_data(run, [src], {"HF_TOKEN": "hf_other"})["env"]["HF_TOKEN"] == "hf_other"


def test_artifacts_are_found_by_hash_in_the_cache_and_changed_bytes_refused(tmp_path: Path) -> None:
    row, src = _recorded(tmp_path)
    run = rerun.from_row(row)
    cache = tmp_path / "cache"
    cache.mkdir()
    original = src.read_bytes()
    src.write_bytes(b"retrained" * 10)  # the job's file changed since: never rerun with other bytes
    with pytest.raises(ConfigError, match=r"no file with the recorded bytes of model\.bmodel"):
        rerun.find_artifacts(run, cache)
    (cache / run.artifacts[0]["sha256"]).write_bytes(original)
    assert rerun.find_artifacts(run, cache) == [cache / run.artifacts[0]["sha256"]]


def test_rows_without_the_run_columns_are_refused_clearly(tmp_path: Path) -> None:
    row, _ = _recorded(tmp_path)
    for column in ("argv", "env", "artifacts", "settings"):
        del row[column]
    with pytest.raises(ConfigError, match="recorded before rows carried what ran"):
        rerun.from_row(row)


def test_a_run_that_never_reached_its_device_is_refused(tmp_path: Path) -> None:
    row, _ = _recorded(tmp_path)
    row.update(status="cancelled", artifacts="[]")  # cancelled while queued: nothing was placed
    with pytest.raises(ConfigError, match=r"\(cancelled\) never reached its device"):
        rerun.from_row(row)
