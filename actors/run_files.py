"""Files around a run, on any transport: rendered copies of pushed scripts, hashes of files already on the device,
and files the run leaves in its workdir copied back.

* **Rendered copies** (artifact ``constants:``) — recipes that are configured by editing module constants by hand
  (``BATCH_SIZE = 5`` at the top of a demo script) get a copy of the pushed text file with each named
  constant's line replaced by ``NAME = <value>``: numbers as written, anything else as a quoted string. Each
  name must be assigned exactly once at the start of a line (module level); the copy is made on the device
  actor's node, cached by content, and its own sha256 is what the row records (it is the file that ran).
* **Inputs** (job ``inputs:``) — files already on the device (models kept on a box, never pushed) are hashed
  there with ``sha256sum``; the digest is cached by path, size and mtime (``stat -L``), so a repeat costs one
  ``stat`` round trip. A missing input refuses the run: a row that cannot say what it loaded is not recorded
  as a result.
* **Collect** (job ``collect:``) — before the run the files matching the globs in the workdir are listed (and
  with ``collect_clear`` removed, as a recipe's ``rm *.npz``); after it, every matching file that is new or
  whose size or mtime changed is pulled back, at most ``MAX_COLLECT_BYTES`` per run. Globs match one path level
  per ``/`` (``*`` does not cross folders), as in the shell. Listing uses ``find … -exec stat`` with quoted
  arguments only: the device's shell never expands a glob.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import posixpath
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from actors.messages import CollectedFile
from actors.transports.base import Completed, Transport
from farm.errors import ConfigError, InfraError, RunRefused
from farm.script_constants import render_constants

log = logging.getLogger(__name__)

MAX_COLLECT_BYTES = 512 << 20
_TIMEOUT_S = 120.0
_STAT = 'for p in "$@"; do if [ -f "$p" ]; then stat -L -c "%s %Y" -- "$p"; else echo missing; fi; done'
_FARM_FILES = (".farm-sha256", ".farm-tmp")


# -- rendered copies ------------------------------------------------------------------------------------------


_render_lock = threading.Lock()


def rendered_copy(src: Path, constants: Mapping[str, str], cache_dir: Path, what: str) -> tuple[Path, str]:
    """A local file holding ``src`` rendered with ``constants``, and its sha256 (cached by content).

    The job was checked when it was submitted; a file that cannot be rendered now (changed or unreadable on this
    node) refuses the run (:class:`RunRefused`)."""
    try:
        data = render_constants(src.read_text(encoding="utf-8"), constants, what).encode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunRefused(f"{what}: constants: cannot read {src} as UTF-8 text: {exc}") from exc
    except ConfigError as exc:
        raise RunRefused(str(exc)) from exc
    digest = hashlib.sha256(data).hexdigest()
    target = cache_dir / "rendered" / f"{digest}{src.suffix}"
    with _render_lock:
        if not (target.is_file() and target.stat().st_size == len(data)):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, src.stat().st_mode & 0o777)
            os.replace(tmp, target)
    return target, digest


# -- inputs ---------------------------------------------------------------------------------------------------


class InputHasher:
    """sha256 of files on one device, cached by (path, size, mtime). Thread-safe."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def hashes(self, transport: Transport, paths: Sequence[str], workdir: str | None) -> dict[str, str]:
        """path (as given) → sha256; RunRefused naming the file when one is missing or unreadable."""
        if not paths:
            return {}
        stats = _check(transport.run(["sh", "-c", _STAT, "farm-stat", *paths], workdir=workdir, timeout=_TIMEOUT_S))
        lines = stats.splitlines()
        if len(lines) != len(paths):
            raise InfraError(f"stat of inputs printed {len(lines)} lines for {len(paths)} files: {stats[-300:]!r}")
        out: dict[str, str] = {}
        keys: dict[str, tuple[str, str]] = {}
        for path, line in zip(paths, lines, strict=True):
            if line.strip() == "missing":
                where = f" (relative to {workdir})" if workdir and not path.startswith("/") else ""
                raise RunRefused(f"input {path}{where} is not a file on the device")
            key = (posixpath.join(workdir or "", path), line.strip())
            with self._lock:
                cached = self._cache.get(key)
            if cached is None:
                keys[path] = key
            else:
                out[path] = cached
        if keys:
            todo = list(keys)
            text = _check(transport.run(["sha256sum", "--", *todo], workdir=workdir, timeout=_TIMEOUT_S * 10))
            digests = [line.split()[0] for line in text.splitlines() if line.strip()]
            if len(digests) != len(todo) or not all(re.fullmatch(r"[0-9a-f]{64}", d) for d in digests):
                raise InfraError(f"sha256sum of inputs printed an unexpected answer: {text[-300:]!r}")
            with self._lock:
                for path, digest in zip(todo, digests, strict=True):
                    self._cache[keys[path]] = digest
                    out[path] = digest
        return out


