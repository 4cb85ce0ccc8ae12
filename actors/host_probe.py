"""Probes of the local host: ``/proc`` process helpers and the environment fingerprint.

Everything here reads ``/proc`` and the Python runtime of the machine this code runs on; a host actor, the peak-RSS
sampler (:mod:`actors.rss_watch`) and the local transport's kill path use it. Remote devices get their probes from
their own transports.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

_PROC = Path("/proc")
_KIB_PER_MIB = 1024.0


# --- /proc process helpers ---


@dataclass(frozen=True)
class ProcStat:
    """The few fields of ``/proc/<pid>/stat`` the probes need."""

    pid: int
    ppid: int
    pgid: int
    state: str  # one letter: R, S, D, Z (zombie), T, ...


def read_stat(pid: int) -> ProcStat | None:
    """Parse ``/proc/<pid>/stat``; ``None`` when the process is gone."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as fh:  # str paths: this runs for every process of a /proc scan
            raw = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may hold spaces and parentheses: the fields after it start after the *last* ')'.
    rest = raw[raw.rfind(b")") + 2 :].split()
    return ProcStat(pid=pid, ppid=int(rest[1]), pgid=int(rest[2]), state=rest[0].decode())


def _all_pids() -> Iterator[int]:
    for entry in os.scandir(_PROC):
        if entry.name.isdigit():
            yield int(entry.name)


def iter_stats() -> Iterator[ProcStat]:
    """Every live process on the host (processes that vanish mid-scan are skipped)."""
    for pid in _all_pids():
        stat = read_stat(pid)
        if stat is not None:
            yield stat


def group_members(pgid: int) -> list[int]:
    """Pids of the process group ``pgid`` that are still running (zombies excluded: they hold no resources and
    are reaped by whoever inherited them, which in a container may be nobody)."""
    return [s.pid for s in iter_stats() if s.pgid == pgid and s.state != "Z"]


def _children_from_files(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(os.scandir(_PROC / str(pid) / "task"))
    except (FileNotFoundError, ProcessLookupError):
        return out
    for task in tasks:
        try:
            out.extend(int(c) for c in (Path(task.path) / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def has_children_files(pid: int) -> bool:
    """Whether the kernel lists a process's children in ``/proc/<pid>/task/*/children`` (``CONFIG_PROC_CHILDREN``)."""
    return os.path.exists(f"{_PROC}/{pid}/task/{pid}/children")


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, via ``children`` files or, without them, a ``/proc`` scan."""
    if has_children_files(root):
        found = [root]
        frontier = [root]
        while frontier:
            nxt: list[int] = []
            for pid in frontier:
                nxt.extend(_children_from_files(pid))
            found.extend(nxt)
            frontier = nxt
        return found
    by_parent: dict[int, list[int]] = {}
    for stat in iter_stats():
        by_parent.setdefault(stat.ppid, []).append(stat.pid)
    found = [root]
    frontier = [root]
    while frontier:
        frontier = [child for pid in frontier for child in by_parent.get(pid, ())]
        found.extend(frontier)
    return found


def read_rss_hwm_kib(pid: int) -> tuple[int, int] | None:
    """``(VmRSS, VmHWM)`` of one process in KiB; ``None`` when it is gone or is a zombie (no memory lines)."""
    try:
        with open(f"{_PROC}/{pid}/status") as fh:
            text = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rss = hwm = None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    if rss is None or hwm is None:
        return None
    return rss, hwm


# --- environment fingerprint ---

_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, cached per (resolved path, size, mtime): a large model is hashed once per process."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _hash_lock:
        _hash_cache[key] = value
    return value


def column_suffix(name: str) -> str:
    """Turn a file or package name into a SQL-friendly column suffix (``gemma-3.gguf`` → ``gemma_3_gguf``)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _cpu_model() -> str:
    try:
        cpuinfo = (_PROC / "cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    # x86 says "model name"; arm64 kernels say "Hardware" or nothing useful but "CPU part".
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return platform.processor() or platform.machine()


def cpu_governors(cpu_dir: Path = Path("/sys/devices/system/cpu")) -> str | None:
    """The cpufreq scaling governors of the CPUs, distinct values sorted and comma-joined (``performance``,
    ``powersave,schedutil``); ``None`` where cpufreq is not readable (containers, many VMs)."""
    found: set[str] = set()
    for path in cpu_dir.glob("cpu[0-9]*/cpufreq/scaling_governor"):
        try:
            found.add(path.read_text().strip())
        except OSError:
            continue
    found.discard("")
    return ",".join(sorted(found)) or None


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    except OSError:
        return platform.platform()


def host_fingerprint(
    paths_to_hash: Sequence[str | os.PathLike[str]] = (), packages: Sequence[str] = ()
) -> dict[str, str]:
    """The environment columns of a result row for a run on this host.

    ``fp_pkg_<name>`` is the installed version of each named distribution (``"not-installed"`` when absent);
    ``fp_sha256_<basename>`` the content hash of each file (``"missing"`` when it does not exist). Names are
    made SQL-friendly by :func:`column_suffix`.
    """
    fp = {
        "fp_cpu_model": _cpu_model(),
        "fp_cpu_count": str(os.cpu_count() or 0),
        "fp_kernel": platform.release(),
        "fp_os": _os_name(),
        "fp_python": platform.python_version(),
        "fp_hostname": socket.gethostname(),
    }
    governor = cpu_governors()
    if governor is not None:
        fp["fp_cpu_governor"] = governor
    for name in packages:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not-installed"
        fp[f"fp_pkg_{column_suffix(name)}"] = version
    for path in paths_to_hash:
        key = f"fp_sha256_{column_suffix(Path(path).name)}"
        try:
            fp[key] = file_sha256(path)
        except FileNotFoundError:
            fp[key] = "missing"
    return fp
