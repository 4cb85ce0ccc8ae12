"""The process table of a virtual phone: pids, process groups, ``/proc/<pid>/status`` and signals.

Each process body is an asyncio task; a signal that terminates cancels the task and the process exits with
``128 + signal`` like a real one (137 for SIGKILL, 143 for SIGTERM).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

SIGNALS = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "KILL": 9,
    "USR1": 10,
    "USR2": 12,
    "PIPE": 13,
    "TERM": 15,
    "CONT": 18,
    "STOP": 19,
}
# Signals whose default action ends the process; the others are accepted and ignored by scripted programs.
TERMINATING = {1, 2, 3, 9, 10, 12, 13, 15}


@dataclass
class Process:
    """One running program on the phone."""

    pid: int
    ppid: int
    pgid: int
    argv: list[str]
    started: float = field(default_factory=time.monotonic)
    vm_rss_kb: int = 1800
    vm_hwm_kb: int = 1800
    vm_size_kb: int = 12000
    threads: int = 1
    cpus_allowed: int = 0xFF
    state: str = "S (sleeping)"
    task: asyncio.Task[int] | None = None
    killed_by: int | None = None
    uid: int = 2000  # shell; 0 under su on a rooted phone

    @property
    def name(self) -> str:
        return (self.argv[0].rsplit("/", 1)[-1] if self.argv else "sh")[:15]

    def set_rss(self, kb: int) -> None:
        self.vm_rss_kb = kb
        self.vm_hwm_kb = max(self.vm_hwm_kb, kb)
        self.vm_size_kb = max(self.vm_size_kb, kb + 8000)

    def status_text(self) -> str:
        cpus = [str(i) for i in range(32) if self.cpus_allowed >> i & 1]
        return "".join(
            f"{k}:\t{v}\n"
            for k, v in (
                ("Name", self.name),
                ("Umask", "0000"),
                ("State", self.state),
                ("Tgid", self.pid),
                ("Ngid", 0),
                ("Pid", self.pid),
                ("PPid", self.ppid),
                ("TracerPid", 0),
                ("Uid", "2000\t2000\t2000\t2000"),
                ("Gid", "2000\t2000\t2000\t2000"),
                ("FDSize", 64),
                ("Groups", "1004 1007 1011 1015 1028 3001 3002 3003 3006 3009 3011"),
                ("VmPeak", f"{self.vm_size_kb:8d} kB"),
                ("VmSize", f"{self.vm_size_kb:8d} kB"),
                ("VmLck", f"{0:8d} kB"),
                ("VmPin", f"{0:8d} kB"),
                ("VmHWM", f"{self.vm_hwm_kb:8d} kB"),
                ("VmRSS", f"{self.vm_rss_kb:8d} kB"),
                ("RssAnon", f"{max(0, self.vm_rss_kb - 1200):8d} kB"),
                ("RssFile", f"{min(1200, self.vm_rss_kb):8d} kB"),
                ("RssShmem", f"{0:8d} kB"),
                ("VmSwap", f"{0:8d} kB"),
                ("Threads", self.threads),
                ("SigQ", "0/21724"),
                ("Cpus_allowed", f"{self.cpus_allowed:x}"),
                ("Cpus_allowed_list", ",".join(cpus)),
                ("voluntary_ctxt_switches", 12),
                ("nonvoluntary_ctxt_switches", 3),
            )
        )


class ProcessTable:
    """Pid allocation, lookup and signal delivery for one phone."""

    def __init__(self, first_pid: int = 4100) -> None:
        self._next_pid = first_pid
        self._procs: dict[int, Process] = {}

    def spawn(self, argv: list[str], parent: Process | None = None, *, new_group: bool = False) -> Process:
        pid = self._next_pid
        self._next_pid += 1
        ppid = parent.pid if parent else 1
        pgid = pid if new_group or parent is None else parent.pgid
        proc = Process(pid, ppid, pgid, list(argv))
        if parent is not None:
            proc.cpus_allowed = parent.cpus_allowed
            proc.uid = parent.uid
        self._procs[pid] = proc
        return proc

    def get(self, pid: int) -> Process | None:
        return self._procs.get(pid)

    def running(self) -> Iterable[Process]:
        return list(self._procs.values())

    def reap(self, proc: Process) -> None:
        self._procs.pop(proc.pid, None)

    def signal(self, target: int, sig: int) -> bool:
        """Deliver ``sig`` to pid ``target``, or to process group ``-target``; False when nothing matched."""
        procs = (
            [p for p in self._procs.values() if p.pgid == -target]
            if target < 0
            else [p for p in [self._procs.get(target)] if p]
        )
        if not procs:
            return False
        for proc in procs:
            if sig in TERMINATING and proc.task is not None and not proc.task.done():
                logger.debug("signal %d → pid %d (%s)", sig, proc.pid, proc.name)
                proc.killed_by = sig
                proc.task.cancel()
        return True

    async def run(self, proc: Process, body: Coroutine[Any, Any, int]) -> int:
        """Run ``body`` as ``proc`` and return its exit status (``128 + signal`` when killed)."""
        task: asyncio.Task[int] = asyncio.get_running_loop().create_task(body)
        proc.task = task
        proc.state = "R (running)"
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # Our caller (the parent) was cancelled while waiting: the child keeps the parent's fate.
            if proc.killed_by is None:
                proc.killed_by = 1
            task.cancel()
            raise
        finally:
            self.reap(proc)
        if task.cancelled():
            return 128 + (proc.killed_by or 1)
        exc = task.exception()
        if isinstance(exc, BrokenPipeError):
            return 128 + 13  # its output stream went away: SIGPIPE
        if exc is not None:
            logger.error("pid %d (%s) crashed: %r", proc.pid, proc.name, exc)
            return 139  # like a segfault: the caller sees a failed run, not a hang
        return task.result()
