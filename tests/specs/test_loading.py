"""Safe YAML loading: limits, literal-secret detection, field paths from pydantic errors."""

from __future__ import annotations

import pytest

from farm.errors import ConfigError
from farm.specs.loading import field_path, parse_yaml


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
