"""Job spec extensions: env values that prepend to the device's variable, arguments tied to an optional axis."""

from __future__ import annotations

from typing import Any

import pytest

from farm.envvars import EnvPrepend
from farm.errors import ConfigError
from farm.plan import plan_runs, render
from farm.specs.job import JobSpec, job_from_dict
from tests.test_plan import SLOTS


def job(**overrides: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": "elastic",
        "workload": "llama_cpp",
        "command": ["./mymain-t-aarch64", "-t", "{threads}"],
        "grid": {"threads": [4, 8]},
        "devices": {"kind": "android", "ids": ["phone-a"]},
        "env": {"LD_LIBRARY_PATH": {"prepend": "/data/local/tmp/{job}"}, "LLAMA_LOADING_THREAD_CPU_CORE_ID": 0},
        "axis_args": {"num_cross_layers": ["--num-cross-layers", "{num_cross_layers}"]},
    }
    data.update(overrides)
    return job_from_dict(data)


def first_rendered(spec: JobSpec) -> tuple[list[str], dict[str, str]]:
    run = next(iter(plan_runs(spec, SLOTS)))
    slot = next(s for s in SLOTS if s.slot_id == run.slot_id)
    rendered = render(spec, run, slot)
    return rendered.argv, rendered.env


def test_prepend_renders_as_an_env_prepend_with_its_template_filled() -> None:
    argv, env = first_rendered(job())
    value = env["LD_LIBRARY_PATH"]
    assert isinstance(value, EnvPrepend) and value == "/data/local/tmp/elastic" and value.sep == ":"
    assert env["LLAMA_LOADING_THREAD_CPU_CORE_ID"] == "0" and not isinstance(
        env["LLAMA_LOADING_THREAD_CPU_CORE_ID"], EnvPrepend
    )
    # the axis is not in the grid: its arguments are left out, unchecked
    assert argv == ["./mymain-t-aarch64", "-t", "4"]


def test_axis_args_appear_once_the_grid_has_the_axis() -> None:
    spec = job(grid={"threads": [4], "num_cross_layers": [2, 8]})
    argv, _ = first_rendered(spec)
    assert argv == ["./mymain-t-aarch64", "-t", "4", "--num-cross-layers", "2"]


@pytest.mark.parametrize(
    ("overrides", "path", "reason"),
    [
        ({"env": {"P": {"prepend": "/x", "sep": "$"}}}, "env.P.sep", "':'"),
        ({"env": {"P": {"prepend": ""}}}, "env.P.prepend", "at least 1"),
        ({"env": {"P": {"prepend": "/x", "append": "/y"}}}, "env.P.append", "unknown key"),
        ({"env": {"P": {"prepend": "/{nope}"}}}, "env.P", "'{nope}' is not a grid axis"),
        ({"axis_args": {"bad-name": ["--x"]}}, "axis_args", "not an axis name"),
        ({"axis_args": {"threads": []}}, "axis_args", "at least one argument"),
        ({"axis_args": {"threads": ["--n", "{nope}"]}}, "axis_args.threads[1]", "'{nope}' is not a grid axis"),
    ],
)
def test_bad_values_name_their_field(overrides: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        job(**overrides)
    assert any(p.startswith(path) and reason in r for p, r in info.value.issues), info.value.issues
