"""What every device reached over SSH shares (:class:`SshDevice`): one connection, health, ``~`` paths, the
synthetic label and the remote host fingerprint.

* :class:`SshDevice` — the base of the ``sophgo``, ``ascend`` and SSH ``host`` kinds. One
  :class:`~actors.transports.ssh.SshTransport` per device, shared by every slot (SSH multiplexes one channel
  per command). ``health()`` runs ``true`` on the box: ``idle`` for every slot when that works, ``offline``
  otherwise; a :class:`~farm.errors.SecurityError` (unknown or changed host key, refused key) makes it
  ``untrusted`` with the error's text as ``health_reason`` (shown by ``farm devices``), is logged as an error —
  once per distinct message, not every health round — and is never retried: the scheduler ends the device's
  runs at once with that reason, and a run handed to it before a health check noticed ends ``failed`` with the
  error's text (see :meth:`actors.device.Device.execute`). Nothing is sent to the box either way.
* ``~`` — a run's ``workdir`` and artifact destinations may start with ``~/`` (the jobs in ``jobs/`` do); the
  transport quotes paths, so the box's shell would not expand them. They are rewritten to the box's ``$HOME``
  (asked once). ``~user/`` and ``~`` inside command arguments are left alone.
* Synthetic — the scripted stand-ins of ``farm/sim/boxes`` label their output; a probe whose output carries the
  label marks the whole device synthetic (its hardware figures are made up), a run whose output carries it
  marks that run's row synthetic.

The accelerator boxes built on it (one slot per chip, a shared status poller) are in :mod:`actors.box`.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import threading
from collections.abc import Sequence

from actors.device import Device
from actors.messages import RunRequest, RunResult
from actors.transports.base import Completed, Transport, checked
from actors.transports.ssh import SshTransport
from farm.errors import ConfigError, ConnectionLostError, DeviceOfflineError, FarmError, InfraError, SecurityError
from farm.sim.synthetic import marks_synthetic
from farm.specs.inventory import AscendDevice, HostDevice, SophgoDevice

log = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 30.0
_HEALTH_TIMEOUT_S = 10.0
_SECTION = "__farm_section__"


def expand_home(path: str, home: str) -> str:
    """``~`` or ``~/x`` → ``<home>`` / ``<home>/x``; any other path unchanged."""
    if path == "~":
        return home
    if path.startswith("~/"):
        return home.rstrip("/") + path[1:]
    return path


def _needs_home(path: str | None) -> bool:
    return path is not None and (path == "~" or path.startswith("~/"))


# -- the remote host fingerprint -------------------------------------------------------------------------------

# One round trip; each section's output follows a marker line so a missing tool leaves its section empty.
_HOST_PROBES: tuple[tuple[str, str], ...] = (
    ("fp_kernel", "uname -r"),
    ("fp_arch", "uname -m"),
    ("fp_cpu_count", "nproc"),
    # x86 says "model name"; arm64 kernels say "Hardware", "Processor" or nothing but "CPU part"
    ("fp_cpu_model", "grep -m1 -E '^(model name|Hardware|Processor|cpu model)[[:space:]]*:' /proc/cpuinfo"),
    ("fp_os", '. /etc/os-release 2>/dev/null && printf "%s\\n" "$PRETTY_NAME"'),
    ("fp_hostname", "hostname"),
    ("fp_python", "python3 -V 2>&1"),
    ("fp_cpu_governor", "cat /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor | sort -u | paste -sd, -"),
)


def host_fingerprint_script() -> str:
    return "; ".join(f"echo {_SECTION}{key}; {cmd} 2>/dev/null" for key, cmd in _HOST_PROBES)


def parse_host_fingerprint(text: str) -> dict[str, str]:
    """The ``fp_*`` columns from the output of :func:`host_fingerprint_script` (empty sections dropped)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(_SECTION):
            current = sections.setdefault(line[len(_SECTION) :].strip(), [])
        elif current is not None and line.strip():
            current.append(line.strip())
    fp: dict[str, str] = {}
    for key, lines in sections.items():
        if not lines:
            continue
        value = lines[0]
        if key == "fp_cpu_model":
            value = value.split(":", 1)[1].strip() if ":" in value else value
        elif key == "fp_python":
            value = value.removeprefix("Python ").strip()
        fp[key] = value
    return fp


# -- the base class ---------------------------------------------------------------------------------------------


