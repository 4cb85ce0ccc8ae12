"""Value types: durations, core lists, and the names that reach a command line."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from farm.specs.types import HostName, UserName, parse_core_list, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("250ms", 0.25), ("30s", 30.0), ("1.5h", 5400.0), (7, 7.0)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "must be a finite number"),
        (float("inf"), "at most 30 days"),
        ("31d", "expected a duration"),
        ("721h", "at most 30 days"),
        (True, "expected a duration"),
        (0, "must be positive"),
    ],
)
def test_bad_durations(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration(value)


def test_core_lists() -> None:
    assert parse_core_list("0-3, 6") == (0, 1, 2, 3, 6)
    assert parse_core_list([5, 4, 5]) == (4, 5)
    for bad in ("big", "4-2", "0-99999999999", "1024", "-1", "", [True], [-1]):
        with pytest.raises(ValueError, match="bad core list"):
            parse_core_list(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["10.0.0.31", "::1", "fe80::1%eth0", "box-1.lab.example", "sophgo_box", "h"])
def test_host_names(host: str) -> None:
    assert TypeAdapter(HostName).validate_python(host) == host


@pytest.mark.parametrize("host", ["127.0.0.1; touch x", "-oProxyCommand=x", "a b", "$(reboot)", "-box", "a..b", ""])
def test_hostile_host_names(host: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(HostName).validate_python(host)


@pytest.mark.parametrize("user", ["root", "linaro", "HwHiAiUser", "first.last@corp", "svc_farm-1"])
def test_user_names(user: str) -> None:
    assert TypeAdapter(UserName).validate_python(user) == user


@pytest.mark.parametrize("user", ["-oProxyCommand=touch x", "a b", "root;id", ".hidden", "", "x" * 65])
def test_hostile_user_names(user: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(UserName).validate_python(user)
