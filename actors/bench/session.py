"""The device-wide life cycle of bench mode, whatever the kind.

A job's first run on a device (after its slot lease is taken) calls :meth:`BenchSession.ensure`: the device's own
values of every knob are read and **saved on the device itself** (a file a restarted actor finds), then the
profile is applied and read back. Later runs of the job, and runs of other jobs asking for the same profile,
share that state. :meth:`BenchSession.end` (the controller calls it when a job ends: done, cancelled or failed)
restores the saved values once no job uses them, reads them back and deletes the file; so does
:meth:`BenchSession.close` when the actor shuts down. After a crash (``kill -9`` of the actor) the file is still
there: the next actor's first run restores it before anything else.
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors.transports.base import Transport
from farm.errors import InfraError, RunRefused
from farm.specs.bench import BenchMode

log = logging.getLogger(__name__)

Saved = dict[str, Any]


@dataclass
class BenchReport:
    """What one application of a profile did: per knob what was done, what reads back, what did not take."""

    profile: dict[str, Any]
    applied: dict[str, str] = field(default_factory=dict)  # knob → how it was set
    readback: dict[str, str] = field(default_factory=dict)  # file or setting → value read after applying
    problems: list[str] = field(default_factory=list)  # knobs asked for that are not in effect
    notes: list[str] = field(default_factory=list)  # e.g. "restored what a previous actor left"

    @property
    def ok(self) -> bool:
        return not self.problems

    def record(self) -> dict[str, Any]:
        """The plain-data form a :class:`~actors.messages.RunResult` carries to the row."""
        return {
            "profile": self.profile,
            "applied": dict(self.applied),
            "readback": dict(self.readback),
            "ok": self.ok,
            "warnings": [*self.problems, *self.notes],
        }


class BenchControl(Protocol):
    """What one device kind can read, change and restore."""

    def capture(self) -> Saved:
        """The device's own values of everything :meth:`apply` may change."""
        ...

    def apply(self, mode: BenchMode, saved: Saved) -> BenchReport:
        """Apply ``mode`` and read every setting back."""
        ...

    def restore(self, saved: Saved) -> list[str]:
        """Put ``saved`` back; the settings that did not read back as saved (empty: all restored)."""
        ...


class SavedFile:
    """The saved values as a JSON file on the device (written before anything is changed)."""

    def __init__(self, transport: Transport, path: str) -> None:
        self.transport = transport
        self.path = path

    def read(self) -> Saved | None:
        text = self.transport.check_output(["sh", "-c", f"cat {shlex.quote(self.path)} 2>/dev/null || true"])
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except ValueError:
            log.warning("%s: unreadable, ignored: %r", self.path, text[:200])
            return None
        return data if isinstance(data, dict) else None

    def write(self, data: Saved) -> None:
        folder = shlex.quote(self.path.rsplit("/", 1)[0])
        text = shlex.quote(json.dumps(data, sort_keys=True))
        self.transport.check_output(["sh", "-c", f"mkdir -p {folder} && echo {text} > {shlex.quote(self.path)}"])

    def clear(self) -> None:
        self.transport.check_output(["rm", "-f", self.path])


@dataclass
class _Active:
    mode: BenchMode
    report: BenchReport
    saved: Saved
    jobs: set[str]


class BenchSession:
    """Bench mode of one device, shared by its slots (thread-safe)."""

    def __init__(self, control: BenchControl, saved_file: SavedFile, label: str) -> None:
        self.control = control
        self.saved_file = saved_file
        self.label = label
        self._lock = threading.Lock()
        self._active: _Active | None = None
        self._recovered = False
        self._recovery_note = ""
        self.refused: dict[str, Any] | None = None  # the record of the last profile refused (on_failure: error)

    def ensure(self, job: str, mode: BenchMode | None) -> dict[str, Any] | None:
        """Bench mode for a run of ``job``: the record for its row (None when neither it nor another job asked).
        A profile that did not take with ``on_failure: error`` is restored at once and raises
        :class:`~farm.errors.RunRefused`; its record is then :attr:`refused`."""
        with self._lock:
            self._recover()
            active = self._active
            if mode is None:
                if active is None:
                    return None
                record = active.report.record()  # the state this run is measured in, set by another job
                record["warnings"].append(f"set by job {sorted(active.jobs)[0]}, not by this job")
                return record
            if active is not None:
                if active.mode == mode:
                    active.jobs.add(job)
                    return active.report.record()
                record = BenchReport(mode.profile()).record()
                record["ok"] = False
                record["warnings"].append(
                    f"not applied: the device is in the bench mode of job {sorted(active.jobs)[0]}"
                )
                return record
            return self._apply(job, mode)

    def _apply(self, job: str, mode: BenchMode) -> dict[str, Any]:
        saved = self.control.capture()
        self.saved_file.write({"job": job, "saved": saved})
        try:
            report = self.control.apply(mode, saved)
        except BaseException:
            self._restore(saved)
            raise
        if self._recovery_note:
            report.notes.append(self._recovery_note)
            self._recovery_note = ""
        if not report.ok and mode.on_failure == "error":
            self._restore(saved)
            self.refused = report.record()
            raise RunRefused(f"bench mode on {self.label}: {'; '.join(report.problems)} (on_failure: error)")
        self._active = _Active(mode, report, saved, {job})
        log.info("%s: bench mode of job %s applied: %s", self.label, job, report.readback)
        return report.record()

    def _recover(self) -> None:
        """Once per actor: restore what an earlier actor saved and did not restore (it crashed)."""
        if self._recovered:
            return
        left = self.saved_file.read()
        if left is not None and isinstance(left.get("saved"), dict):
            problems = self._restore(left["saved"])
            self._recovery_note = f"restored the settings job {left.get('job', '?')} left applied" + (
                f", except: {'; '.join(problems)}" if problems else ""
            )
            log.warning("%s: %s", self.label, self._recovery_note)
        self._recovered = True

    def _restore(self, saved: Saved) -> list[str]:
        problems = self.control.restore(saved)
        if problems:
            log.error("%s: bench mode not fully restored (kept %s): %s", self.label, self.saved_file.path, problems)
        else:
            self.saved_file.clear()
        return problems

    def end(self, job: str) -> list[str]:
        """``job`` ended: restore the device's own settings once no job uses bench mode; the problems, if any."""
        with self._lock:
            active = self._active
            if active is None or job not in active.jobs:
                return []
            active.jobs.discard(job)
            if active.jobs:
                return []
            self._active = None
            return self._restore(active.saved)

    def close(self) -> None:
        """The actor is going away: restore whatever is still applied."""
        with self._lock:
            active, self._active = self._active, None
        if active is not None:
            try:
                self._restore(active.saved)
            except InfraError as exc:  # the saved file stays: the next actor restores
                log.error("%s: bench mode not restored at shutdown: %s", self.label, exc)
