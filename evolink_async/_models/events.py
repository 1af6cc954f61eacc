"""Events: one change in one task, as streams and fan-outs deliver them (pure data)."""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable
from typing import Any

import attrs

from ..errors import TaskCancelledError, TaskFailedError, TaskRequiresActionError
from .task import Task, TaskStatus

__all__ = ["EventKind", "TaskEvent", "error_for", "kind_for", "requires_action_error", "snapshot_event"]


class EventKind(enum.StrEnum):
    """What happened. The last five are terminal: a task (or an input) gets exactly one of them."""

    SUBMITTED = "submitted"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    SUBMIT_FAILED = "submit_failed"

    @property
    def is_terminal(self) -> bool:
        # A set built once: this runs several times per event, and a tuple of two members
        # looked up on the class each time cost more than the rest of the check.
        return self in _TERMINAL_KINDS


_TERMINAL_KINDS = frozenset(EventKind) - {EventKind.SUBMITTED, EventKind.PROGRESS}


_KIND_OF_TERMINAL_STATUS = {
    TaskStatus.COMPLETED: EventKind.COMPLETED,
    TaskStatus.FAILED: EventKind.FAILED,
    TaskStatus.CANCELLED: EventKind.CANCELLED,
}


def kind_for(task: Task) -> EventKind:
    """The event kind that a new snapshot of ``task`` stands for."""
    return _KIND_OF_TERMINAL_STATUS.get(task.status, EventKind.PROGRESS)


def error_for(kind: EventKind, task: Task | None) -> BaseException | None:
    """The error a terminal event of a server-side ending carries, as ``wait()`` would raise it."""
    if task is None:
        return None
    if kind is EventKind.FAILED:
        return TaskFailedError(task)
    if kind is EventKind.CANCELLED:
        return TaskCancelledError(task)
    return None


def requires_action_error(task: Task) -> TaskRequiresActionError:
    """What a task that waits for the caller ends a wait with: its protocol's word where it has one."""
    details = task.details
    return details.requires_action_error(task) if details is not None else TaskRequiresActionError(task)


def snapshot_event(task: Task, *, key: Hashable | None, at: float) -> TaskEvent:
    """The event a new snapshot of ``task`` stands for, with its error when it failed or was cancelled."""
    kind = kind_for(task)
    return TaskEvent(kind=kind, task=task, key=key, at=at, error=error_for(kind, task))


@attrs.frozen(kw_only=True)
class TaskEvent:
    """A change in a task.

    ``task`` is the snapshot after the change (the last one seen, for ``TIMED_OUT``; ``None``
    only for ``SUBMIT_FAILED``). ``key`` identifies the input in a fan-out. ``error`` is set for
    ``SUBMIT_FAILED``, for failures the client detected itself, and for a task that failed or was
    cancelled on the server (a ``TaskFailedError`` / ``TaskCancelledError`` with its code and
    message); on ``TIMED_OUT`` it is the latest query's error when the queries were failing up to
    the deadline, else ``None``. ``at`` is ``time.monotonic()``.
    """

    kind: EventKind
    task: Task | None
    at: float
    key: Hashable | None = None
    error: BaseException | None = attrs.field(default=None, eq=False)

    @property
    def is_terminal(self) -> bool:
        return self.kind.is_terminal

    @property
    def progress(self) -> int:
        return self.task.progress if self.task is not None else 0

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data, for a browser or a log pipeline.

        Keys: ``kind``, ``task_id``, ``status``, ``progress``, ``results`` (result URLs, empty
        until completed), ``error`` (``None`` or ``{"type", "code", "message"}``) and ``key`` (the
        fan-out key when it is a string, a number or ``None``, else its ``str``). The monotonic
        ``at`` is left out: it means nothing outside this process.

        >>> json.dumps(event.to_dict())
        """
        task = self.task
        return {
            "kind": self.kind.value,
            "task_id": task.id if task is not None else None,
            "status": task.status.value if task is not None else None,
            "progress": self.progress,
            "results": list(task.results) if task is not None else [],
            "error": _error_dict(self.error),
            "key": _json_key(self.key),
        }


def _json_key(key: Hashable | None) -> str | int | float | None:
    if key is None or isinstance(key, str | int):
        return key
    if isinstance(key, float) and math.isfinite(key):  # NaN and infinities are not JSON
        return key
    return str(key)


def _error_dict(error: BaseException | None) -> dict[str, Any] | None:
    if error is None:
        return None
    code = getattr(error, "code", None)
    return {
        "type": type(error).__name__,
        "code": code if code is None or isinstance(code, str | int) else str(code),
        "message": str(error),
    }
