"""One shared watch per task, fanned out to every viewer as Server-Sent Events frames.

A channel holds only the latest frame of its task: a viewer that falls behind skips to the
latest state (what a progress bar wants), and any number of viewers cost one watch.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import anyio
import attrs

from .._models.events import TaskEvent
from ..errors import APIConnectionError, EvolinkError, NotFoundError

__all__ = [
    "SSE_HEADERS",
    "Channel",
    "Frame",
    "FrameIds",
    "error_frame",
    "event_frame",
    "heartbeat",
    "parse_last_event_id",
    "retry_frame",
]

#: ``X-Accel-Buffering: no`` keeps nginx from holding frames back until its buffer fills.
SSE_HEADERS = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)


@attrs.frozen
class Frame:
    """One SSE message: ``id``, ``event`` and one line of JSON ``data``; ``final`` ends the stream."""

    id: int
    event: str
    data: str
    final: bool

    def encode(self) -> bytes:
        return f"id: {self.id}\nevent: {self.event}\ndata: {self.data}\n\n".encode()


class FrameIds:
    """Strictly increasing frame ids, from the wall clock in milliseconds.

    From the clock, not from 1: a browser that reconnects after the app restarted (or after its
    task's channel was closed and opened again) sends its last id, and must not have every new
    frame look old to it.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns() // 1_000_000)
        return self._last


def event_frame(event: TaskEvent, frame_id: int) -> Frame:
    data = json.dumps(event.to_dict(), ensure_ascii=True, separators=(",", ":"))
    return Frame(frame_id, event.kind.value, data, event.is_terminal)


def error_frame(error: BaseException, task_id: str, frame_id: int) -> Frame:
    """``event: error`` with a JSON reason: what a page can show instead of an exception in the app."""
    if isinstance(error, NotFoundError):
        reason = "not_found"
    elif isinstance(error, APIConnectionError):
        reason = "unavailable"
    elif isinstance(error, EvolinkError):
        reason = "error"
    else:
        reason = "internal"
    # Only the SDK's own messages (already scrubbed of the key) reach the page; anything else is
    # a bug of this process, and its text stays in the app's log.
    message = str(error)[:500] if isinstance(error, EvolinkError) else "internal error"
    body: dict[str, Any] = {"reason": reason, "task_id": task_id, "message": message}
    return Frame(frame_id, "error", json.dumps(body, ensure_ascii=True, separators=(",", ":")), True)


def retry_frame(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()


def heartbeat() -> bytes:
    # A comment line: EventSource ignores it, and proxies see bytes, so they keep the connection.
    return b": keep-alive\n\n"


class Channel:
    """The latest frame of one task, and a way to wait for the next one."""

    __slots__ = ("_changed", "finished", "latest", "scope", "task_id", "viewers")

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        #: The watch's cancel scope, set once it runs (cancelled when its last viewer left).
        self.scope: anyio.CancelScope | None = None
        self.latest: Frame | None = None
        self.finished = False
        self.viewers = 0
        self._changed = asyncio.Event()

    def publish(self, frame: Frame) -> None:
        self.latest = frame
        if frame.final:
            self.finished = True
        self._wake()

    def finish(self) -> None:
        """No frame will follow (the watch ended, or was stopped)."""
        self.finished = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, seen: int, timeout: float) -> bool:
        """Wait until a frame newer than ``seen`` or the end; False when ``timeout`` passed first."""
        latest = self.latest
        if self.finished or (latest is not None and latest.id > seen):
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True


def parse_last_event_id(value: str | None) -> int:
    """The id a reconnecting EventSource sends back; anything unreadable counts as none."""
    if value is None or not value.isascii() or not value.strip().isdigit() or len(value) > 20:
        return 0
    return int(value.strip())
