"""Midjourney-proxy request types, validated at construction (pure data until submit).

Images are local files (``Path``), raw ``bytes`` or ``data:`` URLs; the client reads files off
the event loop at submit, bounded in size, and sends every image as a data URL, which is what
every proxy accepts (novicezk's takes nothing else).

Why one module of ~400 lines: the seven request types share the checks above them and read as
the proxy's API does, one after another; split, each piece would mostly import the other.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any, TypeAlias

import attrs

from ..._models.task import Task
from ..._models.task_ids import task_id_of
from ...errors import ValidationError

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_STATE_CHARS",
    "Action",
    "Blend",
    "Bot",
    "Change",
    "ChangeAction",
    "Describe",
    "Dimensions",
    "Imagine",
    "MidjourneyImage",
    "MidjourneyRequest",
    "Modal",
    "Shorten",
    "SpeedMode",
]

#: An input image: a local file, its bytes, or a ``data:<mime>;base64,...`` URL.
MidjourneyImage: TypeAlias = PurePath | bytes | str

#: The largest image read from disk or accepted as bytes (after decoding).
MAX_IMAGE_BYTES = 16 * 1024 * 1024
#: trueai's proxy refuses a longer ``state``.
MAX_STATE_CHARS = 255
_MAX_PROMPT_CHARS = 8192
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>[A-Za-z0-9+/=\s]+)", re.ASCII)


class Bot(enum.StrEnum):
    """Which bot draws: Midjourney or Niji."""

    MID_JOURNEY = "MID_JOURNEY"
    NIJI_JOURNEY = "NIJI_JOURNEY"


class SpeedMode(enum.StrEnum):
    """The account speed a gateway should use (``model: mj-fast`` / ``accountFilter.modes``)."""

    FAST = "fast"
    RELAX = "relax"
    TURBO = "turbo"


class Dimensions(enum.StrEnum):
    """Aspect of a blend: 2:3, 1:1 or 3:2."""

    PORTRAIT = "PORTRAIT"
    SQUARE = "SQUARE"
    LANDSCAPE = "LANDSCAPE"


class ChangeAction(enum.StrEnum):
    """What ``submit/change`` does to one image of a grid."""

    UPSCALE = "UPSCALE"
    VARIATION = "VARIATION"
    REROLL = "REROLL"


def _member(kind: type[enum.StrEnum], value: object, field: str) -> Any:
    try:
        return kind(value)  # type: ignore[arg-type]  # checked here: a bad value raises
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValidationError(field, f"must be one of {allowed}, got {value!r}") from None


# Named converters: the attrs mypy plugin reads their annotations as the __init__ parameter types.
def _to_bot(value: Bot | str) -> Bot:
    return _member(Bot, value, "bot")  # type: ignore[no-any-return]


def _to_mode(value: SpeedMode | str | None) -> SpeedMode | None:
    return None if value is None else _member(SpeedMode, value, "mode")


def _to_dimensions(value: Dimensions | str) -> Dimensions:
    return _member(Dimensions, value, "dimensions")  # type: ignore[no-any-return]


def _to_change_action(value: ChangeAction | str) -> ChangeAction:
    return _member(ChangeAction, value, "action")  # type: ignore[no-any-return]


def _to_images(value: Iterable[MidjourneyImage] | None) -> tuple[MidjourneyImage, ...]:
    return _images(value, "images")


def _to_image(value: MidjourneyImage) -> MidjourneyImage:
    return check_image(value, "image")


def _to_mask(value: MidjourneyImage | None) -> MidjourneyImage | None:
    return None if value is None else check_image(value, "mask")


def check_image(value: object, field: str) -> MidjourneyImage:
    """``value`` if it is a usable image (a path, non-empty bounded bytes, a base64 data URL)."""
    if isinstance(value, PurePath):
        if not str(value) or value.name == "":
            raise ValidationError(field, "must name a file")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise ValidationError(field, "must not be empty")
        if len(data) > MAX_IMAGE_BYTES:
            raise ValidationError(field, f"must be at most {MAX_IMAGE_BYTES} bytes, got {len(data)}")
        return data
    if isinstance(value, str):
        match = _DATA_URL.fullmatch(value.strip())
        if match is None:
            if value.startswith(("http://", "https://")):
                raise ValidationError(field, "must be a Path, bytes or a data: URL (put image URLs in the prompt)")
            raise ValidationError(field, "must be a local Path, bytes or a data:<mime>;base64,... URL")
        try:
            size = len(base64.b64decode(match["data"], validate=False))
        except (binascii.Error, ValueError):
            raise ValidationError(field, "is not valid base64") from None
        if size == 0:
            raise ValidationError(field, "must not be empty")
        if size > MAX_IMAGE_BYTES:
            raise ValidationError(field, f"must be at most {MAX_IMAGE_BYTES} bytes, got {size}")
        return value.strip()
    raise ValidationError(field, f"must be a Path, bytes or a data: URL, got {type(value).__name__}")


def _images(value: Iterable[object] | None, field: str) -> tuple[MidjourneyImage, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, PurePath)):
        raise ValidationError(field, "must be a list of images, not a single image")
    # A mapping would be taken by its keys, a number not at all: both are mistakes, said as such.
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise ValidationError(field, f"must be a list of images, got {type(value).__name__}")
    return tuple(check_image(item, f"{field}[{index}]") for index, item in enumerate(value))


def _check_prompt(prompt: object, field: str = "prompt", *, required: bool = True) -> None:
    if prompt is None and not required:
        return
    if not isinstance(prompt, str) or (required and not prompt.strip()):
        raise ValidationError(field, "must be a non-empty string")
    if len(prompt) > _MAX_PROMPT_CHARS:
        raise ValidationError(field, f"must be at most {_MAX_PROMPT_CHARS} characters, got {len(prompt)}")


def _check_state(state: object) -> None:
    if state is None:
        return
    if not isinstance(state, str):
        raise ValidationError("state", "must be a string")
    if len(state) > MAX_STATE_CHARS:
        raise ValidationError("state", f"must be at most {MAX_STATE_CHARS} characters, got {len(state)}")


def _check_hook(hook: object) -> None:
    if hook is None:
        return
    if not isinstance(hook, str) or not hook.startswith(("http://", "https://")) or len(hook) > 2000:
        raise ValidationError("notify_hook", "must be an http(s) URL of at most 2000 characters")


def _task_id(value: Task | str | int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, (Task, str)):
        raise ValidationError("task", f"must be a Task or a task id, got {type(value).__name__}")
    try:
        return task_id_of(value)
    except ValidationError as exc:
        raise ValidationError("task", exc.rule) from None


@attrs.frozen(kw_only=True)
class Imagine:
    """``/imagine``: a prompt, optionally with reference images.

    >>> Imagine(prompt="a red fox", images=[Path("ref.png")], bot=Bot.NIJI_JOURNEY, mode="relax")
    """

    endpoint = "submit/imagine"

    prompt: str
    images: tuple[MidjourneyImage, ...] = attrs.field(default=(), converter=_to_images)
    bot: Bot = attrs.field(default=Bot.MID_JOURNEY, converter=_to_bot)
    mode: SpeedMode | None = attrs.field(default=None, converter=_to_mode)
    state: str | None = None
    notify_hook: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_prompt(self.prompt)
        _check_state(self.state)
        _check_hook(self.notify_hook)

    def body(self, images: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"botType": self.bot.value, "prompt": self.prompt, "base64Array": images}
        if self.mode is not None:
            # ``model`` for gateways (seed 003), ``accountFilter.modes`` for trueai's proxy.
            body["model"] = f"mj-{self.mode.value}"
            body["accountFilter"] = {"modes": [self.mode.value.upper()]}
        return body


@attrs.frozen(kw_only=True)
class Blend:
    """``/blend``: 2 to 5 images into one.

    >>> Blend(images=[Path("a.png"), Path("b.png")], dimensions=Dimensions.LANDSCAPE)
    """

    endpoint = "submit/blend"

    images: tuple[MidjourneyImage, ...] = attrs.field(converter=_to_images)
    dimensions: Dimensions = attrs.field(default=Dimensions.SQUARE, converter=_to_dimensions)
    bot: Bot = attrs.field(default=Bot.MID_JOURNEY, converter=_to_bot)
    state: str | None = None
    notify_hook: str | None = None

    def __attrs_post_init__(self) -> None:
        if not 2 <= len(self.images) <= 5:
            raise ValidationError("images", f"must hold 2 to 5 images, got {len(self.images)}")
        _check_state(self.state)
        _check_hook(self.notify_hook)

    def body(self, images: list[str]) -> dict[str, Any]:
        return {"botType": self.bot.value, "base64Array": images, "dimensions": self.dimensions.value}


@attrs.frozen(kw_only=True)
class Describe:
    """``/describe``: four prompts for one image (in ``properties.finalPrompt`` of the result).

    >>> Describe(image=Path("photo.jpg"))
    """

    endpoint = "submit/describe"

    image: MidjourneyImage = attrs.field(converter=_to_image)
    bot: Bot = attrs.field(default=Bot.MID_JOURNEY, converter=_to_bot)
    state: str | None = None
    notify_hook: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_state(self.state)
        _check_hook(self.notify_hook)

    @property
    def images(self) -> tuple[MidjourneyImage, ...]:
        return (self.image,)

    def body(self, images: list[str]) -> dict[str, Any]:
        return {"botType": self.bot.value, "base64": images[0]}


@attrs.frozen(kw_only=True)
class Shorten:
    """``/shorten``: shorter variants of a prompt.

    >>> Shorten(prompt="a very long prompt ...")
    """

    endpoint = "submit/shorten"

    prompt: str
    bot: Bot = attrs.field(default=Bot.MID_JOURNEY, converter=_to_bot)
    state: str | None = None
    notify_hook: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_prompt(self.prompt)
        _check_state(self.state)
        _check_hook(self.notify_hook)

    images: tuple[MidjourneyImage, ...] = attrs.field(default=(), init=False)

    def body(self, images: list[str]) -> dict[str, Any]:
        return {"botType": self.bot.value, "prompt": self.prompt}


@attrs.frozen(kw_only=True)
class Change:
    """``submit/change``: upscale or vary image ``index`` (1-4) of a finished grid, or reroll it.

    >>> Change(task=done, action=ChangeAction.UPSCALE, index=2)
    """

    endpoint = "submit/change"

    task: str = attrs.field(converter=_task_id)
    action: ChangeAction = attrs.field(converter=_to_change_action)
    index: int | None = None
    state: str | None = None
    notify_hook: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.action is ChangeAction.REROLL:
            if self.index is not None:
                raise ValidationError("index", "must be omitted for REROLL")
        elif not isinstance(self.index, int) or isinstance(self.index, bool) or not 1 <= self.index <= 4:
            raise ValidationError("index", f"must be an integer 1-4 for {self.action.value}, got {self.index!r}")
        _check_state(self.state)
        _check_hook(self.notify_hook)

    images: tuple[MidjourneyImage, ...] = attrs.field(default=(), init=False)

    def body(self, images: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"taskId": self.task, "action": self.action.value}
        if self.index is not None:
            body["index"] = self.index
        return body


@attrs.frozen(kw_only=True)
class Action:
    """``submit/action``: press a button of a finished task by its ``customId``.

    ``MidjourneyClient.action(task, "U2")`` finds the ``customId`` from a label for you.

    >>> Action(task=done, custom_id="MJ::JOB::upsample::2::0ddb91a0")
    """

    endpoint = "submit/action"

    task: str = attrs.field(converter=_task_id)
    custom_id: str
    enable_remix: bool | None = None
    state: str | None = None
    notify_hook: str | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.custom_id, str) or not self.custom_id.strip():
            raise ValidationError("custom_id", "must be a non-empty string (a button's customId)")
        if self.enable_remix is not None and not isinstance(self.enable_remix, bool):
            raise ValidationError("enable_remix", "must be a bool")
        _check_state(self.state)
        _check_hook(self.notify_hook)

    images: tuple[MidjourneyImage, ...] = attrs.field(default=(), init=False)

    def body(self, images: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"taskId": self.task, "customId": self.custom_id}
        if self.enable_remix is not None:
            body["enableRemix"] = self.enable_remix
        return body


@attrs.frozen(kw_only=True)
class Modal:
    """``submit/modal``: confirm a task left in ``MODAL`` (remix, custom zoom, vary region).

    >>> Modal(task=waiting, prompt="a red fox, watercolor", mask=Path("mask.png"))
    """

    endpoint = "submit/modal"

    task: str = attrs.field(converter=_task_id)
    prompt: str | None = None
    mask: MidjourneyImage | None = attrs.field(default=None, converter=_to_mask)
    state: str | None = None
    notify_hook: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_prompt(self.prompt, required=False)
        _check_state(self.state)
        _check_hook(self.notify_hook)

    @property
    def images(self) -> tuple[MidjourneyImage, ...]:
        return () if self.mask is None else (self.mask,)

    def body(self, images: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"taskId": self.task}
        if self.prompt is not None:
            body["prompt"] = self.prompt
        if images:
            body["maskBase64"] = images[0]
        return body


#: Every request ``MidjourneyClient.submit`` takes.
MidjourneyRequest: TypeAlias = Imagine | Blend | Describe | Shorten | Change | Action | Modal
MIDJOURNEY_REQUESTS = (Imagine, Blend, Describe, Shorten, Change, Action, Modal)
