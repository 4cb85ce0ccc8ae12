"""A Farm error raised in a Ray task or actor reaches the caller intact, and the CLI reports it as bad input."""

from __future__ import annotations

import pytest
import ray

from farm import errors
from farm.cli import main as cli
from tests.test_errors import TREE, _same, _sample

pytestmark = pytest.mark.ray


@ray.remote
def _raise(exc: BaseException) -> None:
    raise exc


def test_every_farm_error_crosses_a_ray_task_intact(local_ray: None) -> None:
    for cls in TREE:
        sent = _sample(cls)
        with pytest.raises(Exception) as info:  # Ray wraps it; the cause is what matters
            ray.get(_raise.remote(sent))
        got = cli.farm_error(info.value)
        assert got is not None, f"{cls.__name__} came back as {type(info.value).__name__}: {info.value}"
        _same(got, sent)


def test_cli_turns_a_config_error_from_ray_into_exit_2(
    local_ray: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def command(args: object) -> int:
        ray.get(_raise.remote(errors.ConfigError("job.yaml", [("devices", "matches no device of the farm")])))
        return 0

    monkeypatch.setattr("farm.cli.plan_cmd.run", command)
    assert cli.main(["plan", "job.yaml"]) == 2
    _, err = capsys.readouterr()
    assert err.splitlines() == ["job.yaml: devices: matches no device of the farm"]
    assert "Traceback" not in err and "RayTaskError" not in err
