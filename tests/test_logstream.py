"""The log handler: lines written on an event loop go out once per loop iteration, in order."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from backline.logstream import LineHandler


class Writes(io.StringIO):
    """A stream that remembers each write it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("t", logging.WARNING, __file__, 1, message, None, None)


async def test_lines_of_one_iteration_are_written_together_at_the_next() -> None:
    stream = Writes()
    handler = LineHandler(stream)
    for n in range(3):
        handler.add(f"line {n}\n")
    assert stream.getvalue() == ""  # kept until the loop goes round
    await asyncio.sleep(0)
    assert stream.writes == ["line 0\nline 1\nline 2\n"]
    handler.add("line 3\n")
    await asyncio.sleep(0)
    assert stream.writes[1:] == ["line 3\n"]


async def test_a_line_from_the_logging_path_comes_after_the_kept_ones() -> None:
    stream = Writes()
    handler = LineHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.add("access 1\n")
    handler.handle(_record("warning"))
    handler.add("access 2\n")
    await asyncio.sleep(0)
    assert stream.getvalue() == "access 1\nwarning\naccess 2\n"


async def test_flush_writes_the_kept_lines_at_once() -> None:
    stream = Writes()
    handler = LineHandler(stream)
    handler.add("kept\n")
    handler.flush()  # as logging.shutdown does at exit, and tests before they read
    assert stream.getvalue() == "kept\n"
    await asyncio.sleep(0)
    assert stream.getvalue() == "kept\n"  # the loop's turn finds nothing more to write


def test_without_a_loop_a_line_is_written_at_once() -> None:
    stream = Writes()
    LineHandler(stream).add("now\n")
    assert stream.getvalue() == "now\n"


async def test_a_thread_writes_at_once_and_after_what_the_loop_kept() -> None:
    stream = Writes()
    handler = LineHandler(stream)
    handler.add("on the loop\n")
    thread = threading.Thread(target=handler.add, args=("from a thread\n",))
    thread.start()
    thread.join()
    assert stream.getvalue() == "on the loop\nfrom a thread\n"
    await asyncio.sleep(0)
    assert stream.getvalue() == "on the loop\nfrom a thread\n"


def test_a_loop_that_never_runs_its_turn_leaves_nothing_stuck() -> None:
    # A line kept for a loop that stopped before its next iteration is written by the next
    # line from elsewhere (and by flush, at exit).
    stream = Writes()
    handler = LineHandler(stream)
    loop = asyncio.new_event_loop()
    try:
        loop.call_soon(lambda: (handler.add("kept\n"), loop.stop()))
        loop.run_forever()  # one iteration: the turn it asked for never comes
    finally:
        loop.close()
    assert stream.getvalue() == ""
    handler.add("later\n")
    assert stream.getvalue() == "kept\nlater\n"


def test_a_broken_stream_loses_the_lines_without_raising() -> None:
    stream = Writes()
    handler = LineHandler(stream)
    stream.close()
    handler.add("lost\n")  # no loop: written at once, to a closed stream
    handler.flush()
