"""The ``async with`` of a client: the tracker runs while the block runs, the session closes after."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import ClassVar, Self

from .._core.transport import Transport
from .._watching.tracker import Tracker

__all__ = ["TrackerLifecycle"]


class TrackerLifecycle:
    """``aclose``, ``__aenter__`` and ``__aexit__`` shared by ``EvolinkClient`` and ``MidjourneyClient``.

    A client sets ``_transport``, ``_tracker``, ``_tracker_task = None`` and ``_owns_tracker``
    (False for a ``with_options`` view, which shares the original's tracker).
    """

    #: The name of the asyncio task running the tracker (seen in task dumps and debuggers).
    TRACKER_TASK_NAME: ClassVar[str] = "evolink-tracker"

    _transport: Transport
    _tracker: Tracker
    _tracker_task: asyncio.Task[None] | None
    _owns_tracker: bool

    async def aclose(self) -> None:
        """Close the session (unless it was passed in by the caller)."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        """Start the tracker; it runs until the ``async with`` block ends."""
        if not self._owns_tracker:
            return self  # a ``with_options`` view: the original client runs the tracker
        if self._tracker_task is not None:
            raise RuntimeError("this client is already entered")
        # A plain asyncio task rather than an anyio task group: pytest-asyncio fixtures (and some
        # frameworks' lifespans) enter and exit in different tasks, which a task group forbids.
        # The ``async with`` still bounds its life: __aexit__ cancels and awaits it.
        self._tracker.open()
        self._tracker_task = asyncio.create_task(self._tracker.run(), name=self.TRACKER_TASK_NAME)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._tracker_task = self._tracker_task, None
        try:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self._tracker.close()
        finally:
            await self.aclose()
