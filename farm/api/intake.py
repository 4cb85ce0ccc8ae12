"""A job that arrives over HTTP, checked as untrusted input from another machine.

Its YAML goes through the loader of ``farm submit`` (:func:`farm.specs.loading.parse_document` and the job
schema), so each rejection carries the same ``<file>: <field path>: <reason>`` lines the CLI prints for that file,
``<file>`` being the name the client sent. Its artifacts can come from two places only:

- uploaded with the request: a file whose upload name is the artifact's ``src`` (whatever it is: ``farm submit
  --api`` names each upload as the job file does, ``../models/m.gguf`` included); its bytes are hashed here and
  shipped to the devices through Ray's object store, its row records ``src`` as ``upload:<name>``;
- the API's artifact root (``--artifact-root``), a folder of the head node: ``src`` is a path relative to it and
  must stay inside it once resolved (``..`` and symlinks leading out are refused).

Any other ``src`` — not uploaded, and absolute (``/etc/shadow``), ``~``-relative, with a ``..`` part, or with no
root configured — is refused: a request can never make the head node read a path of its choosing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from actors.messages import ArtifactRef
from farm.errors import ConfigError
from farm.specs.job import JobSpec, job_from_document
from farm.specs.loading import MAX_BYTES, parse_document

UPLOAD_PREFIX = "upload:"
MAX_SOURCE_CHARS = 200


@dataclass(frozen=True)
class Intake:
    """A job accepted for submission: its spec, the name its messages use and its artifacts, placed."""

    job: JobSpec
    source: str
    artifacts: list[ArtifactRef]
    base_dir: str


def source_name(given: str | None) -> str:
    """The job's file name as the client named it (``job.yaml`` if none), printable and bounded: it is only
    echoed in messages, never opened."""
    name = "".join(ch for ch in (given or "") if ch.isprintable()).strip()[:MAX_SOURCE_CHARS]
    return name or "job.yaml"


def load_job_text(raw: bytes, source: str) -> JobSpec:
    """The job in ``raw`` (YAML), with every problem as the CLI reports it for that file."""
    if len(raw) > MAX_BYTES:
        raise ConfigError.single(source, "", f"file is {len(raw)} bytes; the limit is {MAX_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError.single(source, "", f"not UTF-8 text ({exc.reason})") from exc
    return job_from_document(parse_document(text, source), Path(tempfile.gettempdir()))


def src_problem(src: str) -> str | None:
    """Why ``src`` can name neither an upload nor a file under the artifact root, or None."""
    if src.startswith(("/", "~")) or "\\" in src or "\x00" in src:
        return (
            "must be a relative path: a job sent over HTTP names a file uploaded with it or a file under the "
            "API's artifact root, never a path of the head node"
        )
    if ".." in PurePosixPath(src).parts:
        return "must not contain '..': it would leave the artifact root"
    return None


def place_artifacts(
    job: JobSpec, source: str, uploads: Mapping[str, bytes], root: Path | None, ship: bool = True
) -> Intake:
    """Each artifact of ``job`` from ``uploads`` (by ``src``) or from under ``root``; every problem at once."""
    issues: list[tuple[str, str]] = []
    wanted = {art.src for art in job.artifacts}
    issues += [("artifacts", f"uploaded file {name!r} is no artifact's src") for name in uploads if name not in wanted]
    refs: list[ArtifactRef] = []
    for i, art in enumerate(job.artifacts):
        where = f"artifacts[{i}].src"
        problem = None
        if art.src in uploads:  # the bytes came with the request: src is only the upload's name
            data, local_path = uploads[art.src], UPLOAD_PREFIX + art.src
        elif (problem := src_problem(art.src)) is None and root is not None:
            path, problem = _under_root(root, art.src)
            data, local_path = (path.read_bytes(), str(path)) if path is not None else (b"", "")
        elif problem is None:
            problem = "not uploaded with the request, and this API has no artifact root (--artifact-root)"
        if problem is not None:
            issues.append((where, problem))
            continue
        if art.constants:
            issues += _constants_issues(i, art.src, data, art.constants)
        refs.append(_ref(art.src, data, art.remote_path(), art.mode, local_path, ship))
    if issues:
        raise ConfigError(source, issues)
    return Intake(job, source, refs, str(root) if root is not None else tempfile.gettempdir())


def _under_root(root: Path, src: str) -> tuple[Path | None, str | None]:
    base = root.resolve()
    path = (base / src).resolve()
    if not path.is_relative_to(base):
        return None, "resolves outside the artifact root (through a symlink)"
    if not path.is_file():
        return None, f"no such file under the artifact root: {src}"
    return path, None


def _constants_issues(index: int, src: str, data: bytes, constants: Mapping[str, str]) -> list[tuple[str, str]]:
    from farm.script_constants import check_constants

    fd, tmp = tempfile.mkstemp(prefix="farm-api-", suffix=".py")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        check_constants(Path(tmp), constants, src)
    except (ConfigError, OSError, UnicodeDecodeError) as exc:
        return [(f"artifacts[{index}].constants", str(exc))]
    finally:
        os.unlink(tmp)
    return []


def _ref(src: str, data: bytes, dst: str, mode: int | None, local_path: str, ship: bool) -> ArtifactRef:
    ref: Any = None
    if ship:
        import ray

        ref = ray.put(data)
    name = PurePosixPath(src).name
    return ArtifactRef(name, hashlib.sha256(data).hexdigest(), len(data), dst, mode, local_path, ref)
