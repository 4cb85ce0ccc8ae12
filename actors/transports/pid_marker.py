"""The private first stdout line a remote command prints with its pid, taken out of the command's output.

Remote transports (adb, ssh) start a command as ``sh -c 'echo <marker>$$; exec …'`` so the farm learns the
device-side pid (for samplers and for killing the process group) without a second round trip.
"""

from __future__ import annotations

import secrets
import time


def new_marker() -> str:
    """A marker no benchmark prints by accident."""
    return f"__farm_pid_{secrets.token_hex(6)}__="


class PidMarker:
    """Feed it stdout bytes as they arrive; it hands back the bytes that are the command's own output."""

    def __init__(self, marker: bytes | None) -> None:
        self._marker = marker
        self._head = b""
        self.pid: int | None = None
        self.started_at: float | None = None  # time.monotonic() when the marker line arrived

    @property
    def pending(self) -> bool:
        """Still waiting for the marker line."""
        return self._marker is not None and self.pid is None

    def feed(self, data: bytes) -> bytes:
        if not self.pending:
            return data
        assert self._marker is not None
        self._head += data
        line, sep, rest = self._head.partition(b"\n")
        if not sep:
            return b""
        if line.startswith(self._marker) and line[len(self._marker) :].isdigit():
            self.pid = int(line[len(self._marker) :])
            self.started_at = time.monotonic()
        else:  # never expected: keep everything rather than lose output
            rest = self._head
            self._marker = None
        self._head = b""
        return rest

    def flush(self) -> bytes:
        """At end of stream: whatever was held back waiting for a newline."""
        head, self._head = self._head, b""
        return head
