"""What every client shares: the ``async with`` (the tracker runs while the block runs, the session
closes after) and its read-only properties."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

import aiohttp

from .._core.config import ClientConfig
from .._core.telemetry import Telemetry
from .._core.transport import Transport
from .._protocols.traced import TaskSpans
from .._watching.tracker import Tracker

__all__ = ["TrackerLifecycle"]



class TrackerLifecycle:
    """``aclose``, ``__aenter__`` and ``__aexit__`` of a ``Client``.

    A client sets ``_transport``, ``_tracker``, ``_tracker_task = None`` and ``_owns_tracker``
    (False for a ``with_options`` view, which shares the original's tracker).
    """

    #: The name of the asyncio task running the tracker (seen in task dumps and debuggers).
    tracker_task_name: str = "evolink-tracker"

    _config: ClientConfig
    _transport: Transport
    _tracker: Tracker
    _tracker_task: asyncio.Task[None] | None
    _owns_tracker: bool
    #: The open task spans (None: telemetry off); shared by ``with_options`` views.
    _task_spans: TaskSpans | None = None

    def _hook_telemetry(self, spans: TaskSpans | None, *, hook_tracker: bool = True) -> None:
        """Let the tracker feed pushed callbacks and dropped progress events to telemetry
        (``hook_tracker=False``: a view, whose original hooked the shared tracker already)."""
        self._task_spans = spans
        if spans is not None and hook_tracker:
            tracker = self._tracker
            tracker.on_push = lambda task: spans.observe(task, pushed=True)
            tracker.on_event_dropped = spans.telemetry.event_dropped

    @property
    def telemetry(self) -> Telemetry | None:
        """This client's OpenTelemetry hooks (``None``: off), for layers above that open spans of
        their own around its work (a batch run, a fleet worker)."""
        return self._transport.telemetry

    @property
    def tracker(self) -> Tracker:
        """The scheduler watching this client's tasks (``push`` parsed callback bodies into it)."""
        return self._tracker

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session this client sends through (yours, if you passed ``session=``).

        For downloads from result hosts; the API key is added per request, never to the session.
        """
        return self._transport.session

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def config(self) -> ClientConfig:
        return self._config

    async def aclose(self) -> None:
        """Close the session (unless it was passed in by the caller)."""
        if self._owns_tracker and self._task_spans is not None:
            self._task_spans.close()  # spans of tasks not seen ended: status "unknown"
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
        self._tracker_task = asyncio.create_task(self._tracker.run(), name=self.tracker_task_name)
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
