"""Finding a button of a finished task by what a person calls it: ``"U2"``, ``"V1"``, ``"🔄"``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..._models.midjourney import MidjourneyButton
from .requests import Action, Change, ChangeAction

__all__ = ["request_for_button"]

_GRID_LABEL = re.compile(r"([UV])([1-4])", re.IGNORECASE)
_REROLL_LABELS = frozenset({"🔄", "R", "REROLL"})


def _find(buttons: Sequence[MidjourneyButton], wanted: str) -> MidjourneyButton | None:
    for button in buttons:
        if wanted in (button.custom_id, button.label) or (button.emoji and button.emoji == wanted):
            return button
    folded = wanted.casefold()
    for button in buttons:
        if button.label and button.label.casefold() == folded:
            return button
    if wanted.upper() in _REROLL_LABELS:
        for button in buttons:
            if "::reroll::" in button.custom_id:
                return button
    return None


def request_for_button(
    task_id: str,
    buttons: Sequence[MidjourneyButton],
    label_or_custom_id: str,
    *,
    state: str | None = None,
) -> Action | Change | None:
    """The request that presses ``label_or_custom_id`` on the task, or ``None`` if it has no such button.

    A ``customId`` (``MJ::...``) is sent as it is. Without buttons (novicezk's proxy sends none),
    the grid labels ``U1``-``U4``, ``V1``-``V4`` and ``🔄`` become a ``submit/change``.
    """
    wanted = label_or_custom_id.strip()
    if wanted.startswith("MJ::"):
        return Action(task=task_id, custom_id=wanted, state=state)
    button = _find(buttons, wanted)
    if button is not None:
        return Action(task=task_id, custom_id=button.custom_id, state=state)
    if buttons:
        return None
    grid = _GRID_LABEL.fullmatch(wanted)
    if grid is not None:
        action = ChangeAction.UPSCALE if grid[1].upper() == "U" else ChangeAction.VARIATION
        return Change(task=task_id, action=action, index=int(grid[2]), state=state)
    if wanted.upper() in _REROLL_LABELS:
        return Change(task=task_id, action=ChangeAction.REROLL, state=state)
    return None
