"""Safe YAML loading: limits, literal-secret detection, field paths from pydantic errors."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from farm.errors import ConfigError
from farm.specs.loading import MAX_DEPTH, field_path, parse_yaml, read_regular_file


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "ssh_password",
        "Passphrase",
        "HF_TOKEN",
        "GITHUB_TOKEN",
        "api_key",
        "apiKey",
        "SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "private_key",
        "dbPassword",
    ],
)
def test_literal_secrets_are_refused(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(f"outer:\n  - {{{key}: s3cr3t}}\n", "f.yaml")
    assert info.value.issues == [
        (
            f"outer[0].{key}",
            f"literal secret: never write '{key}' in a file; put it in an environment variable "
            f"and reference it as '{key}_env: VAR_NAME'",
        )
    ]


@pytest.mark.parametrize(
    "key", ["password_env", "key_file", "max_tokens", "N_TOKENS", "token_count", "tokens_per_s", "monkey"]
)
def test_references_and_parameters_are_not_secrets(key: str) -> None:
    assert parse_yaml(f"{key}: 128\n", "f.yaml") == {key: 128}


def test_empty_secret_and_nested_mapping_are_allowed() -> None:
    assert parse_yaml("password: ''\ntoken: {file: x}\n", "f.yaml") == {
        "password": "",
        "token": {"file": "x"},
    }


def test_empty_document() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("# nothing\n", "f.yaml")
    assert info.value.lines() == ["f.yaml: the file is empty"]


def test_field_path() -> None:
    assert field_path(("grid", "threads", 2)) == "grid.threads[2]"
    assert field_path(("devices", 1, "android", "adb", "serial")) == "devices[1].adb.serial"
    assert field_path(("command", "function-before[_command_is_argv()]")) == "command"


def test_duplicate_keys_name_both_lines_at_every_depth() -> None:
    text = "a:\n  b: 1\n  c: [1, {x: 1, x: 2}]\n  b: 2\nl: [[{q: 1, 'q': 2}]]\nm: &m {k: 1}\nn: {<<: *m, k: 2}\n"
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "f.yaml")
    assert info.value.issues == [
        ("a.c[1].x", "duplicate key: first at line 3, again at line 3"),
        ("a.b", "duplicate key: first at line 2, again at line 4"),
        ("l[0][0].q", "duplicate key: first at line 5, again at line 5"),
    ]  # an explicit key overriding a merged one (n.k) is YAML's own rule, not a duplicate


def test_deep_nesting_is_refused_before_it_is_built() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: " + "[" * 100 + "]" * 100, "f.yaml")
    assert info.value.lines() == [f"f.yaml: nesting deeper than {MAX_DEPTH} levels"]
    # Half a million levels overflowed the C stack of libyaml's composer (a crash, not an error); depending on the
    # libyaml build its own limit may speak first.
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: " + "[" * 500_000, "f.yaml")
    assert len(info.value.lines()) == 1 and "nesting" in info.value.lines()[0]


def test_nesting_through_aliases_counts_too() -> None:
    text = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n"
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "f.yaml")
    assert info.value.lines() == [f"f.yaml: nesting deeper than {MAX_DEPTH} levels (through aliases)"]


def test_regular_files_only_and_the_read_is_bounded(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(_error(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert result == ["cannot read file: it is a FIFO (named pipe), not a regular file"]
    assert _error(Path("/dev/zero")) == "cannot read file: it is a character device, not a regular file"
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as fh:
        fh.truncate(1 << 40)
    assert _error(sparse) == f"file is {1 << 40} bytes; the limit is 1000"
    # A file whose size says 0 but that holds more (procfs) is cut at the limit, not read to its end.
    assert _error(Path("/proc/self/maps"), 10) == "file is more than 10 bytes (the limit)"
    assert read_regular_file(Path("/proc/self/status"), 1 << 20).startswith(b"Name:")


def _error(path: Path, limit: int = 1000) -> str:
    with pytest.raises(ConfigError) as info:
        read_regular_file(path, limit)
    return info.value.issues[0][1]
