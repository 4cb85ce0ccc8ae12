"""Probes of the local host: the environment fingerprint and a peak-RSS sampler for local process trees.

Everything here reads ``/proc`` and the Python runtime of the machine this code runs on; a host actor and the
local transport's kill path use it. Remote devices get their probes from their own transports.

Sampler cost, measured on the project's 2-core dev VM (kernel without ``/proc/<pid>/task/*/children``,
about 90 processes, so descendants are found by scanning ``/proc``): with ``interval_s=0.05`` the sampler
thread uses about 1 % of one core on a three-process tree (0.2 % of it is just waking up 20 times a second);
``tests/actors/test_host_probe.py`` checks it through :attr:`PeakRssSampler.cpu_fraction`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
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
        raw = (_PROC / str(pid) / "stat").read_bytes()
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


def _has_children_files(pid: int) -> bool:
    return (_PROC / str(pid) / "task" / str(pid) / "children").exists()


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


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, via ``children`` files or, without them, a ``/proc`` scan."""
    if _has_children_files(root):
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
        text = (_PROC / str(pid) / "status").read_text()
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


# --- peak RSS sampler ---


class PeakRssSampler:
    """Samples the summed resident memory of a process tree in a background thread and keeps the peak.

    The peak is ``max(highest sampled sum of VmRSS over the tree, highest VmHWM of any single process)``: the
    sum catches multi-process workloads, VmHWM (the kernel's own high-water mark) catches a single process's
    peak between two samples. Values are MiB (``peak_rss_mib`` follows the kernel's KiB-based units).

    Pass an unstarted sampler as a transport's ``on_start`` callback: calling it with a pid starts it::

        sampler = PeakRssSampler()
        completed = transport.run(argv, on_start=sampler)
        peak_rss_mib = sampler.stop()

    Without ``/proc/<pid>/task/*/children`` (kernels built without ``CONFIG_PROC_CHILDREN``) new descendants
    are discovered by a full ``/proc`` scan every ``rescan_every`` samples, while the known ones are read
    every sample; this keeps the sampler's own CPU use small enough not to disturb the benchmark it measures.
    """

    def __init__(self, pid: int | None = None, interval_s: float = 0.05, rescan_every: int = 10) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.pid = pid
        self.interval_s = interval_s
        self.rescan_every = max(1, rescan_every)
        self.samples = 0
        self.cpu_seconds = 0.0  # CPU time used by the sampler thread itself
        self.wall_seconds = 0.0
        self._peak_kib = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, pid: int) -> None:
        self.start(pid)

    def start(self, pid: int | None = None) -> None:
        """Start sampling ``pid`` (or the pid given at construction)."""
        if pid is not None:
            self.pid = pid
        if self.pid is None:
            raise ValueError("PeakRssSampler.start needs a pid")
        if self._thread is not None:
            raise RuntimeError("PeakRssSampler already started")
        self._thread = threading.Thread(target=self._loop, name=f"peak-rss-{self.pid}", daemon=True)
        self._thread.start()

    def stop(self) -> float:
        """Stop sampling; return the peak in MiB (``nan`` if the process was gone before the first sample)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        return self.peak_rss_mib

    @property
    def peak_rss_mib(self) -> float:
        return self._peak_kib / _KIB_PER_MIB if self.samples else float("nan")

    @property
    def cpu_fraction(self) -> float:
        """The sampler's own CPU use as a fraction of one core over its lifetime."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def _loop(self) -> None:
        assert self.pid is not None
        root = self.pid
        cpu0, wall0 = time.thread_time(), time.monotonic()
        use_children_files = _has_children_files(root)
        known: list[int] = [root]
        tick = 0
        try:
            while True:
                if use_children_files or tick % self.rescan_every == 0:
                    known = descendants(root)
                if not self._sample(known) and read_stat(root) is None:
                    break  # the whole tree is gone
                tick += 1
                if self._stop.wait(self.interval_s):
                    # One last look (the tree may have grown since the scan) — only while the root still exists:
                    # once it is gone the look is a full /proc scan for nothing, on the path between two runs.
                    if read_stat(root) is not None:
                        self._sample(descendants(root))
                    break
        finally:
            self.cpu_seconds = time.thread_time() - cpu0
            self.wall_seconds = time.monotonic() - wall0

    def _sample(self, pids: Iterable[int]) -> bool:
        total = 0
        seen = False
        for pid in pids:
            mem = read_rss_hwm_kib(pid)
            if mem is None:
                continue
            seen = True
            rss, hwm = mem
            total += rss
            self._peak_kib = max(self._peak_kib, hwm)
        if seen:
            self._peak_kib = max(self._peak_kib, total)
            self.samples += 1
        return seen


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
