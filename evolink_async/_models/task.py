"""Response types: the server's view of a task (pure data, no I/O)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from .details import TaskDetails
from .midjourney import MIDJOURNEY_OBJECT, MidjourneyDetails, midjourney_details

__all__ = ["NOT_RETRYABLE_CODES", "ResultItem", "Task", "TaskDetails", "TaskError", "TaskInfo", "TaskStatus", "Usage"]


class TaskStatus(enum.StrEnum):
    """Where a task is in its life. ``UNKNOWN`` stands for any status this SDK does not know yet."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Waiting for the caller: not terminal, but it will not move on by itself (a Midjourney task
    #: in ``MODAL`` waits for a ``Modal(...)`` submit: remix, custom zoom, vary region).
    REQUIRES_ACTION = "requires_action"
    #: The earlier name of ``REQUIRES_ACTION``: the same member.
    MODAL = "requires_action"
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
            member = _STATUS_BY_WIRE.get(value.strip().lower())
            if member is not None:
                return member
        return cls.UNKNOWN


# Exact wire values, looked up before the slower Enum call: parse runs once per query. ("modal" is
# what this SDK called ``REQUIRES_ACTION`` before, in journals and event dicts.)
_STATUS_BY_WIRE = {member.value: member for member in TaskStatus} | {"modal": TaskStatus.REQUIRES_ACTION}
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
    typed items, when the server sends ``result_data[]`` (empty otherwise). ``details`` is what a
    protocol says beyond these fields, typed by that protocol (``midjourney`` is its typed view
    for a Midjourney proxy's tasks); ``None`` where the protocol has nothing more.
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
    # Derived from ``raw`` by the protocol's parser: compared and hashed through ``raw``'s fields.
    details: TaskDetails | None = attrs.field(default=None, eq=False, repr=False, hash=False)
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
        times): ``details`` as its type; ``None`` for other tasks."""
        details = self.details
        if isinstance(details, MidjourneyDetails):
            return details
        # A task built by hand (``Task(object="midjourney.task", raw=...)``) has no details yet.
        return midjourney_details(self.raw) if self.object == MIDJOURNEY_OBJECT else None
