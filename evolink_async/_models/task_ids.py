"""Task ids: one safe path segment, whether the caller gives it or the server sends it.

An id goes into a URL path (``GET /v1/tasks/{id}``): ``..`` would query ``/v1/``, ``a/b`` another
resource. Known servers send ``task-unified-...`` (Evolink) or digits (Midjourney proxies), so
the allowed alphabet is narrow; anything else is refused before a request is made.
"""

from __future__ import annotations

import re

from ..errors import ValidationError
from .task import Task

__all__ = ["MAX_TASK_ID_CHARS", "is_safe_task_id", "task_id_of"]

MAX_TASK_ID_CHARS = 256
# One pattern for every rule (it runs for every answer): the alphabet, the length, and not dots
# alone ("." and ".." are path steps, not names).
_SAFE_ID = re.compile(rf"(?!\.+\Z)[A-Za-z0-9._~:-]{{1,{MAX_TASK_ID_CHARS}}}")


def is_safe_task_id(task_id: object) -> bool:
    return isinstance(task_id, str) and _SAFE_ID.fullmatch(task_id) is not None


def task_id_of(task_or_id: Task | str) -> str:
    """The id of a task given as a ``Task`` or its id, checked to be one safe path segment."""
    task_id = task_or_id.id if isinstance(task_or_id, Task) else task_or_id
    if not isinstance(task_id, str):
        raise ValidationError("task_id", f"must be a Task or a string, got {type(task_id).__name__}")
    if not is_safe_task_id(task_id):
        raise ValidationError(
            "task_id",
            f"must be 1-{MAX_TASK_ID_CHARS} characters of letters, digits and . _ ~ : - (not '.' or '..')",
        )
    return task_id
