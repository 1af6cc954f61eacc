"""Buttons of finished MJ tasks, and what a ``customId`` does when ``submit/action`` sends it back.

Grid buttons are the ones relayed from Discord (new-api issue #144): ``U1``-``U4``, the 🔄 reroll
and ``V1``-``V4``, each ``{"customId", "emoji", "label", "type": 2, "style": 2}`` with the job's
hash in the customId. An upscale gets trueai's synthesized v7 set (upscale subtle/creative, vary
subtle/strong/region, zoom out 2x/1.5x, custom zoom, four pans, reroll); a describe gets its
four "imagine this prompt" buttons and a retry.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["ActionTarget", "GRID_ACTIONS", "buttons_for", "parse_custom_id"]

#: Actions whose result is a 2x2 grid (anything else that makes an image makes a single one).
GRID_ACTIONS = frozenset({"IMAGINE", "BLEND", "VARIATION", "REROLL", "ZOOM", "PAN"})


def _button(custom_id: str, label: str = "", emoji: str = "") -> dict[str, Any]:
    return {"customId": custom_id, "emoji": emoji, "label": label, "type": 2, "style": 2}


def _grid(job: str) -> list[dict[str, Any]]:
    upscales = [_button(f"MJ::JOB::upsample::{i}::{job}", f"U{i}") for i in range(1, 5)]
    reroll = _button(f"MJ::JOB::reroll::0::{job}::SOLO", emoji="🔄")
    variations = [_button(f"MJ::JOB::variation::{i}::{job}", f"V{i}") for i in range(1, 5)]
    return [*upscales, reroll, *variations]


def _upscaled(job: str) -> list[dict[str, Any]]:
    return [
        _button(f"MJ::JOB::upsample_v7_2x_subtle::1::{job}::SOLO", "Upscale (Subtle)"),
        _button(f"MJ::JOB::upsample_v7_2x_creative::1::{job}::SOLO", "Upscale (Creative)"),
        _button(f"MJ::JOB::low_variation::1::{job}::SOLO", "Vary (Subtle)"),
        _button(f"MJ::JOB::high_variation::1::{job}::SOLO", "Vary (Strong)"),
        _button(f"MJ::Inpaint::1::{job}::SOLO", "Vary (Region)", "🖌️"),
        _button(f"MJ::Outpaint::50::1::{job}::SOLO", "Zoom Out 2x", "🔍"),
        _button(f"MJ::Outpaint::75::1::{job}::SOLO", "Zoom Out 1.5x", "🔍"),
        _button(f"MJ::CustomZoom::1::{job}", "Custom Zoom", "🔍"),
        _button(f"MJ::JOB::pan_left::1::{job}::SOLO", emoji="⬅️"),
        _button(f"MJ::JOB::pan_right::1::{job}::SOLO", emoji="➡️"),
        _button(f"MJ::JOB::pan_up::1::{job}::SOLO", emoji="⬆️"),
        _button(f"MJ::JOB::pan_down::1::{job}::SOLO", emoji="⬇️"),
        _button(f"MJ::JOB::reroll::0::{job}::SOLO", emoji="🔄"),
    ]


def _described() -> list[dict[str, Any]]:
    return [
        *(_button(f"MJ::Job::PicReader::{i}", str(i)) for i in range(1, 5)),
        _button("MJ::Picread::Retry", emoji="🔄"),
    ]


def _shortened() -> list[dict[str, Any]]:
    return [_button(f"MJ::Job::PromptAnalyzer::{i}", str(i)) for i in range(1, 6)]


def buttons_for(action: str, job: str) -> list[dict[str, Any]]:
    """The buttons a SUCCESS task of ``action`` carries (``job`` is its hash)."""
    if action in GRID_ACTIONS:
        return _grid(job)
    if action in ("UPSCALE", "UPSCALE_HD"):
        return _upscaled(job)
    if action == "DESCRIBE":
        return _described()
    if action == "SHORTEN":
        return _shortened()
    return []


@attrs.frozen
class ActionTarget:
    """What a customId asks for: the new task's ``action``, its ``index`` and whether it is a remixable kind."""

    action: str
    index: int
    remixable: bool = False


def _index(custom_id: str, position: int) -> int:
    parts = custom_id.split("::")
    try:
        return int(parts[position])
    except (IndexError, ValueError):
        return 1


def parse_custom_id(custom_id: str, parent_action: str) -> ActionTarget | None:
    """The new task a ``submit/action`` with ``custom_id`` creates, or None for an unknown kind.

    Follows trueai's ``SubmitController.Action`` prefix table (mj_protocol.md §2).
    """
    if custom_id.startswith("MJ::JOB::upsample::"):
        return ActionTarget("UPSCALE", _index(custom_id, 3))
    if custom_id.startswith("MJ::JOB::variation::"):
        return ActionTarget("VARIATION", _index(custom_id, 3), remixable=True)
    if custom_id.startswith("MJ::JOB::reroll::"):
        action = "IMAGINE" if parent_action in ("UPSCALE", "UPSCALE_HD") else parent_action
        return ActionTarget(action if action in GRID_ACTIONS else "IMAGINE", 0, remixable=True)
    if custom_id.startswith(("MJ::JOB::high_variation", "MJ::JOB::low_variation", "MJ::Inpaint::")):
        return ActionTarget("VARIATION", 1, remixable=True)
    if custom_id.startswith(("MJ::Outpaint::", "MJ::CustomZoom::")):
        return ActionTarget("ZOOM", 1)
    if custom_id.startswith("MJ::JOB::pan_"):
        return ActionTarget("PAN", 1, remixable=True)
    if custom_id.startswith("MJ::JOB::upsample_"):
        return ActionTarget("UPSCALE_HD", 1)
    if custom_id.startswith(("MJ::Job::PicReader::", "MJ::Job::PromptAnalyzer::")):
        return ActionTarget("IMAGINE", _index(custom_id, 3))
    if custom_id.startswith("MJ::Picread::Retry"):
        return ActionTarget("DESCRIBE", 0)
    return None
