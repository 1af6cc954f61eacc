"""Every Midjourney request type validates at construction and names the offending field."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

import evolink_async as evolink
from evolink_async import (
    Action,
    Blend,
    Bot,
    Change,
    ChangeAction,
    Describe,
    Dimensions,
    Imagine,
    Modal,
    Shorten,
    SpeedMode,
    Task,
    TaskStatus,
    ValidationError,
)
from tests.helpers.images import png_bytes

DATA_URL = "data:image/png;base64," + base64.b64encode(png_bytes(8, 8)).decode()


def field_of(build: Any, **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as info:
        build(**kwargs)
    assert isinstance(info.value, ValueError)
    return info.value.field


def test_imagine_accepts_paths_bytes_and_data_urls() -> None:
    request = Imagine(prompt="a red fox", images=[Path("ref.png"), png_bytes(8, 8), DATA_URL], bot="NIJI_JOURNEY",
                      mode="relax", state="mine")  # fmt: skip
    assert request.bot is Bot.NIJI_JOURNEY
    assert request.mode is SpeedMode.RELAX
    assert len(request.images) == 3
    body = request.body(["a", "b", "c"])
    assert body == {"botType": "NIJI_JOURNEY", "prompt": "a red fox", "base64Array": ["a", "b", "c"],
                    "model": "mj-relax", "accountFilter": {"modes": ["RELAX"]}}  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 8193}, "prompt"),
        ({"prompt": "ok", "images": ["https://example.com/a.png"]}, "images[0]"),
        ({"prompt": "ok", "images": [b""]}, "images[0]"),
        ({"prompt": "ok", "images": ["data:image/png;base64,"]}, "images[0]"),
        ({"prompt": "ok", "images": [DATA_URL, 42]}, "images[1]"),
        ({"prompt": "ok", "images": DATA_URL}, "images"),
        ({"prompt": "ok", "bot": "mj"}, "bot"),
        ({"prompt": "ok", "mode": "slow"}, "mode"),
        ({"prompt": "ok", "state": "s" * 256}, "state"),
        ({"prompt": "ok", "state": 5}, "state"),
        ({"prompt": "ok", "notify_hook": "ftp://x"}, "notify_hook"),
    ],
)
def test_imagine_rejects(kwargs: dict[str, Any], field: str) -> None:
    assert field_of(Imagine, **kwargs) == field


def test_imagine_bounds_image_size() -> None:
    assert field_of(Imagine, prompt="ok", images=[b"x" * (16 * 1024 * 1024 + 1)]) == "images[0]"


def test_blend_needs_two_to_five_images() -> None:
    assert field_of(Blend, images=[DATA_URL]) == "images"
    assert field_of(Blend, images=[DATA_URL] * 6) == "images"
    assert field_of(Blend, images=[DATA_URL] * 2, dimensions="WIDE") == "dimensions"
    blend = Blend(images=[DATA_URL, Path("b.png")], dimensions="LANDSCAPE")
    assert blend.dimensions is Dimensions.LANDSCAPE
    assert blend.body(["a", "b"]) == {"botType": "MID_JOURNEY", "base64Array": ["a", "b"], "dimensions": "LANDSCAPE"}


def test_describe_takes_one_image() -> None:
    assert field_of(Describe, image="https://example.com/a.png") == "image"
    assert field_of(Describe, image=None) == "image"
    assert Describe(image=Path("a.png")).body(["d"]) == {"botType": "MID_JOURNEY", "base64": "d"}


def test_shorten() -> None:
    assert field_of(Shorten, prompt="") == "prompt"
    assert Shorten(prompt="long prompt").body([]) == {"botType": "MID_JOURNEY", "prompt": "long prompt"}


def test_change() -> None:
    done = Task(id="123", status=TaskStatus.COMPLETED)
    assert Change(task=done, action="UPSCALE", index=2).body([]) == {"taskId": "123", "action": "UPSCALE", "index": 2}
    assert Change(task=456, action=ChangeAction.REROLL).body([]) == {"taskId": "456", "action": "REROLL"}
    assert field_of(Change, task="1", action="UPSCALE", index=5) == "index"
    assert field_of(Change, task="1", action="UPSCALE", index=0) == "index"
    assert field_of(Change, task="1", action="VARIATION") == "index"
    assert field_of(Change, task="1", action="VARIATION", index=True) == "index"
    assert field_of(Change, task="1", action="REROLL", index=1) == "index"
    assert field_of(Change, task="1", action="ZOOM", index=1) == "action"
    assert field_of(Change, task="", action="UPSCALE", index=1) == "task"
    assert field_of(Change, task="a/b", action="UPSCALE", index=1) == "task"
    assert field_of(Change, task=1.5, action="UPSCALE", index=1) == "task"


def test_action() -> None:
    assert Action(task="1", custom_id="MJ::JOB::upsample::2::h").body([]) == {
        "taskId": "1", "customId": "MJ::JOB::upsample::2::h"}  # fmt: skip
    assert Action(task="1", custom_id="MJ::x", enable_remix=True).body([])["enableRemix"] is True
    assert field_of(Action, task="1", custom_id="") == "custom_id"
    assert field_of(Action, task="1", custom_id="MJ::x", enable_remix="yes") == "enable_remix"
    assert field_of(Action, task=None, custom_id="MJ::x") == "task"


def test_modal() -> None:
    assert Modal(task="9").body([]) == {"taskId": "9"}
    assert Modal(task="9", prompt="p", mask=DATA_URL).body(["m"]) == {"taskId": "9", "prompt": "p", "maskBase64": "m"}
    assert field_of(Modal, task="9", prompt="x" * 9000) == "prompt"
    assert field_of(Modal, task="9", mask="not an image") == "mask"


def test_requests_are_frozen_and_keyword_only() -> None:
    request = Imagine(prompt="a")
    with pytest.raises(AttributeError):
        request.prompt = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Imagine("a")  # type: ignore[misc]


def test_public_names() -> None:
    for name in ("MidjourneyClient", "Imagine", "Blend", "Describe", "Shorten", "Change", "Action", "Modal",
                 "TaskNeedsModalError", "UnsupportedOperationError", "BannedPromptError", "MidjourneyError",
                 "QueueFullError", "MidjourneyDetails", "MidjourneyButton"):  # fmt: skip
        assert name in evolink.__all__
        assert hasattr(evolink, name)
    for error in (evolink.TaskNeedsModalError, evolink.UnsupportedOperationError, evolink.MidjourneyError):
        assert issubclass(error, evolink.EvolinkError)
        assert error.__doc__


@pytest.mark.parametrize("prefix", ["mj?a=1", "/mj#x", "/../admin", "/a/../b", "m j", "a//b"])
def test_a_path_prefix_that_is_not_path_segments_is_refused(prefix: str) -> None:
    # Each would make every route's URL another one (a query, a fragment, a step up).
    with pytest.raises(evolink.ValidationError, match="path_prefix"):
        evolink.MidjourneyClient("k", base_url="http://127.0.0.1:9", path_prefix=prefix)
