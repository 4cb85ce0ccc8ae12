"""Every Farm error pickles to an equal copy and crosses a real Ray task intact (the CLI then maps it to exit 2)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest

from farm import errors
from farm.grid import GridError
from farm.specs.loading import FieldIssues

ISSUES = [("grid.threads[2]", "expected a number"), ("", "the file is empty")]


def _subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _sample(cls: type[BaseException]) -> BaseException:
    if issubclass(cls, errors.ConfigError):
        return cls("job.yaml", ISSUES)
    return cls("device pixel-1 went away")


# The whole tree, found rather than listed, so a class added later is covered too.
TREE = [errors.FarmError, *_subclasses(errors.FarmError)]


def _same(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert str(a) == str(b)
    assert a.args == b.args
    assert vars(a) == vars(b)


def test_the_tree_is_found() -> None:
    assert {errors.ConfigError, errors.DeviceOfflineError, errors.ControllerError, errors.RunRefused} <= set(TREE)


def test_the_docstring_draws_every_class_of_the_tree() -> None:
    drawn = errors.__doc__ or ""
    assert [
        cls.__name__ for cls in TREE if f" {cls.__name__} " not in drawn and f" {cls.__name__}\n" not in drawn
    ] == []


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_farm_error_round_trips_through_pickle(cls: type[BaseException]) -> None:
    exc = _sample(cls)
    _same(pickle.loads(pickle.dumps(exc)), exc)


def test_config_error_keeps_source_and_issues() -> None:
    copy = pickle.loads(pickle.dumps(errors.ConfigError("job.yaml", ISSUES)))
    assert copy.source == "job.yaml"
    assert copy.issues == ISSUES
    assert copy.lines() == ["job.yaml: grid.threads[2]: expected a number", "job.yaml: the file is empty"]


@pytest.mark.parametrize(
    "exc",
    [GridError("a[1]", "duplicate value 1", [("b", "empty axis")]), FieldIssues(ISSUES)],
    ids=["GridError", "FieldIssues"],
)
def test_validation_errors_round_trip_too(exc: BaseException) -> None:
    _same(pickle.loads(pickle.dumps(exc)), exc)
