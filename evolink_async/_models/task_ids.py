"""Task ids as the caller gives them: a ``Task`` or its id, checked to be one safe path segment."""

from __future__ import annotations

import re

from ..errors import ValidationError
from .task import Task

__all__ = ["task_id_of"]

_UNSAFE_IN_ID = re.compile(r"[/?#\x00-\x1f]")


def task_id_of(task_or_id: Task | str) -> str:
    """The id of a task given as a ``Task`` or its id, checked to be a usable path segment."""
    task_id = task_or_id.id if isinstance(task_or_id, Task) else task_or_id
    if not isinstance(task_id, str) or not task_id.strip():
        raise ValidationError("task_id", "must be a non-empty string")
    if _UNSAFE_IN_ID.search(task_id):
        raise ValidationError("task_id", "must not contain '/', '?', '#' or control characters")
    return task_id
