"""An event loop on a virtual clock: when nothing is ready, time jumps to the next timer.

Timer behaviour (how many callbacks, when each job ran) becomes exact and independent of how
loaded the machine is: no wall-clock time passes while the loop "waits". Only for code that
waits on timers and futures alone; a wait on real I/O with no timer raises instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["VirtualTimeLoop", "run_virtual"]


class _SkippingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        self._loop.iterations += 1
        if not events and timeout is None:
            raise RuntimeError("the virtual-time loop would wait for ever (no timer, no ready I/O)")
        if not events and timeout > 0:
            self._loop.now += timeout
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` is virtual; ``iterations`` counts the loop's trips through its selector."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.iterations = 0
        super().__init__(_SkippingSelector(self))

    def time(self) -> float:
        return self.now


def run_virtual(main: Callable[[VirtualTimeLoop], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(loop)`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        return runner.run(main(loop))
