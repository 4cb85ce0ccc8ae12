"""Templates: names found, literal braces, what may be referred to, and how values are written."""

from __future__ import annotations

import re

import pytest

from farm import templates


def test_names_and_literal_braces() -> None:
    assert list(templates.names("-t {threads} --cfg {{x}} {device.chip}")) == ["threads", "device.chip"]
    assert templates.render('{{"t": {threads}}}', {"threads": "4"}) == '{"t": 4}'


@pytest.mark.parametrize("bad", ["{threads", "threads}", "{a-b}", "{}", "{0}", "{a.}", "{__class__ .x}"])
def test_bad_templates(bad: str) -> None:
    with pytest.raises(templates.TemplateError):
        list(templates.names(bad))


def test_allowed_names() -> None:
    axes = {"threads"}
    for name in (
        "threads",
        "device.id",
        "device.slot",
        "device.chip",
        "device.npu",
        "device.label.soc",
        "run_id",
        "repeat",
        "job",
    ):
        assert templates.allowed(name, axes), name
    for name in ("thread", "device.serial", "device", "env.HOME"):
        assert not templates.allowed(name, axes), name


def test_render_needs_every_value() -> None:
    with pytest.raises(templates.TemplateError, match=re.escape("'{device.chip}' has no value")):
        templates.render("--devid {device.chip}", {"device.id": "box"})


def test_values_are_written_plainly() -> None:
    assert [templates.as_text(v) for v in (True, False, 4, 0.1, 1.0, 0.0, 2.5e-7, "a b")] == [
        "true",
        "false",
        "4",
        "0.1",
        "1.0",
        "0.0",
        "2.5e-07",
        "a b",
    ]
