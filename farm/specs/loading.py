"""Reading YAML safely and turning pydantic validation errors into ``<file>: <field path>: <reason>`` lines.

Guards against hostile or accidental input, each in bounded time and memory: anything but a regular file (a FIFO
would block the reader, ``/dev/zero`` never ends), files over ``MAX_BYTES`` (checked before reading, and the read
itself stops there), nesting deeper than ``MAX_DEPTH``, YAML that expands past ``MAX_NODES`` nodes through aliases
(billion-laughs), non-mapping documents, integers too long to convert, duplicate keys in a mapping (YAML would keep
the last one silently) and literal secrets anywhere in the document.

The last two are reported with the schema's errors (:class:`Document` ``issues``), so one pass shows every problem.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from farm.errors import ConfigError

MAX_BYTES = 1 << 20
MAX_NODES = 50_000  # keeps the worst file within a second or so; hand-written YAML holds far fewer
MAX_DEPTH = 64

# A key names a secret when its last word does (``password``, ``HF_TOKEN``, ``api_key``,
# ``AWS_SECRET_ACCESS_KEY``); matching anywhere in the key would flag parameters such as ``max_tokens``.
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "token", "apikey"})
_KEY_QUALIFIERS = frozenset({"api", "secret", "access", "private"})
_REFERENCE_SUFFIXES = ("_env", "_file", "_path")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}

M = TypeVar("M", bound=BaseModel)


@dataclass
class Document:
    """A YAML mapping read from ``source``, with the problems that do not stop schema validation."""

    data: dict[str, Any]
    source: str
    issues: list[tuple[str, str]] = field(default_factory=list)

    def check(self) -> None:
        if self.issues:
            raise ConfigError(self.source, self.issues)


def read_regular_file(path: Path, max_bytes: int, source: str | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; :class:`ConfigError` otherwise.

    Never blocks (a FIFO is refused, not opened for a writer to come) and never reads more than ``max_bytes + 1``
    bytes, whatever the file claims its size is.
    """
    source = source or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError.single(source, "", f"cannot read file: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a file")
            raise ConfigError.single(source, "", f"cannot read file: it is {kind}, not a regular file")
        if info.st_size > max_bytes:
            raise ConfigError.single(source, "", f"file is {info.st_size} bytes; the limit is {max_bytes}")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 16, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ConfigError.single(source, "", f"file is more than {max_bytes} bytes (the limit)")
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError.single(source, "", f"cannot read file: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def read_document(path: Path) -> Document:
    """Read one YAML mapping from ``path``; a problem that leaves no mapping is a :class:`ConfigError` at once."""
    source = str(path)
    raw = read_regular_file(path, MAX_BYTES, source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError.single(source, "", f"not UTF-8 text ({exc.reason})") from exc
    return parse_document(text, source)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping from ``path``; every problem is a :class:`ConfigError` naming the file."""
    doc = read_document(path)
    doc.check()
    return doc.data


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    doc = parse_document(text, source)
    doc.check()
    return doc.data


def parse_document(text: str, source: str) -> Document:
    loader = _Loader(text)
    try:
        _check_events(text)
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError.single(source, "", f"not valid YAML: {where}{problem}") from exc
    except _TooBig as exc:
        raise ConfigError.single(source, exc.path, str(exc)) from None
    except RecursionError:
        raise ConfigError.single(source, "", f"nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits (Python's conversion limit)
        raise ConfigError.single(source, "", f"not valid YAML: {str(exc).split(';')[0]}") from None
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError.single(source, "", "the file is empty")
    if not isinstance(data, dict):
        raise ConfigError.single(source, "", f"expected a mapping at the top level, got {_kind(data)}")
    return Document(data, source, loader.duplicates + list(_literal_secrets(data, "")))


class _TooBig(ValueError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """``yaml.safe_load``'s loader (libyaml's parser when present) that checks the node graph before building
    Python objects: size with aliases expanded, depth, and duplicate keys (recorded in ``duplicates``)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, str]] = []

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _count_expanded(node)
        self._walk(node)
        return self.construct_document(node)

    def _walk(self, root: yaml.Node) -> None:
        # Paths are built only for the keys reported: (node, parent entry, key or index) links instead of strings.
        seen: set[int] = set()
        found: list[tuple[int, str, int]] = []  # (line, path, line of the first one)
        stack: list[tuple[yaml.Node, Any, object]] = [(root, None, None)]
        while stack:
            entry = stack.pop()
            node = entry[0]
            if id(node) in seen:
                continue  # an alias: its node was checked where it is defined
            seen.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                stack.extend((item, entry, i) for i, item in enumerate(node.value) if _is_collection(item))
            elif isinstance(node, yaml.MappingNode):
                first: dict[object, int] = {}
                for key_node, value_node in node.value:
                    key = self._key(key_node)
                    line = key_node.start_mark.line + 1
                    if key is not _UNCHECKED:
                        if key in first:
                            found.append((line, _path(entry, key), first[key]))
                        else:
                            first[key] = line
                    if _is_collection(value_node):
                        stack.append((value_node, entry, key))
        self.duplicates = [
            (path, f"duplicate key: first at line {first_line}, again at line {line}")
            for line, path, first_line in sorted(found)
        ]

    def _key(self, node: yaml.Node) -> object:
        if node.tag == _MERGE_TAG or not isinstance(node, yaml.ScalarNode):
            return _UNCHECKED  # merge keys and complex keys: left to the schema
        key = self.construct_object(node)
        try:
            hash(key)
        except TypeError:
            return _UNCHECKED
        return key


