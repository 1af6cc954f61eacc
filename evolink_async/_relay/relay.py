"""``ProgressRelay``: a task's progress for a browser, as Server-Sent Events, without the API key.

The app signs a token for one task (``relay.token_for(task)``) and hands it to its page; the
page opens ``EventSource(f"/progress/{task_id}?token={token}")``; the relay answers with the
task's events until the terminal one. Every viewer of a task shares one watch.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

import anyio
import anyio.abc

from .._core.checks import MAX_SECONDS, check_count, check_number
from .._core.logging import child_logger
from .._models.task import Task
from ..errors import EvolinkError, ValidationError
from .channels import Channel, FrameIds, error_frame, event_frame, heartbeat, retry_frame
from .tokens import TokenSigner

if TYPE_CHECKING:
    from aiohttp import web

    from .asgi import AsgiRelay

__all__ = ["ProgressRelay", "TaskWatcher"]

# A child logger with the package logger's redaction and structured fields.
log = child_logger("relay")

#: Task ids longer than this are refused before any lookup (the ids of both protocols are short).
_MAX_TASK_ID = 256


class _Tasks(Protocol):
    def stream(
        self,
        task_or_id: Task | str,
        *,
        timeout: float | None = ...,
        progress_every: float | None = ...,
        min_gap: float | None = ...,
    ) -> Any: ...


class TaskWatcher(Protocol):
    """What the relay needs of a client: ``tasks.stream`` (``EvolinkClient`` and ``MidjourneyClient``)."""

    @property
    def tasks(self) -> _Tasks: ...


class ProgressRelay:
    """Serves ``GET /{task_id}?token=...`` as ``text/event-stream`` for pages that show progress.

    - ``token_for(task, ttl=600)`` signs a token good for that task only, until it expires;
    - ``asgi`` (mount it in FastAPI/Starlette) and ``aiohttp_app()`` serve the events: ``id:``
      increasing numbers, ``event:`` the kind (``progress``, ``completed``, ``failed``, ...),
      ``data:`` :meth:`TaskEvent.to_dict` as JSON, heartbeats as comments every ``heartbeat``
      seconds, ``Last-Event-ID`` to resume without repeats, the stream closed after the terminal
      event. A bad or expired token is a 403 before any body; a task the server does not know
      is an ``event: error`` with a JSON ``reason``, never an exception in the app.
    - a watched task is queried every ``progress_every`` seconds (bounded below by the client
      policy's ``min_interval``; ``None``: the economical policy), callbacks or not, and
      ``min_gap`` spaces progress frames (at most one per ``min_gap`` seconds, the latest state).

    The relay owns the watches it shares between viewers: enter it with ``async with`` for as
    long as the app serves (in FastAPI, in the app's lifespan).

    >>> async with evolink.ProgressRelay(client, secret=settings.relay_secret) as relay:
    ...     app.mount("/progress", relay.asgi)
    """

    def __init__(
        self,
        client: TaskWatcher,
        *,
        secret: str | bytes | None = None,
        heartbeat: float = 15.0,
        retry: float = 3.0,
        progress_every: float | None = 1.0,
        min_gap: float | None = None,
        linger: float = 10.0,
        max_viewers: int = 10_000,
    ) -> None:
        if not hasattr(client, "tasks"):
            raise ValidationError("client", "must be an EvolinkClient or MidjourneyClient (it has no .tasks)")
        self._client = client
        self._signer = TokenSigner(secret)
        # Durations up to a year (MAX_SECONDS): ``retry`` goes on the wire as whole milliseconds, and
        # 1e308 s of it was an OverflowError, not the ValidationError every other bad value gets.
        self.heartbeat = check_number("heartbeat", heartbeat, above=True, maximum=MAX_SECONDS)
        self._retry_ms = int(check_number("retry", retry, above=True, maximum=MAX_SECONDS) * 1000)
        self._progress_every = (
            None
            if progress_every is None
            else check_number("progress_every", progress_every, above=True, maximum=MAX_SECONDS)
        )
        self._min_gap = (
            None if min_gap is None else check_number("min_gap", min_gap, above=True, maximum=MAX_SECONDS)
        )
        #: How long a channel outlives its last viewer (a reconnecting page finds it again).
        self._linger = check_number("linger", linger, maximum=MAX_SECONDS)
        self.max_viewers = check_count("max_viewers", max_viewers)
        self._channels: dict[str, Channel] = {}
        self._ids = FrameIds()
        self._viewers = 0
        self._group: anyio.abc.TaskGroup | None = None
        self._asgi: AsgiRelay | None = None

    def __repr__(self) -> str:
        return f"ProgressRelay(channels={len(self._channels)}, viewers={self._viewers})"

    # -- lifetime --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise RuntimeError("this ProgressRelay is already running")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        group.cancel_scope.cancel()
        try:
            await group.__aexit__(exc_type, exc, tb)
        finally:
            for channel in self._channels.values():
                channel.finish()
            self._channels.clear()

    # -- tokens ----------------------------------------------------------------------------

    def token_for(self, task_or_id: Task | str, *, ttl: float = 600.0) -> str:
        """A token that lets a page watch this task (and no other) for ``ttl`` seconds."""
        task_id = task_or_id.id if isinstance(task_or_id, Task) else task_or_id
        return self._signer.sign(task_id, ttl=ttl)

    def authorized(self, task_id: str, token: str | None) -> bool:
        """True when ``token`` was signed by this relay for ``task_id`` and has not expired."""
        if token is None or not task_id or len(task_id) > _MAX_TASK_ID:
            return False
        return self._signer.check(task_id, token)

    # -- the web apps ----------------------------------------------------------------------

    @property
    def asgi(self) -> AsgiRelay:
        """The relay as an ASGI 3 application (``app.mount("/progress", relay.asgi)``)."""
        if self._asgi is None:
            from .asgi import AsgiRelay

            self._asgi = AsgiRelay(self)
        return self._asgi

    def aiohttp_app(self) -> web.Application:
        """The relay as an aiohttp application (``app.add_subapp("/progress/", relay.aiohttp_app())``)."""
        from .aiohttp_app import build_app

        return build_app(self)

    # -- viewers ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._group is not None

    @property
    def full(self) -> bool:
        return self._viewers >= self.max_viewers

    @contextlib.asynccontextmanager
    async def viewer(self, task_id: str, *, last_event_id: int = 0) -> AsyncIterator[AsyncIterator[bytes]]:
        """The bytes of one viewer's event stream (call only after :meth:`authorized`)."""
        if self._group is None:
            raise RuntimeError("enter the ProgressRelay with 'async with' before serving it")
        channel = self._channel(task_id)
        channel.viewers += 1
        self._viewers += 1
        frames = self._frames(channel, last_event_id)
        try:
            yield frames
        finally:
            await frames.aclose()
            channel.viewers -= 1
            self._viewers -= 1
            if channel.viewers == 0 and self._group is not None:
                self._group.start_soon(self._close_when_idle, channel)

    async def _frames(self, channel: Channel, seen: int) -> AsyncGenerator[bytes, None]:
        yield retry_frame(self._retry_ms)
        while True:
            latest = channel.latest
            if latest is not None and latest.id > seen:
                seen = latest.id
                yield latest.encode()
                if latest.final:
                    return
            elif channel.finished:
                return
            elif not await channel.wait(seen, self.heartbeat):
                yield heartbeat()

    def _channel(self, task_id: str) -> Channel:
        channel = self._channels.get(task_id)
        if channel is None:
            channel = self._channels[task_id] = Channel(task_id)
            assert self._group is not None
            self._group.start_soon(self._watch, channel)
        return channel

    async def _watch(self, channel: Channel) -> None:
        task_id = channel.task_id
        with anyio.CancelScope() as channel.scope:
            try:
                stream = self._client.tasks.stream(task_id, progress_every=self._progress_every, min_gap=self._min_gap)
                async with stream as events:
                    async for event in events:
                        channel.publish(event_frame(event, self._ids.next()))
            except Exception as error:  # one task's failure must not end the relay's other channels
                if isinstance(error, EvolinkError):
                    log.info("relay: task %s: %s", task_id, error)
                else:
                    log.exception("relay: watching task %s failed", task_id)
                channel.publish(error_frame(error, task_id, self._ids.next()))
            finally:
                channel.finish()
            # A finished channel stays a while, so a page that reconnects gets the end, not a new watch.
            await anyio.sleep(self._linger)
        self._forget(channel)

    async def _close_when_idle(self, channel: Channel) -> None:
        await anyio.sleep(self._linger)
        if channel.viewers:
            return  # somebody came back
        if channel.finished:
            self._forget(channel)
        elif channel.scope is not None:
            channel.scope.cancel()  # stop the watch: its stream closes, the tracker stops querying

    def _forget(self, channel: Channel) -> None:
        if channel.viewers == 0 and self._channels.get(channel.task_id) is channel:
            del self._channels[channel.task_id]

    @property
    def watching(self) -> int:
        """Tasks with an open channel (one watch each, however many viewers)."""
        return len(self._channels)
