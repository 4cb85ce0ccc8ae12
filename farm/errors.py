"""The exception tree of Farm: what Farm raises on purpose is one of these, with the few exceptions listed below.

::

    FarmError
    ├── ConfigError            bad input: YAML, schema, CLI usage  → exit code 2, nothing submitted
    ├── OutputParseError       a workload's output holds no result → row status ``parse_error``
    ├── InfraError             the device or its link failed, not the benchmark → retried by the scheduler
    │   ├── DeviceOfflineError     device not reachable / not authorized
    │   └── ConnectionLostError    link dropped mid-command (missing exit frame, EOF, SSH channel closed)
    ├── RunRefused             the device side refuses this run, and would again (bmodels that must share weights
    │                          differ, an unset ``password_env``, an env name that is no identifier, an input that
    │                          is no file) → row status ``failed``, never retried
    ├── SecurityError          refused on purpose (unknown or changed SSH host key); never retried
    ├── ResultsError           the results store cannot be read or written
    │   └── _PartVanished      (inside farm.results.store) a listed part file was replaced by a compaction
    └── ControllerError        the Ray controller is missing or refused a request

Third-party exceptions are translated at the boundary with ``raise ... from exc``: a transport's (adbutils,
paramiko, socket) through its one table and :func:`actors.transports.errors.map_exceptions`; pyarrow's and ray's
where the results store and the controller call them. A failed run (non-zero exit, timeout) is a result row, not
an exception. Not translated, because they are bugs rather than conditions: ``ValueError``/``TypeError`` from a
wrong argument inside Farm's own code (a device actor turns anything it did not expect into a failed run, see
:meth:`actors.device.Device.execute`) and ``KeyboardInterrupt``. Validation helpers below the tree
(``farm.grid.GridError``, ``farm.specs.loading.FieldIssues``) never leave the spec loader: it turns them into
a :class:`ConfigError`; so do the ``ValueError`` that field validators raise (``farm.specs.types``, the job's
and inventory's models, a workload's option check), which pydantic collects. Three plain errors are part of an
API on purpose: ``Inventory.device`` raises ``KeyError`` for an unknown id (a lookup, as a mapping does),
``Scheduler.finish`` raises ``ValueError`` for a slot that holds no run (a caller's bug), and
``ThermalZones.max_temp_c`` raises ``ValueError`` when no zone matches (an empty ``max``, as ``max()`` does).

Every error pickles to an equal copy (it crosses Ray between the controller, device actors and the CLI): a class
whose constructor does not take ``self.args`` back says how to rebuild itself in ``__reduce__``.
"""

from __future__ import annotations


class FarmError(Exception):
    """Base class of every error Farm raises on purpose."""


class ConfigError(FarmError):
    """Bad user input. ``issues`` holds one ``(field_path, reason)`` pair per problem found."""

    def __init__(self, source: str, issues: list[tuple[str, str]]) -> None:
        self.source = source
        self.issues = list(issues)
        super().__init__("\n".join(self.lines()))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, list[tuple[str, str]]]]:
        # The default would call ConfigError(message) (``self.args``), which has no ``issues``.
        return (type(self), (self.source, self.issues))

    @classmethod
    def single(cls, source: str, path: str, reason: str) -> ConfigError:
        return cls(source, [(path, reason)])

    def lines(self) -> list[str]:
        """One ``<file>: <field path>: <reason>`` line per problem."""
        out = []
        for path, reason in self.issues:
            out.append(f"{self.source}: {path}: {reason}" if path else f"{self.source}: {reason}")
        return out


class OutputParseError(FarmError):
    """The benchmark's output holds no result the workload adapter can read."""


class InfraError(FarmError):
    """The device, its link or its actor failed; the run itself says nothing. Retried."""


class DeviceOfflineError(InfraError):
    """The device is not reachable (offline, unauthorized, gone)."""


class ConnectionLostError(InfraError):
    """The link to the device dropped in the middle of a command."""


class RunRefused(FarmError):
    """The device side refuses one run on purpose, and a retry would refuse it again: a failed row, not an
    infrastructure fault (unlike :class:`ConfigError` it is found at run time, after the job was accepted)."""


class SecurityError(FarmError):
    """Refused on purpose, e.g. an SSH host key that is unknown or changed. Never retried."""


class ResultsError(FarmError):
    """The results store cannot be read or written."""


class ControllerError(FarmError):
    """The controller is not running, or refused a request."""


def farm_error(exc: BaseException) -> FarmError | None:
    """``exc`` itself, or the Farm error a Ray task or actor raised (Ray wraps it, keeping it as ``cause``)."""
    for _ in range(8):  # a wrapper of a wrapper at most, in practice
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException):
            break
        exc = cause
    return exc if isinstance(exc, FarmError) else None
