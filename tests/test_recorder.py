"""The controller's recorder thread (``farm/recorder.py``): order, batching of the loop's notices, failures."""

from __future__ import annotations

import asyncio
import threading

from farm.recorder import Recorder


def test_records_are_written_in_order_and_each_is_reported_once() -> None:
    async def main() -> tuple[list[int], list[int]]:
        written: list[int] = []
        reported: list[int] = []
        all_reported = asyncio.Event()
        gate = threading.Event()

        def done(keys: list[int]) -> None:
            reported.extend(keys)
            if len(reported) == 50:
                all_reported.set()

        recorder = Recorder(asyncio.get_running_loop(), done)
        recorder.submit(-1, gate.wait)  # holds the thread while the rest queue up: they are written as one batch
        for i in range(49):
            recorder.submit(i, lambda i=i: written.append(i))
        gate.set()
        await asyncio.wait_for(all_reported.wait(), 30)
        recorder.close()
        return written, reported

    written, reported = asyncio.run(main())
    assert written == list(range(49))
    assert sorted(reported) == [-1, *range(49)]


def test_a_record_that_raises_is_reported_and_the_next_is_written() -> None:
    async def main() -> tuple[list[str], list[str]]:
        written: list[str] = []
        reported: list[str] = []
        both = asyncio.Event()

        def done(keys: list[str]) -> None:
            reported.extend(keys)
            if len(reported) == 2:
                both.set()

        def broken() -> None:
            raise OSError("disk full")

        recorder = Recorder(asyncio.get_running_loop(), done)
        recorder.submit("bad", broken)
        recorder.submit("good", lambda: written.append("good"))
        await asyncio.wait_for(both.wait(), 30)
        recorder.close()
        return written, reported

    written, reported = asyncio.run(main())
    assert written == ["good"] and reported == ["bad", "good"]
