"""ADB message framing."""

from __future__ import annotations

import asyncio

import pytest

from farm.sim.adb_wire import A_CNXN, A_WRTE, Message, ProtocolError, encode_message, read_message


def _read(raw: bytes) -> Message:
    async def go() -> Message:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_message(reader)

    return asyncio.run(go())


def test_round_trip_and_header_layout() -> None:
    msg = Message(A_WRTE, 3, 7, b"hello")
    raw = encode_message(msg)
    assert raw[:4] == b"WRTE" and len(raw) == 24 + 5
    assert int.from_bytes(raw[20:24], "little") == A_WRTE ^ 0xFFFFFFFF
    assert _read(raw) == msg
    assert int.from_bytes(encode_message(msg, with_checksum=True)[16:20], "little") == sum(b"hello")


def test_bad_magic_and_oversized_payload_are_protocol_errors() -> None:
    raw = bytearray(encode_message(Message(A_CNXN, 1, 2, b"x")))
    raw[20] ^= 0xFF
    with pytest.raises(ProtocolError):
        _read(bytes(raw))
    huge = encode_message(Message(A_WRTE, 1, 1, b""))[:12] + (2**30).to_bytes(4, "little") + bytes(4)
    huge += (A_WRTE ^ 0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(ProtocolError):
        _read(huge)
