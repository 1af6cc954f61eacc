"""The typed extension slot of ``Task``: what one protocol says about a task beyond the unified
fields (a Midjourney proxy's buttons, prompts and times). A protocol subclasses
:class:`TaskDetails`, fills ``Task.details`` in its parser, and may say what waiting for the
caller (``TaskStatus.REQUIRES_ACTION``) asks of them; nothing above the protocol names its type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..errors import TaskRequiresActionError

if TYPE_CHECKING:
    from .task import Task

__all__ = ["TaskDetails"]


@attrs.frozen(kw_only=True)
class TaskDetails:
    """Base of a protocol's details of a task.

    >>> @attrs.frozen(kw_only=True)
    ... class ToyDetails(TaskDetails):
    ...     queue: str | None = None
    """

    def requires_action_error(self, task: Task) -> TaskRequiresActionError:
        """The error of a task that waits for the caller: ``wait`` raises it, a fan-out's input
        ends with it. Override it to say what to submit."""
        return TaskRequiresActionError(task)