class SshDevice(Device):
    """A device behind one SSH connection (see the module docstring). Kinds add slots, samplers, fingerprints."""

    def __init__(self, spec: SophgoDevice | AscendDevice | HostDevice) -> None:
        super().__init__(spec)
        if spec.ssh is None:
            raise ConfigError.single(f"device {spec.id}", "ssh", "an SSH device needs an ssh: block")
        self.ssh = SshTransport(spec.ssh, spec.id)
        self._home: str | None = None
        self._home_lock = threading.Lock()
        self._last_refusal = ""

    # -- hooks ------------------------------------------------------------------------------------------------
    def transport(self, slot_id: str) -> Transport:
        return self.ssh

    def health(self) -> dict[str, str]:
        try:
            self.ssh.check_output(["true"], timeout=_HEALTH_TIMEOUT_S)
            state = "idle"
            self._last_refusal = ""
        except SecurityError as exc:
            if str(exc) != self._last_refusal:
                log.error("%s: refused, will not connect until this is fixed: %s", self.spec.id, exc)
                self._last_refusal = str(exc)
            state = "untrusted"
            self.health_reason = str(exc)
        except InfraError as exc:
            log.info("%s: health: %s", self.spec.id, exc)
            state = "offline"
            self.health_reason = str(exc)
        except FarmError as exc:  # e.g. password_env names an unset variable: the same on every try
            if str(exc) != self._last_refusal:
                log.error("%s: cannot connect: %s", self.spec.id, exc)
                self._last_refusal = str(exc)
            state = "offline"
            self.health_reason = str(exc)
        if state == "idle":
            self.health_reason = ""
        return {s.slot_id: state for s in self.slots()}

    def close(self) -> None:
        self.ssh.close()

    def before_run(self, req: RunRequest, res: RunResult) -> None:
        """Called before the generic run with ``~`` already expanded; raise FarmError to refuse the run."""

    # -- the run ----------------------------------------------------------------------------------------------
    def _execute(self, req: RunRequest, res: RunResult, cancel: threading.Event) -> None:
        req = self.with_home(req)
        self.before_run(req, res)
        super()._execute(req, res, cancel)

    def with_home(self, req: RunRequest) -> RunRequest:
        """``req`` with a leading ``~`` of its workdir, artifact destinations and inputs replaced by the box's $HOME."""
        if not (
            _needs_home(req.workdir)
            or any(_needs_home(a.dst) for a in req.artifacts)
            or any(map(_needs_home, req.inputs))
        ):
            return req
        home = self.remote_home()
        return dataclasses.replace(
            req,
            workdir=expand_home(req.workdir, home) if req.workdir is not None else None,
            artifacts=[dataclasses.replace(a, dst=expand_home(a.dst, home)) for a in req.artifacts],
            inputs=[expand_home(p, home) for p in req.inputs],
        )

    def remote_home(self) -> str:
        with self._home_lock:
            if self._home is None:
                home = self.ssh.check_output(["sh", "-c", 'printf "%s" "$HOME"'], timeout=_PROBE_TIMEOUT_S).strip()
                if not home.startswith("/"):
                    raise DeviceOfflineError(f"{self.spec.id}: the box reports no usable $HOME ({home!r})")
                self._home = home
            return self._home

    # -- probes -----------------------------------------------------------------------------------------------
    def probe(self, argv: Sequence[str], *, timeout: float = _PROBE_TIMEOUT_S) -> Completed:
        """Run a short status command; a stand-in's synthetic label marks the device synthetic."""
        done = self.ssh.run(argv, timeout=timeout)
        if done.timed_out:
            raise ConnectionLostError(f"{self.spec.id}: probe {shlex.join(argv)!r} timed out after {timeout} s")
        if marks_synthetic(done.stdout, done.stderr) and not self.synthetic:
            log.info("%s: %s is a scripted stand-in: rows from this device are synthetic", self.spec.id, argv[0])
            self.synthetic = True
        return done

    def check_output(self, argv: Sequence[str], *, timeout: float = _PROBE_TIMEOUT_S) -> str:
        """The transport's :meth:`~actors.transports.base.Transport.check_output` for a status command the device
        cannot work without, also noting a stand-in's synthetic label (the tools print it on stderr)."""
        return checked(self.probe(argv, timeout=timeout), self.spec.id, argv, timeout)

    def host_fingerprint(self) -> dict[str, str]:
        """``fp_kernel``, ``fp_arch``, ``fp_cpu_count``, ``fp_cpu_model``, ``fp_os``, ``fp_hostname``, ``fp_python``,
        ``fp_cpu_governor`` (where cpufreq is readable)."""
        return parse_host_fingerprint(self.probe(["sh", "-c", host_fingerprint_script()]).stdout)
