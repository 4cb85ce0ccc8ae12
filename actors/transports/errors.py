"""Where a transport's library exceptions become Farm's: one table per transport, one helper that applies it.

Each transport declares one :data:`ErrorTable` (``{library exception type: Farm error type}``) beside the code that
calls its library (adbutils and the socket under it, paramiko) and wraps those calls in :func:`map_exceptions`. The
helper raises the mapped Farm error ``from`` the library's exception (its ``__cause__``, so the traceback keeps the
original) and lets everything else through untouched: a Farm error raised inside the block, and anything the table
does not name (a bug stays a bug). As in httpx, the most specific match wins (the narrowest library type; between
unrelated types an exception is both of, the first listed).

Whether a dropped link means "the device is offline" or "a command lost its link" depends on how far the call got,
not on the library's exception: a table maps link faults to :class:`~farm.errors.ConnectionLostError`, and a block
that runs before anything was started on the device passes ``offline=True`` to make them
:class:`~farm.errors.DeviceOfflineError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from farm.errors import ConnectionLostError, DeviceOfflineError, FarmError, InfraError

ErrorTable = Mapping[type[BaseException], type[FarmError]]

# The node's own files (an artifact to push, a pulled file to write): a fault there is the node's, not the run's.
LOCAL_FILE_ERRORS: ErrorTable = {OSError: InfraError}


def mapped_type(table: ErrorTable, exc: BaseException, *, offline: bool = False) -> type[FarmError] | None:
    """The Farm error ``table`` maps ``exc`` to (the most specific match), or None when it names none of its types."""
    mapped: tuple[type[BaseException], type[FarmError]] | None = None
    for source, target in table.items():
        if isinstance(exc, source) and (mapped is None or issubclass(source, mapped[0])):
            mapped = (source, target)
    if mapped is None:
        return None
    target = mapped[1]
    return DeviceOfflineError if offline and target is ConnectionLostError else target


def reason(exc: BaseException) -> str:
    """``str(exc)``, or the exception's class name when it has no message (``EOFError()``, ``socket.timeout()``)."""
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def map_exceptions(table: ErrorTable, what: str, *, offline: bool = False) -> Iterator[None]:
    """Run the block; a library exception ``table`` names becomes its Farm error ``"<what>: <reason>"``."""
    try:
        yield
    except FarmError:
        raise
    except Exception as exc:
        target = mapped_type(table, exc, offline=offline)
        if target is None:
            raise
        raise target(f"{what}: {reason(exc)}") from exc


__all__ = ["LOCAL_FILE_ERRORS", "ErrorTable", "map_exceptions", "mapped_type", "reason"]