def _check(done: Completed) -> str:
    if done.timed_out or done.exit_code != 0:
        raise InfraError(f"device command failed (exit {done.exit_code}): {done.stderr.strip()[-300:]}")
    return done.stdout


# -- collect --------------------------------------------------------------------------------------------------

Listing = dict[str, tuple[int, int]]  # relative path → (size, mtime)


def glob_matches(pattern: str, path: str) -> bool:
    """Shell-like match of a relative path: one glob component per path component, ``*`` never crosses ``/``."""
    parts, names = pattern.split("/"), path.split("/")
    if len(parts) != len(names):
        return False
    return all(
        fnmatch.fnmatchcase(n, p) and (p.startswith(".") or not n.startswith("."))
        for p, n in zip(parts, names, strict=True)
    )


def list_matches(transport: Transport, workdir: str, globs: Sequence[str]) -> Listing:
    """Files under ``workdir`` matching any of ``globs``, with their size and mtime."""
    depth = max(g.count("/") + 1 for g in globs)
    argv = ["find", ".", "-maxdepth", str(depth), "-type", "f", "-exec", "stat", "-L", "-c", "%s %Y %n", "{}", "+"]
    done = transport.run(argv, workdir=workdir, timeout=_TIMEOUT_S)
    if done.timed_out or done.exit_code not in (0, 1):  # 1: a file vanished while find ran
        raise InfraError(f"listing {workdir} failed (exit {done.exit_code}): {done.stderr.strip()[-300:]}")
    found: Listing = {}
    for line in done.stdout.splitlines():
        size, _, rest = line.partition(" ")
        mtime, _, name = rest.partition(" ")
        rel = name.removeprefix("./")
        if not (size.isdigit() and mtime.isdigit()) or any(m in rel for m in _FARM_FILES):
            continue
        if any(glob_matches(g, rel) for g in globs):
            found[rel] = (int(size), int(mtime))
    return found


def clear(transport: Transport, workdir: str, listing: Listing) -> None:
    if not listing:
        return
    done = transport.run(["rm", "-f", "--", *sorted(listing)], workdir=workdir, timeout=_TIMEOUT_S)
    if done.exit_code != 0:
        raise RunRefused(f"collect_clear: cannot remove {sorted(listing)} in {workdir}: {done.stderr.strip()[-300:]}")
    log.info("removed %d stale file(s) in %s before the run", len(listing), workdir)


def collect(
    transport: Transport, workdir: str, globs: Sequence[str], before: Listing
) -> tuple[list[CollectedFile], str]:
    """Pull the files the run created or changed; (files, problem text or '')."""
    after = list_matches(transport, workdir, globs)
    fresh = sorted(rel for rel, stat in after.items() if before.get(rel) != stat)
    files: list[CollectedFile] = []
    skipped: list[str] = []
    total = 0
    with tempfile.TemporaryDirectory(prefix="farm-collect-") as tmp:
        for i, rel in enumerate(fresh):
            size = after[rel][0]
            if total + size > MAX_COLLECT_BYTES:
                skipped.append(f"{rel} ({size} B)")
                continue
            local = Path(tmp) / str(i)
            transport.pull(posixpath.join(workdir, rel), local)
            data = local.read_bytes()
            total += len(data)
            files.append(CollectedFile(rel, hashlib.sha256(data).hexdigest(), len(data), data))
    problem = ""
    if skipped:
        problem = f"not collected (over {MAX_COLLECT_BYTES >> 20} MiB per run): {', '.join(skipped)}"
    return files, problem
