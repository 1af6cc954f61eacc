"""Running a command's coroutine so that Ctrl-C always ends the process within seconds.

``asyncio.run`` turns Ctrl-C into ``KeyboardInterrupt`` after cancelling the main task, then
waits, unbounded, for every other task, async generator and the default executor; and the
interpreter then joins every non-daemon thread, such as an AnyIO worker blocked in SQLite or
file I/O. Either can keep a process alive long after the user asked it to stop.

Here the first Ctrl-C (SIGINT) cancels the main task once: the batch's ``finally`` blocks run,
the summary is printed, the journal is closed (each of its commits is atomic, so it is always
consistent). A second Ctrl-C, or the first one's grace period running out, ends the process at
once with exit code 130 after ``on_force`` (stop the live view, print the resume hint).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ._exit_codes import EXIT_INTERRUPTED

__all__ = ["Runner", "exit_promptly", "flush_output"]

_CLEANUP_BOUND = 3.0  # seconds the loop's own clean-up may take once the command has ended


class Runner:
    """Runs one coroutine on a new event loop; see the module docstring for what Ctrl-C does.

    >>> code = Runner(on_force=lambda: None).run(command(args, reporter))
    """

    def __init__(self, *, on_force: Callable[[], None], grace: float = 8.0) -> None:
        self._on_force = on_force
        self._grace = grace
        self._task: asyncio.Task[int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The exit code asked for by ``stop`` (Ctrl-C: 130), or None.
        self.stop_code: int | None = None
        self.presses = 0

    @property
    def interrupted(self) -> bool:
        return self.stop_code is not None

    def stop(self, code: int = EXIT_INTERRUPTED) -> None:
        """Cancel the command once (from the loop's thread), e.g. when stdout was closed."""
        if self.stop_code is not None or self._task is None or self._loop is None:
            return
        self.stop_code = code
        self._task.cancel()
        self._loop.call_later(self._grace, self.force)

    def force(self) -> None:
        """End the process now (exit 130), after ``on_force``; the journal needs nothing more."""
        try:
            self._on_force()
        finally:
            flush_output()
            os._exit(self.stop_code if self.stop_code is not None else EXIT_INTERRUPTED)

    def _on_sigint(self) -> None:
        self.presses += 1
        if self.presses == 1:
            self.stop(EXIT_INTERRUPTED)
        else:
            self.force()

    def run(self, coroutine: Coroutine[Any, Any, int]) -> int:
        loop = self._loop = asyncio.new_event_loop()
        task = self._task = loop.create_task(coroutine)
        handled = False
        # Given back afterwards (asyncio would put Python's default, KeyboardInterrupt, in its place).
        previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread():
            try:
                loop.add_signal_handler(signal.SIGINT, self._on_sigint)
                handled = True
            except (NotImplementedError, RuntimeError, ValueError):  # Windows: KeyboardInterrupt as usual
                pass
        try:
            try:
                result = loop.run_until_complete(task)
            except asyncio.CancelledError:
                if self.stop_code is None:
                    raise
                return self.stop_code
            except KeyboardInterrupt:
                self.stop_code = EXIT_INTERRUPTED
                return EXIT_INTERRUPTED
            return self.stop_code if self.stop_code is not None else result
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGINT)
                if previous is not None:  # None: a handler set outside Python, which cannot be put back
                    signal.signal(signal.SIGINT, previous)
            _close(loop)
            self._loop = self._task = None


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left and close the loop, in bounded time; never wait for the executor's threads."""
    try:
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=_CLEANUP_BOUND))
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), _CLEANUP_BOUND))
    except (Exception, KeyboardInterrupt):  # noqa: S110 - clean-up is best effort; the exit code stands
        pass
    finally:
        loop.close()


def flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # RuntimeError: reentrant, from a signal handler
            stream.flush()


def exit_promptly(code: int, *, bound: float = 2.0) -> int:
    """Return ``code``, or end the process with it if a worker thread would hold the exit past ``bound``.

    An AnyIO worker thread blocked in file or SQLite I/O is not a daemon: the interpreter would
    wait for it at exit. Only for the process's own ``main()``, never in a library call.
    """
    deadline = time.monotonic() + bound
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            flush_output()
            os._exit(code)
    return code
