"""The handler every log line goes out through, and how lines written on an event loop are
joined into one write per loop iteration.

`backline.logging.write_event` (the access log: one line per request) hands its rendered line
to `LineHandler.add`. On a running event loop the line is kept, and the loop is asked, once,
to write everything kept at its next iteration: a server finishing several requests in one
iteration makes one write (and, on standard error, which is line-buffered, one system call)
instead of one per line. Elsewhere (no loop, or another loop's write already pending) the
line is written at once.

Order is kept: a line from the ordinary logging path (`emit`, any thread) first writes what is
kept, under the handler's lock. Nothing is held past the iteration that wrote it, and `flush`
(which `logging.shutdown` calls at exit, and tests call before reading) writes what is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TextIO


class LineHandler(logging.StreamHandler[TextIO]):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._kept: list[str] = []
        self._draining: asyncio.AbstractEventLoop | None = None  # whose write is pending

    def add(self, line: str) -> None:
        """Write one rendered line (with its terminator) by the next loop iteration."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            self._kept.append(line)
            if loop is None or (self._draining is not None and self._draining is not loop):
                self._write_kept()  # no loop, or another's turn pending: write at once
                return
            if self._draining is loop:
                return  # this loop writes them at its next iteration
            self._draining = loop
        loop.call_soon(self._drain)

    def _drain(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._draining = None
            self._write_kept()
            super().flush()

    def _write_kept(self) -> None:
        """Write what is kept, in order (the lock is held)."""
        if self._kept:
            text = "".join(self._kept)
            self._kept.clear()
            # A closed or broken stream loses these lines, as `emit` loses its one.
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(text)

    def emit(self, record: logging.LogRecord) -> None:
        self._write_kept()  # `Handler.handle` holds the lock
        super().emit(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_kept()
            super().flush()
