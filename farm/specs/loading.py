"""Reading YAML safely and turning pydantic validation errors into ``<file>: <field path>: <reason>`` lines.

Guards against hostile or accidental input: files over ``MAX_BYTES``, YAML that expands past ``MAX_NODES`` nodes
through aliases (billion-laughs), non-mapping documents, and literal secrets anywhere in the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from farm.errors import ConfigError

MAX_BYTES = 1 << 20
MAX_NODES = 200_000

# A key names a secret when its last word does (``password``, ``HF_TOKEN``, ``api_key``,
# ``AWS_SECRET_ACCESS_KEY``); matching anywhere in the key would flag parameters such as ``max_tokens``.
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "token", "apikey"})
_KEY_QUALIFIERS = frozenset({"api", "secret", "access", "private"})
_REFERENCE_SUFFIXES = ("_env", "_file", "_path")

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping from ``path``; every problem is a :class:`ConfigError` naming the file."""
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError.single(source, "", f"file is {size} bytes; the limit is {MAX_BYTES}")
        text = path.read_text(encoding="utf-8")
    except ConfigError:
        raise
    except UnicodeDecodeError as exc:
        raise ConfigError.single(source, "", f"not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ConfigError.single(source, "", f"cannot read file: {exc.strerror or exc}") from exc
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError.single(source, "", f"not valid YAML: {where}{problem}") from exc
    if data is None:
        raise ConfigError.single(source, "", "the file is empty")
    if not isinstance(data, dict):
        raise ConfigError.single(source, "", f"expected a mapping at the top level, got {_kind(data)}")
    _check_size(data, source)
    secrets = list(_literal_secrets(data, ""))
    if secrets:
        raise ConfigError(source, secrets)
    return data


def validate_model(model: type[M], data: Mapping[str, Any], source: str, context: dict[str, Any] | None = None) -> M:
    """Validate ``data`` into ``model``; all errors at once as ``(field path, reason)`` pairs."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(source, [(field_path(e["loc"]), _reason(e)) for e in exc.errors()]) from exc


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("grid", "threads", 2)`` → ``grid.threads[2]``; pydantic's union tags (and ``tag:*`` tags) are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tag:")) or (
            part in {"android", "sophgo", "ascend", "host"} and out.endswith("]")
        ):
            continue
        else:
            out += f".{part}" if out else part
    return out


def _reason(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    return msg.removeprefix("Value error, ")


def _kind(value: object) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _check_size(data: object, source: str) -> None:
    """Count nodes with aliases expanded, stopping as soon as the limit is passed (billion-laughs guard)."""
    count = 0
    stack: list[object] = [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError.single(
                source, "", f"document expands to more than {MAX_NODES} nodes (YAML alias bomb or huge file)"
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def is_secret_key(key: str) -> bool:
    """True when ``key`` names a secret (its last word is ``password``, ``token``, … or it ends in ``api_key``)."""
    words = [w.lower() for w in _WORD.findall(key)]
    if not words:
        return False
    last = words[-1]
    return last in _SECRET_WORDS or (last == "key" and len(words) > 1 and words[-2] in _KEY_QUALIFIERS)


def _literal_secrets(node: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            if (
                isinstance(key, str)
                and is_secret_key(key)
                and not key.lower().endswith(_REFERENCE_SUFFIXES)
                and isinstance(value, str | int | float)
                and not isinstance(value, bool)
                and str(value) != ""
            ):
                yield (
                    sub,
                    f"literal secret: never write '{key}' in a file; put it in an environment variable and "
                    f"reference it as '{key}_env: VAR_NAME'",
                )
            else:
                yield from _literal_secrets(value, sub)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _literal_secrets(item, f"{path}[{i}]")
