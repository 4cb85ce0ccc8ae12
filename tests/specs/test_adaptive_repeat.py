"""``repeat: {min, max, ci, ...}``: validation with file and field paths, the plan, ``farm plan``'s range."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm.cli.main import main
from farm.errors import ConfigError
from farm.plan import adaptive_repeats, count_runs, plan_runs, run_id
from farm.specs.inventory import Slot
from farm.specs.job import job_from_dict

BASE: dict[str, Any] = {
    "name": "j",
    "workload": "regex",
    "workload_options": {"patterns": {"tok_s": r"tok/s=(\S+)"}},
    "command": ["bench", "{t}"],
    "grid": {"t": [1, 2]},
}
SLOT = Slot(slot_id="ws", device_id="ws", kind="host", node=None, labels={})


def issues(repeat: Any, **fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as err:
        job_from_dict({**BASE, **fields, "repeat": repeat}, "job.yaml")
    assert err.value.source == "job.yaml"
    return err.value.issues


def test_adaptive_repeat_parses_with_defaults_and_a_percent_string() -> None:
    job = job_from_dict({**BASE, "repeat": {"min": 3, "max": 20, "ci": "2.5%"}, "seed": 9}, "job.yaml")
    assert job.adaptive is not None and job.adaptive.ci == 2.5 and job.adaptive.confidence == 0.95
    assert (job.repeat_min, job.repeat_max, job.headline) == (3, 20, "tok_s")
    adaptive = adaptive_repeats(job)
    assert adaptive is not None and adaptive.rule.seed == 9 and adaptive.rule.method == "t"
    assert job_from_dict({**BASE, "repeat": 4}, "j.yaml").adaptive is None  # plain repeat: N keeps working


@pytest.mark.parametrize(
    ("repeat", "path", "reason"),
    [
        ({"min": 1, "max": 5, "ci": 5}, "repeat.min", "greater than or equal to 2"),
        ({"min": 5, "max": 3, "ci": 5}, "repeat", "max (3) is less than min (5)"),
        ({"min": 3, "max": 5, "ci": "five%"}, "repeat.ci", "expected a percentage"),
        ({"min": 3, "max": 5, "ci": 0}, "repeat.ci", "greater than 0"),
        ({"min": 3, "max": 5}, "repeat.ci", "required key is missing"),
        ({"min": 3, "max": 5, "ci": 5, "method": "jackknife"}, "repeat.method", "'t' or 'bootstrap'"),
        ({"min": 3, "max": 5, "ci": 5, "confidence": 1.5}, "repeat.confidence", "less than 1"),
        ({"min": 3, "max": 5, "ci": 5, "metric": "latency"}, "repeat.metric", "not a metric of this job"),
        ({"min": 3, "max": 5, "ci": 5, "typo": 1}, "repeat.typo", "unknown key"),
        (0, "repeat", "greater than or equal to 1"),
    ],
)
def test_bad_adaptive_repeat_names_the_field(repeat: Any, path: str, reason: str) -> None:
    found = issues(repeat)
    assert any(p == path and reason in r for p, r in found), found


def test_a_workload_without_headline_needs_a_metric() -> None:
    found = issues({"min": 3, "max": 5, "ci": 5}, workload_options={})
    assert ("repeat.metric" in dict(found)) or any(p == "workload_options" for p, _ in found), found


def test_the_plan_holds_min_repeats_with_fixed_repeat_run_ids() -> None:
    job = job_from_dict({**BASE, "repeat": {"min": 3, "max": 9, "ci": 5}}, "job.yaml")
    runs = list(plan_runs(job, [SLOT]))
    assert len(runs) == 2 * 3 and count_runs(job, [SLOT]) == {"ws": 6}
    assert count_runs(job, [SLOT], most=True) == {"ws": 18}
    fixed = job_from_dict({**BASE, "repeat": 3}, "job.yaml")
    assert [r.run_id for r in runs] == [r.run_id for r in plan_runs(fixed, [SLOT])]
    adaptive = adaptive_repeats(job)
    assert adaptive is not None
    assert adaptive.repeat_run(runs[0], 7).run_id == run_id("j", "ws", runs[0].params, 7)


def test_farm_plan_and_validate_show_the_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: j\nworkload: regex\nworkload_options: {patterns: {tok_s: 'tok/s=(\\S+)'}}\n"
        "command: [bench, '{t}']\ngrid: {t: [1, 2]}\nrepeat: {min: 3, max: 10, ci: 5%}\n"
    )
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "repeat 3..10 (adaptive" in out and "→ 6..20 runs" in out
    assert main(["validate", str(path)]) == 0
    assert "= 6..20 runs" in capsys.readouterr().out
