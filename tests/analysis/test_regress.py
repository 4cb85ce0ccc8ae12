"""farm regress: build choice, per-point verdicts by the metric's direction, exit codes and the metrics file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from farm.analysis.regress import builds_in_order, regress
from farm.cli.main import main
from farm.errors import ConfigError
from tests.analysis.jobs import job
from tests.results.rows import T0


def _runs(build: str, start_s: int, values: list[float], threads: int = 4, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"build": build, "p_threads": threads, "repeat": i, "decode_tokens_per_s": v,
         "started_at": T0 + timedelta(seconds=start_s + i), **extra}
        for i, v in enumerate(values)
    ]  # fmt: skip


BASE = [10.0, 10.1, 9.9, 10.05, 9.95, 10.02]
SLOWER = [v * 0.95 for v in BASE]


def test_newest_build_slower_is_a_regression_per_point(tmp_path: Path) -> None:
    data = job(tmp_path, "nightly", [
        *_runs("aaa", 0, BASE), *_runs("aaa", 10, BASE, threads=8),
        *_runs("bbb", 100, SLOWER), *_runs("bbb", 110, BASE, threads=8),
    ])  # fmt: skip
    assert builds_in_order(data) == ["aaa", "bbb"]
    result = regress(data, "aaa")
    assert (result.candidate, result.baseline, result.metric, result.higher_is_better) == (
        "bbb",
        ["aaa"],
        "decode_tokens_per_s",
        True,
    )
    by_point = {r.point: r for r in result.rows}
    assert by_point["threads=4"].verdict == "regression"
    assert by_point["threads=4"].worse_by == pytest.approx(0.05)
    assert by_point["threads=4"].p_value == pytest.approx(1 / 924)  # every new value below every old: 1/C(12,6)
    assert by_point["threads=8"].verdict == "~"
    assert len(result.regressions) == 1


def test_direction_and_effect_size(tmp_path: Path) -> None:
    # latency: higher is worse; a consistent but tiny (1 %) change is significant yet below the minimum effect
    tight = [10.0, 10.01, 9.99, 10.005, 9.995, 10.002]
    runs = [*_runs("a", 0, tight), *_runs("b", 100, [v * 1.01 for v in tight]), *_runs("c", 200, SLOWER[:5])]
    rows = [{("latency_ms" if k == "decode_tokens_per_s" else k): v for k, v in r.items()} for r in runs]
    data = job(tmp_path, "lat", rows)
    (small,) = regress(data, "a", candidate="b").rows
    assert small.verdict == "~" and small.p_value is not None and small.p_value < 0.01
    assert regress(data, "a", candidate="b", min_effect=0.005).rows[0].verdict == "regression"
    (faster,) = regress(data, "a").rows  # c: about 5 % lower latency
    assert faster.verdict == "improvement" and faster.worse_by == pytest.approx(-0.05, abs=0.002)


def test_rolling_baseline_pools_the_builds_before(tmp_path: Path) -> None:
    data = job(tmp_path, "roll", [
        *_runs("a", 0, [20.0] * 5), *_runs("b", 100, BASE[:3]), *_runs("c", 200, BASE[3:]), *_runs("d", 300, SLOWER),
    ])  # fmt: skip
    result = regress(data, "rolling:2")
    assert result.baseline == ["b", "c"] and result.rows[0].n_baseline == 6
    assert result.rows[0].verdict == "regression"
    assert regress(data, "rolling:1").rows[0].verdict == "too few"  # 3 baseline runs: no verdict


def test_bad_input_names_the_field(tmp_path: Path) -> None:
    data = job(tmp_path, "bad", [*_runs("a", 0, BASE), *_runs("b", 100, BASE)])
    for baseline, field in [("nope", "--baseline"), ("rolling:x", "--baseline"), ("b", "--baseline")]:
        with pytest.raises(ConfigError) as err:
            regress(data, baseline)
        assert field in str(err.value)
    with pytest.raises(ConfigError, match="first build"):
        regress(data, "rolling:3", candidate="a")
    with pytest.raises(ConfigError, match="no metric"):
        regress(data, "a", metric="nope_ms")


def test_cli_exit_codes_table_and_textfile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "res"
    job(root, "ci", [*_runs("aaa", 0, BASE), *_runs("bbb", 100, SLOWER)])
    textfiles = tmp_path / "textfile"
    code = main(["regress", "ci", "--baseline", "aaa", "--results", str(root), "--textfile-dir", str(textfiles)])
    out = capsys.readouterr().out
    assert code == 1 and "regression" in out and "-5.00%" not in out and "+5.00%" in out
    prom = (textfiles / "farm_regress_ci.prom").read_text()
    assert 'farm_regress_regressed_points{baseline="aaa",build="bbb",job="ci",metric="decode_tokens_per_s"} 1.0' in prom
    assert main(["regress", "ci", "--baseline", "aaa", "--candidate", "aaa", "--results", str(root)]) == 2
    assert main(["regress", "ci", "--baseline", "bbb", "--candidate", "aaa", "--results", str(root)]) == 0
    assert main(["regress", "nojob", "--baseline", "aaa", "--results", str(root)]) == 2
    err = capsys.readouterr().err
    assert "no results for job 'nojob'" in err and "--baseline" in err


def test_rows_without_a_build_are_refused(tmp_path: Path) -> None:
    data = job(tmp_path, "nobuild", [{"decode_tokens_per_s": 1.0}])
    with pytest.raises(ConfigError, match="build:"):
        regress(data, "rolling:1")


def test_a_point_the_new_build_ran_without_a_measurement_fails_the_check(tmp_path: Path) -> None:
    broken = [{**r, "status": "failed", "error": "exit code 1", "decode_tokens_per_s": None}
              for r in _runs("bbb", 100, BASE, threads=8)]  # fmt: skip
    data = job(tmp_path, "broken", [*_runs("aaa", 0, BASE), *_runs("aaa", 10, BASE, threads=8), *broken,
                                    *_runs("bbb", 120, BASE)])  # fmt: skip
    result = regress(data, "aaa")
    assert {r.point: r.verdict for r in result.rows} == {"threads=4": "~", "threads=8": "failed"}
    assert [r.point for r in result.regressions] == ["threads=8"]