_UNCHECKED = object()


def _is_collection(node: yaml.Node) -> bool:
    return isinstance(node, yaml.CollectionNode)


def _path(entry: tuple[yaml.Node, Any, object] | None, last: object) -> str:
    parts = [last]
    while entry is not None and entry[1] is not None:
        parts.append(entry[2])
        entry = entry[1]
    out = ""
    for part in reversed(parts):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _check_events(text: str) -> None:
    """Size and depth from the parser's events, before any node exists: composing is recursive (in C with libyaml,
    where a deep document would overflow the stack) and costs far more per node than this pass."""
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=_BaseLoader), 1):
        if count > MAX_NODES:
            raise _TooBig("", f"document has more than {MAX_NODES} nodes")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooBig("", f"nesting deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _count_expanded(root: yaml.Node) -> None:
    """Count nodes and depth with aliases expanded, stopping at the limits (billion-laughs guard)."""
    count = 1
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _TooBig("", f"nesting deeper than {MAX_DEPTH} levels (through aliases)")
        children = (
            node.value
            if isinstance(node, yaml.SequenceNode)
            else [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else []
        )
        count += len(children)
        if count > MAX_NODES:
            raise _TooBig("", f"document expands to more than {MAX_NODES} nodes (YAML alias bomb or huge file)")
        stack.extend((child, depth + 1) for child in children if _is_collection(child))


class FieldIssues(ValueError):
    """Raised by a whole-model check inside validation: problems at field paths below the model, not at its root."""

    def __init__(self, issues: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {r}" for p, r in issues))
        self.issues = issues

    def __reduce__(self) -> tuple[type[FieldIssues], tuple[list[tuple[str, str]]]]:
        return (type(self), (self.issues,))


def validate_document(
    model: type[M], doc: Document, whole_model_issues: Callable[[Mapping[str, Any]], list[tuple[str, str]]]
) -> M:
    """Validate ``doc`` into ``model``; every problem of the file at once as one :class:`ConfigError`.

    Pydantic runs a model's whole-model checks only when every field is valid; ``whole_model_issues`` runs the
    same checks on the raw data then, so a bad ``repeat`` does not hide a bad grid or template.
    """
    try:
        obj = model.model_validate(doc.data)
    except ValidationError as exc:
        issues: list[tuple[str, str]] = []
        whole_model_ran = False
        for err in exc.errors():
            inner = err.get("ctx", {}).get("error")
            if isinstance(inner, FieldIssues):
                issues.extend(inner.issues)
                whole_model_ran = True
            else:
                issues.append((field_path(err["loc"]), _reason(err)))
        if not whole_model_ran:
            issues += [i for i in whole_model_issues(doc.data) if not _covered(i[0], issues)]
        raise ConfigError(doc.source, doc.issues + [i for i in issues if not _covered(i[0], doc.issues)]) from exc
    doc.check()
    return obj


def _covered(path: str, issues: list[tuple[str, str]]) -> bool:
    """True if ``path`` or a field containing it is already reported."""
    return any(path == p or path.startswith((p + ".", p + "[")) for p, _ in issues if p)


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
            elif isinstance(value, dict | list):
                yield from _literal_secrets(value, sub)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, dict | list):
                yield from _literal_secrets(item, f"{path}[{i}]")
