"""How a batch records an input's failure: a short machine-readable code and a message."""

from __future__ import annotations

import anyio

from .._models.events import TaskEvent
from ..errors import (
    DownloadError,
    DuplicateTaskError,
    NotSubmittedError,
    QueueFullError,
    ValidationError,
    may_have_been_billed,
    was_refused_for_now,
)

__all__ = ["error_code", "error_message", "first_cause", "stays_pending", "task_error"]


def stays_pending(error: BaseException) -> bool:
    """A submit (or upload) error after which the input stays pending and is tried again with the
    same idempotency key, by a re-run or another worker: the submit may have reached the server, or
    was refused for sure with nothing created. Any other error fails the input for good, and so
    does a submit answered with another input's task (``DuplicateTaskError``): sent again with the
    same key, it would get the same confused answer; ``retry_failed`` sends it with a new key."""
    if isinstance(error, DuplicateTaskError):
        return False
    return may_have_been_billed(error) or was_refused_for_now(error)


def error_code(error: BaseException) -> str:
    code = getattr(error, "code", None)
    if isinstance(error, ValidationError):
        return "invalid_input"
    if isinstance(error, DownloadError):
        return f"download_{error.reason}"
    if isinstance(error, NotSubmittedError):
        return "not_submitted"
    if isinstance(error, QueueFullError):
        return "queue_full"
    return str(code) if code else type(error).__name__


def error_message(error: BaseException) -> str:
    if isinstance(error, NotSubmittedError | QueueFullError):
        return f"{error}; it stays pending: a re-run submits it"
    return str(getattr(error, "message", None) or error)


def task_error(event: TaskEvent) -> tuple[str, str]:
    task = event.task
    if task is not None and task.error is not None:
        return task.error.code or "failed", task.error.message or "the task failed"
    if event.error is not None:
        return error_code(event.error), error_message(event.error)
    return event.kind.value, f"the task ended {event.kind.value}"


def first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that stopped a run, out of the task groups' tree: the first that is not a
    cancellation (one cause, a wrong key or a full disk, reads better than a tree)."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop(0)
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        else:
            leaves.append(error)
    for leaf in leaves:
        if not isinstance(leaf, anyio.get_cancelled_exc_class()):
            return leaf
    return leaves[0] if leaves else group
