"""The ``<dst>.farm-sha256`` marker every transport's ``push`` leaves beside a file it wrote: one format, one unit.

The marker is one line, ``sha256 size mtime``, describing ``dst`` right after the push, with ``mtime`` in whole
seconds since the epoch (what ``stat -c %Y`` on a phone and SFTP report; the local transport truncates to the same
unit). It is trusted only while ``dst`` still has exactly that size and mtime, so a file changed on the device
behind our back is pushed again, and the check never rehashes ``dst``. Each transport reads and writes the file its
own way (a shell round trip, SFTP, the local filesystem); what the line says is decided here.
"""

from __future__ import annotations

SUFFIX = ".farm-sha256"


def marker_path(dst: str) -> str:
    """Where the marker of ``dst`` lives: beside it."""
    return dst + SUFFIX


def marker_line(digest: str, size: int, mtime: float) -> str:
    """The marker's text for ``dst`` holding content ``digest`` with this size and mtime (seconds)."""
    return f"{digest} {size} {int(mtime)}\n"


def recorded_digest(text: str, size: int, mtime: float) -> str | None:
    """The sha256 a marker's ``text`` records, if ``dst`` still has the size and mtime it recorded; else None."""
    fields = text.split()
    if len(fields) != 3 or fields[1:] != [str(size), str(int(mtime))]:
        return None
    return fields[0]


__all__ = ["SUFFIX", "marker_line", "marker_path", "recorded_digest"]
