"""The Midjourney-proxy view of a task: buttons, prompts, ``state`` and times (pure data).

``Task.midjourney`` builds it from the body the proxy sent (kept in ``Task.raw``), so the
unified ``Task`` stays one type for every protocol while nothing the proxy says is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import TaskNeedsModalError
from .details import TaskDetails

if TYPE_CHECKING:
    from .task import Task

__all__ = ["MIDJOURNEY_OBJECT", "MidjourneyButton", "MidjourneyDetails", "midjourney_details"]

#: ``Task.object`` of every task a Midjourney proxy reported.
MIDJOURNEY_OBJECT = "midjourney.task"


@attrs.frozen(kw_only=True)
class MidjourneyButton:
    """One button of a finished task; ``custom_id`` is what ``submit/action`` takes.

    >>> MidjourneyButton(custom_id="MJ::JOB::upsample::2::abc", label="U2")
    """

    custom_id: str
    label: str = ""
    emoji: str = ""
    type: int | None = None
    style: int | None = None


@attrs.frozen(kw_only=True)
class MidjourneyDetails(TaskDetails):
    """What a Midjourney proxy says about a task beyond the unified ``Task`` fields (``Task.details``).

    Times are epoch milliseconds (``None`` when the proxy sent null or 0). ``status`` is the
    proxy's own word (``SUCCESS``, ``MODAL``, ...); ``properties`` its extension block.
    """

    action: str | None = None
    status: str | None = None
    prompt: str | None = None
    prompt_en: str | None = None
    description: str | None = None
    state: str | None = None
    submit_time: int | None = None
    start_time: int | None = None
    finish_time: int | None = None
    image_url: str | None = None
    fail_reason: str | None = None
    buttons: tuple[MidjourneyButton, ...] = ()
    properties: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def final_prompt(self) -> str | None:
        value = self.properties.get("finalPrompt")
        return value if isinstance(value, str) else None

    def requires_action_error(self, task: Task) -> TaskNeedsModalError:
        return TaskNeedsModalError(task)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else (None if value is None else str(value))


def _millis(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number > 0 else None


def _button(value: Any) -> MidjourneyButton | None:
    if not isinstance(value, Mapping):
        return None
    custom_id = value.get("customId")
    if not isinstance(custom_id, str) or not custom_id:
        return None
    kind, style = value.get("type"), value.get("style")
    return MidjourneyButton(
        custom_id=custom_id,
        label=_text(value.get("label")) or "",
        emoji=_text(value.get("emoji")) or "",
        type=kind if isinstance(kind, int) and not isinstance(kind, bool) else None,
        style=style if isinstance(style, int) and not isinstance(style, bool) else None,
    )


def midjourney_details(raw: Mapping[str, Any]) -> MidjourneyDetails:
    """Read the proxy's task body leniently: wrong types become ``None``, bad buttons are skipped."""
    buttons = raw.get("buttons")
    properties = raw.get("properties")
    return MidjourneyDetails(
        action=_text(raw.get("action")),
        status=_text(raw.get("status")),
        prompt=_text(raw.get("prompt")),
        prompt_en=_text(raw.get("promptEn")),
        description=_text(raw.get("description")),
        state=_text(raw.get("state")),
        submit_time=_millis(raw.get("submitTime")),
        start_time=_millis(raw.get("startTime")),
        finish_time=_millis(raw.get("finishTime")),
        image_url=_text(raw.get("imageUrl")),
        fail_reason=_text(raw.get("failReason")),
        buttons=tuple(b for b in map(_button, buttons) if b is not None) if isinstance(buttons, list) else (),
        properties=dict(properties) if isinstance(properties, Mapping) else {},
    )
