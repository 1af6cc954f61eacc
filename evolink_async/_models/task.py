"""Response types: the server's view of a task (pure data, no I/O)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from .midjourney import MIDJOURNEY_OBJECT, MidjourneyDetails, midjourney_details

__all__ = ["NOT_RETRYABLE_CODES", "ResultItem", "Task", "TaskError", "TaskInfo", "TaskStatus", "Usage"]


class TaskStatus(enum.StrEnum):
    """Where a task is in its life. ``UNKNOWN`` stands for any status this SDK does not know yet."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: A Midjourney task waiting for a ``Modal(...)`` submit (remix, custom zoom, vary region):
    #: not terminal, but it will not move on by itself.
    MODAL = "modal"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """True once the task will not change any more."""
        return self in _TERMINAL

    @classmethod
    def parse(cls, value: object) -> TaskStatus:
        """Map a wire value onto a member; anything unrecognised becomes ``UNKNOWN``."""
        if isinstance(value, str):
            member = _STATUS_BY_WIRE.get(value)
            if member is not None:
                return member
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        return cls.UNKNOWN


# Exact wire values, looked up before the slower Enum call: parse runs once per query.
_STATUS_BY_WIRE = {member.value: member for member in TaskStatus}
_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

# Evolink's own table of task-level error codes (API.md A6): these mean "fix the input" and fail
# the same way when submitted again. Every other code, known or not, is the server's problem and
# may succeed later (their table marks the rest retryable and falls back to ``unknown_error``).
NOT_RETRYABLE_CODES = frozenset(
    {
        "content_policy_violation",
        "invalid_parameters",
        "image_dimension_mismatch",
        "image_processing_error",
        "request_cancelled",
        "resource_not_found",
    }
)


@attrs.frozen(kw_only=True)
class TaskError:
    """Why a task failed. ``code`` is always a string (the wire sometimes sends an integer)."""

    code: str | None = None
    message: str = ""
    suggestion: str | None = None

    @property
    def retryable(self) -> bool:
        """True when submitting the same request again later may succeed (Evolink's table, API.md A6;
        an unknown code is retryable)."""
        return self.code not in NOT_RETRYABLE_CODES


@attrs.frozen(kw_only=True)
class ResultItem:
    """One entry of ``result_data[]`` (API.md A6): a typed view of a result beside ``results``.

    Image tasks carry ``image_url``; video and audio tasks ``video_url`` / ``audio_url``, with a
    ``title`` and a ``duration`` in seconds. ``raw`` keeps the whole object, unknown fields
    included (``result_id``, ``tags``, ``stream_audio_url``, ...).
    """

    image_url: str | None = None
    video_url: str | None = None
    audio_url: str | None = None
    title: str | None = None
    duration: float | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False, hash=False)

    @property
    def url(self) -> str | None:
        """Whichever of the three URLs the item has (image first)."""
        return self.image_url or self.video_url or self.audio_url


@attrs.frozen(kw_only=True)
class TaskInfo:
    """Scheduling hints from the server; ``estimated_time`` is in seconds."""

    can_cancel: bool | None = None
    estimated_time: float | None = None


@attrs.frozen(kw_only=True)
class Usage:
    """What the task costs. Credits are reserved at submit."""

    billing_rule: str | None = None
    credits_reserved: float | None = None
    credits_used: float | None = None
    estimated_cost: float | None = None
    user_group: str | None = None


@attrs.frozen(kw_only=True)
class Task:
    """One snapshot of a task. ``raw`` holds the whole body as received, unknown fields included.

    ``results`` are the output image URLs, present once ``status`` is completed; they expire
    24 hours after completion, so download them promptly. ``result_data`` is the same outcome as
    typed items, when the server sends ``result_data[]`` (empty otherwise).
    """

    id: str
    status: TaskStatus
    model: str | None = None
    progress: int = 0
    created: int | None = None
    results: tuple[str, ...] = ()
    result_data: tuple[ResultItem, ...] = ()
    task_info: TaskInfo = attrs.field(factory=TaskInfo)
    usage: Usage | None = None
    error: TaskError | None = None
    type: str | None = None
    object: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False, hash=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in _TERMINAL

    @property
    def estimated_time(self) -> float | None:
        return self.task_info.estimated_time

    @property
    def midjourney(self) -> MidjourneyDetails | None:
        """The Midjourney-proxy fields of a task from ``MidjourneyClient`` (buttons, prompts, state,
        times); ``None`` for other tasks."""
        return midjourney_details(self.raw) if self.object == MIDJOURNEY_OBJECT else None
