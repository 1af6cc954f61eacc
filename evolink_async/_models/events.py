"""Events: one change in one task, as streams and fan-outs deliver them (pure data)."""

from __future__ import annotations

import enum
from collections.abc import Hashable

import attrs

from .task import Task, TaskStatus

__all__ = ["EventKind", "TaskEvent"]


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
        return self not in (EventKind.SUBMITTED, EventKind.PROGRESS)


_KIND_OF_TERMINAL_STATUS = {
    TaskStatus.COMPLETED: EventKind.COMPLETED,
    TaskStatus.FAILED: EventKind.FAILED,
    TaskStatus.CANCELLED: EventKind.CANCELLED,
}


def kind_for(task: Task) -> EventKind:
    """The event kind that a new snapshot of ``task`` stands for."""
    return _KIND_OF_TERMINAL_STATUS.get(task.status, EventKind.PROGRESS)


@attrs.frozen(kw_only=True)
class TaskEvent:
    """A change in a task.

    ``task`` is the snapshot after the change (the last one seen, for ``TIMED_OUT``; ``None``
    only for ``SUBMIT_FAILED``). ``key`` identifies the input in a fan-out. ``error`` is set for
    ``SUBMIT_FAILED`` and for failures the client detected itself. ``at`` is ``time.monotonic()``.
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
