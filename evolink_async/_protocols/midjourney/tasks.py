"""A Midjourney proxy's task body -> the unified ``Task`` (liberal in what it accepts).

- ``SUCCESS`` -> completed, results ``(imageUrl,)`` (or every ``imageUrls`` entry). Success is
  decided by status alone: a gateway sends ``"100%"`` on failures too.
- ``FAILURE`` / ``FAILED`` -> failed, ``failReason`` as the message; trueai's cancel is a FAILURE
  with reason "取消任务", so that one (and ``CANCEL``) -> cancelled.
- ``NOT_START``, ``SUBMITTED``, ``""`` -> pending; ``IN_PROGRESS`` -> processing; ``MODAL`` ->
  ``TaskStatus.REQUIRES_ACTION``; anything else -> ``UNKNOWN`` (watched on).
- ``progress``: null, ``""``, ``"31%"`` or free text (novicezk stores "Waiting to start") -> 0-100.
- ids arrive as int or str -> str; the body is kept whole in ``Task.raw``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..._models.midjourney import MIDJOURNEY_OBJECT, midjourney_details
from ..._models.task import Task, TaskError, TaskInfo, TaskStatus
from ...errors import ResponseFormatError

__all__ = ["parse_id", "parse_progress", "parse_status", "state_of", "structure_mj_task"]

_STATUS = {
    "SUCCESS": TaskStatus.COMPLETED,
    "FAILURE": TaskStatus.FAILED,
    "FAILED": TaskStatus.FAILED,
    "CANCEL": TaskStatus.CANCELLED,
    "CANCELLED": TaskStatus.CANCELLED,
    "CANCELED": TaskStatus.CANCELLED,
    "NOT_START": TaskStatus.PENDING,
    "SUBMITTED": TaskStatus.PENDING,
    "": TaskStatus.PENDING,
    "IN_PROGRESS": TaskStatus.PROCESSING,
    "MODAL": TaskStatus.REQUIRES_ACTION,
}
# trueai's ``task/{id}/cancel`` fails the task with this reason instead of setting CANCEL.
_CANCEL_REASONS = frozenset({"取消任务"})
# Reasons that mean the prompt or image was refused: the caller must change the request.
_BANNED_MARKERS = ("敏感词", "banned", "Banned prompt", "moderation")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_TIMEOUT_MARKERS = ("超时", "timed out", "timeout")


def parse_id(value: Any) -> str | None:
    """A task id from the wire (int or str; a list or comma-joined string: its first id)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return parse_id(value[0]) if value else None
    if isinstance(value, str):
        first = value.split(",", 1)[0].strip()
        return first or None
    return None


def parse_status(value: Any, fail_reason: Any = None) -> TaskStatus:
    """The unified status of a proxy status word (``None`` counts as ``""``: not started yet)."""
    word = "" if value is None else str(value).strip().upper()
    status = _STATUS.get(word, TaskStatus.UNKNOWN)
    if status is TaskStatus.FAILED and isinstance(fail_reason, str) and fail_reason.strip() in _CANCEL_REASONS:
        return TaskStatus.CANCELLED
    return status


def parse_progress(value: Any) -> int:
    """``"31%"`` -> 31; null, ``""`` and text without a number -> 0; clamped to 0-100."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return max(0, min(100, value))  # no float(): 10**400 would overflow it
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        match = _PERCENT.search(value) or _NUMBER.fullmatch(value.strip())
        if match is None:
            return 0
        number = float(match.group(1) if match.re is _PERCENT else match.group(0))
    else:
        return 0
    if not math.isfinite(number):
        return 0
    return max(0, min(100, int(number)))


def _results(body: Mapping[str, Any]) -> tuple[str, ...]:
    urls: list[str] = []
    many = body.get("imageUrls")
    if isinstance(many, list):
        for item in many:
            url = item.get("url") if isinstance(item, Mapping) else item
            if isinstance(url, str) and url and url not in urls:
                urls.append(url)
    single = body.get("imageUrl")
    if isinstance(single, str) and single and single not in urls:
        urls.insert(0, single)
    return tuple(urls)


def _error(status: TaskStatus, reason: Any) -> TaskError | None:
    if status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        return None
    message = str(reason).strip() if reason not in (None, "") else "the Midjourney proxy gave no reason"
    if status is TaskStatus.CANCELLED:
        code: str | None = "request_cancelled"
    elif any(marker in message for marker in _BANNED_MARKERS):
        code = "content_policy_violation"
    elif any(marker in message for marker in _TIMEOUT_MARKERS):
        code = "generation_timeout"
    else:
        code = None
    return TaskError(code=code, message=message)


# Epoch milliseconds up to the year 9999: anything larger is nonsense from a server, and as a
# Python int would only fail later (``math.isfinite(10**400)`` raises OverflowError).
_MAX_EPOCH_MS = 253_402_300_800_000


def _seconds(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < _MAX_EPOCH_MS:
        return None  # NaN fails the comparison too
    return int(value) // 1000


def structure_mj_task(body: object, *, request_id: str | None = None) -> Task:
    """Parse one task body from ``task/{id}/fetch``, ``list-by-condition`` or a notify hook."""
    if not isinstance(body, Mapping):
        kind = type(body).__name__
        raise ResponseFormatError(f"expected a Midjourney task object, got {kind}", request_id=request_id)
    task_id = parse_id(body.get("id"))
    if task_id is None:
        raise ResponseFormatError("Midjourney task body has no usable 'id'", request_id=request_id)
    reason = body.get("failReason")
    status = parse_status(body.get("status"), reason)
    progress = 100 if status is TaskStatus.COMPLETED else parse_progress(body.get("progress"))
    action = body.get("action")
    return Task(
        id=task_id,
        status=status,
        progress=progress,
        created=_seconds(body.get("submitTime")),
        # A preview imageUrl is sent while in progress: only a SUCCESS has results.
        results=_results(body) if status is TaskStatus.COMPLETED else (),
        task_info=TaskInfo(can_cancel=None),
        error=_error(status, reason),
        type=str(action) if isinstance(action, str) else None,
        object=MIDJOURNEY_OBJECT,
        details=midjourney_details(body),
        raw=body,
    )


def state_of(task: Task) -> str | None:
    """The ``state`` a Midjourney task carries of the submit that made it (None when absent)."""
    raw = task.raw
    state = raw.get("state") if isinstance(raw, Mapping) else None
    return state if isinstance(state, str) else None
