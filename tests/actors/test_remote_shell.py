"""Remote shell lines: env and workdir quoted; the pid marker line taken out of stdout, never real output."""

from __future__ import annotations

import pytest

from actors.transports.remote_shell import PidMarker, new_marker, prelude
from farm.errors import RunRefused


def test_marker_split_across_chunks_is_removed() -> None:
    marker = new_marker().encode()
    m = PidMarker(marker)
    data = marker + b"4242\nhello\nworld"
    kept = b"".join(m.feed(data[i : i + 3]) for i in range(0, len(data), 3)) + m.flush()
    assert m.pid == 4242 and m.started_at is not None and kept == b"hello\nworld"


def test_unexpected_first_line_is_kept_as_output() -> None:
    m = PidMarker(new_marker().encode())
    assert m.feed(b"sh: 1: cannot create: Permission denied\nrest") == b"sh: 1: cannot create: Permission denied\nrest"
    assert m.pid is None and not m.pending and m.feed(b"more") == b"more"


def test_output_without_newline_is_flushed_at_end() -> None:
    m = PidMarker(b"__m__=")
    assert m.feed(b"partial") == b"" and m.flush() == b"partial"


def test_prelude_quotes_values_and_rejects_bad_names() -> None:
    assert prelude({"A": "x y; rm -rf /", "B_2": "$HOME"}, "/data/my dir") == [
        "export A='x y; rm -rf /'",
        "export B_2='$HOME'",
        "cd '/data/my dir' || exit 127",
    ]
    with pytest.raises(RunRefused, match="invalid environment variable name"):
        prelude({"A;B": "1"}, None)
