"""Request types: what a caller asks a model to do, validated at construction.

Each type checks the documented rules of its model (API.md A2, A5) in ``__attrs_post_init__``
and raises :class:`~evolink_async.ValidationError` naming the field and the rule, so a bad
request fails at the caller before any credit is reserved.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any, ClassVar, Literal, Protocol, TypeAlias, TypeGuard, runtime_checkable

import attrs

from ..errors import ValidationError
from .urls import check_callback_url, check_image_url

__all__ = [
    "MODEL_RULES",
    "ImageInput",
    "ImageRequest",
    "json_params",
    "ModelRules",
    "QwenImageEdit",
    "RemoveBackground",
    "Request",
    "Retexture",
    "Speed",
    "is_request",
]

#: An input image: an http(s) URL, or a local file the client uploads first.
ImageInput: TypeAlias = str | PurePath


class Speed(enum.StrEnum):
    """Midjourney generation speed (``model_params.speed``); ``turbo`` costs about twice ``fast``."""

    DRAFT = "draft"
    FAST = "fast"
    TURBO = "turbo"


@attrs.frozen(kw_only=True)
class ModelRules:
    """The documented input limits of one model."""

    prompt: Literal["required", "forbidden", "optional"] = "optional"
    max_prompt_chars: int | None = None
    min_images: int = 0
    max_images: int | None = None
    extensions: frozenset[str] | None = None
    speeds: frozenset[Speed] | None = None


_MJ_PROMPT_CHARS = 8192

MODEL_RULES: Mapping[str, ModelRules] = {
    "mj-v7-retexture": ModelRules(
        prompt="required",
        max_prompt_chars=_MJ_PROMPT_CHARS,
        min_images=1,
        max_images=1,
        speeds=frozenset({Speed.FAST, Speed.TURBO}),
    ),
    "mj-v7-remove-bg": ModelRules(
        prompt="forbidden",
        min_images=1,
        max_images=1,
        extensions=frozenset({".png", ".gif", ".webp", ".jpg", ".jpeg"}),
    ),
    "qwen-image-edit": ModelRules(
        prompt="required",
        max_prompt_chars=1000,
        min_images=1,
        max_images=3,
        extensions=frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tiff"}),
    ),
    "mj-v7": ModelRules(
        prompt="required",
        max_prompt_chars=_MJ_PROMPT_CHARS,
        speeds=frozenset({Speed.DRAFT, Speed.FAST, Speed.TURBO}),
    ),
}

# An unknown model's rules: the generic checks only. Built once, not per request.
_GENERIC_RULES = ModelRules()

# Keys the generic request builds itself; ``extra`` may not override them.
_RESERVED_KEYS = frozenset({"model", "prompt", "image_urls", "model_params", "callback_url"})


def _image_tuple(value: Iterable[ImageInput]) -> tuple[ImageInput, ...]:
    # A bare string is iterable too; turning "https://x/a.png" into 19 one-letter "URLs" would be
    # a silent disaster, so it is rejected here rather than split.
    if isinstance(value, (str, bytes, PurePath)):
        raise ValidationError("image_urls", "must be a list of URLs or paths, not a single value")
    # A dict or a set would be taken by its keys, in no promised order: a list says what is meant.
    if not isinstance(value, list | tuple):
        raise ValidationError("image_urls", f"must be a list of URLs or paths, got {type(value).__name__}")
    return tuple(os.fspath(v) if isinstance(v, os.PathLike) and not isinstance(v, PurePath) else v
                 for v in value)


def _check_suffix(field: str, suffix: str, rules: ModelRules, model: str) -> None:
    if rules.extensions is not None and suffix and suffix not in rules.extensions:
        allowed = " ".join(sorted(rules.extensions))
        raise ValidationError(field, f"{model} accepts {allowed} images, got {suffix}")


def validate_inputs(
    model: str,
    *,
    prompt: str | None,
    image_urls: tuple[ImageInput, ...],
    speed: Speed | None,
    callback_url: str | None,
) -> None:
    """Check one request against its model's documented rules (unknown models: generic checks only)."""
    if not isinstance(model, str) or not model.strip():
        raise ValidationError("model", "must be a non-empty model name")
    rules = MODEL_RULES.get(model, _GENERIC_RULES)
    if prompt is not None and not isinstance(prompt, str):
        raise ValidationError("prompt", f"must be a string, got {type(prompt).__name__}")
    if rules.prompt == "required" and (prompt is None or not prompt.strip()):
        raise ValidationError("prompt", f"is required for {model}")
    if rules.prompt == "forbidden" and prompt is not None:
        raise ValidationError("prompt", f"is not accepted by {model}")
    if prompt is not None and rules.max_prompt_chars is not None and len(prompt) > rules.max_prompt_chars:
        raise ValidationError(
            "prompt", f"must be at most {rules.max_prompt_chars} characters for {model}, got {len(prompt)}"
        )
    count = len(image_urls)
    if count < rules.min_images:
        raise ValidationError("image_urls", f"{model} needs at least {rules.min_images} image(s), got {count}")
    if rules.max_images is not None and count > rules.max_images:
        raise ValidationError("image_urls", f"{model} accepts at most {rules.max_images} image(s), got {count}")
    for index, image in enumerate(image_urls):
        field = f"image_urls[{index}]"
        if isinstance(image, PurePath):
            _check_suffix(field, image.suffix.lower(), rules, model)
        elif isinstance(image, str):
            # A URL without an extension (a signed or API download link) cannot be judged here.
            _check_suffix(field, check_image_url(field, image), rules, model)
        else:
            raise ValidationError(field, f"must be a URL string or a path, got {type(image).__name__}")
    if speed is not None and rules.speeds is not None and speed not in rules.speeds:
        allowed = ", ".join(sorted(s.value for s in rules.speeds))
        raise ValidationError("speed", f"{model} accepts speed {allowed}, got {speed.value}")
    if callback_url is not None:
        check_callback_url("callback_url", callback_url)


def _speed(value: Speed | str | None) -> Speed | None:
    if value is None or isinstance(value, Speed):
        return value
    try:
        return Speed(value)
    except ValueError:
        raise ValidationError("speed", f"must be one of draft, fast, turbo, got {value!r}") from None


@runtime_checkable
class Request(Protocol):
    """What every request type offers the client."""

    @property
    def model(self) -> str: ...

    @property
    def image_urls(self) -> tuple[ImageInput, ...]: ...

    def to_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /v1/images/generations``."""
        ...

    def with_image_urls(self, image_urls: tuple[ImageInput, ...]) -> Request:
        """A copy with other image inputs (local paths replaced by uploaded URLs, or by normalized copies)."""
        ...


def _urls_for_wire(image_urls: tuple[ImageInput, ...]) -> list[str]:
    local = [str(p) for p in image_urls if isinstance(p, PurePath)]
    if local:
        raise ValidationError(
            "image_urls", f"local files must be uploaded first (client.images.submit does it): {local[0]}"
        )
    return [str(u) for u in image_urls]


@attrs.frozen(kw_only=True)
class _ModelRequest:
    """Shared shape of the typed requests: a fixed model and the common fields."""

    MODEL: ClassVar[str] = ""

    image_urls: tuple[ImageInput, ...] = attrs.field(converter=_image_tuple)
    callback_url: str | None = None

    @property
    def model(self) -> str:
        return self.MODEL

    def _prompt(self) -> str | None:
        return None

    def _speed(self) -> Speed | None:
        return None

    def __attrs_post_init__(self) -> None:
        validate_inputs(
            self.MODEL,
            prompt=self._prompt(),
            image_urls=self.image_urls,
            speed=self._speed(),
            callback_url=self.callback_url,
        )

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.MODEL}
        prompt = self._prompt()
        if prompt is not None:
            body["prompt"] = prompt
        body["image_urls"] = _urls_for_wire(self.image_urls)
        speed = self._speed()
        if speed is not None:
            body["model_params"] = {"speed": speed.value}
        if self.callback_url is not None:
            body["callback_url"] = self.callback_url
        return body

    def with_image_urls(self, image_urls: tuple[ImageInput, ...]) -> Request:
        return attrs.evolve(self, image_urls=image_urls)


@attrs.frozen(kw_only=True)
class Retexture(_ModelRequest):
    """``mj-v7-retexture``: restyle one image to the texture or style the prompt names.

    >>> Retexture(prompt="cyberpunk neon", image_urls=["https://example.com/a.jpg"], speed="fast")
    """

    MODEL: ClassVar[str] = "mj-v7-retexture"

    prompt: str
    speed: Speed | None = attrs.field(default=None, converter=_speed)

    def _prompt(self) -> str | None:
        return self.prompt

    def _speed(self) -> Speed | None:
        return self.speed


@attrs.frozen(kw_only=True)
class RemoveBackground(_ModelRequest):
    """``mj-v7-remove-bg``: cut the subject of one image out of its background (no prompt)."""

    MODEL: ClassVar[str] = "mj-v7-remove-bg"

    #: Not accepted by the model: a field only so that passing one is a ``ValidationError``
    #: naming the rule rather than Python's "unexpected keyword argument".
    prompt: str | None = attrs.field(default=None, repr=False)

    def _prompt(self) -> str | None:
        return self.prompt


@attrs.frozen(kw_only=True)
class QwenImageEdit(_ModelRequest):
    """``qwen-image-edit``: edit up to 3 images as the prompt (at most 1000 characters) says."""

    MODEL: ClassVar[str] = "qwen-image-edit"

    prompt: str

    def _prompt(self) -> str | None:
        return self.prompt


def json_params(value: Mapping[str, Any] | None, field: str = "model_params") -> dict[str, Any]:
    """A copy of ``value``, a mapping of JSON data (``None`` is empty), or a ``ValidationError``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a mapping, got {type(value).__name__}")
    try:
        # What cannot be sent as JSON (NaN, a set, an object) fails here, not at the submit.
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, f"must be JSON data (no NaN, infinity or objects): {exc}") from None
    return dict(value)


def _extra(value: Mapping[str, Any] | None) -> dict[str, Any]:
    extra = json_params(value, "extra")
    clash = sorted(_RESERVED_KEYS & extra.keys())
    if clash:
        raise ValidationError(f"extra[{clash[0]!r}]", "must not override a field the request sets itself")
    return extra


@attrs.frozen(kw_only=True)
class ImageRequest:
    """Any model on ``/v1/images/generations``, for models without a typed request.

    Known models (the three typed ones and ``mj-v7``) get their rules checked here too.

    >>> ImageRequest(model="gpt-image-1.5", prompt="a lighthouse", extra={"size": "1024x1024", "n": 2})
    """

    model: str
    prompt: str | None = None
    image_urls: tuple[ImageInput, ...] = attrs.field(default=(), converter=_image_tuple)
    model_params: dict[str, Any] = attrs.field(factory=dict, converter=json_params, hash=False)
    callback_url: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, converter=_extra, hash=False)

    def __attrs_post_init__(self) -> None:
        speed = self.model_params.get("speed")
        # Not hashable (a list) must reach validate_inputs' "model" rule, not fail the lookup.
        rules = MODEL_RULES.get(self.model) if isinstance(self.model, str) else None
        validate_inputs(
            self.model,
            prompt=self.prompt,
            image_urls=self.image_urls,
            speed=_speed(speed) if speed is not None and rules is not None and rules.speeds else None,
            callback_url=self.callback_url,
        )

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.prompt is not None:
            body["prompt"] = self.prompt
        if self.image_urls:
            body["image_urls"] = _urls_for_wire(self.image_urls)
        if self.model_params:
            body["model_params"] = dict(self.model_params)
        if self.callback_url is not None:
            body["callback_url"] = self.callback_url
        body.update(self.extra)
        return body

    def with_image_urls(self, image_urls: tuple[ImageInput, ...]) -> Request:
        return attrs.evolve(self, image_urls=image_urls)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ImageRequest:
        """The request whose ``to_body()`` is ``body``, validated like any other (a stored body, resent)."""
        model = body.get("model")
        if not isinstance(model, str):
            raise ValidationError("model", "is required and must be a string")
        urls = body.get("image_urls", [])
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ValidationError("image_urls", "must be an array of URL strings")
        params = body.get("model_params")
        if params is not None and not isinstance(params, Mapping):
            raise ValidationError("model_params", "must be an object")
        return cls(
            model=model,
            prompt=body.get("prompt"),
            image_urls=urls,
            model_params=params,
            callback_url=body.get("callback_url"),
            extra={k: v for k, v in body.items() if k not in _RESERVED_KEYS},
        )


#: The request types defined here, then the protocol. ``isinstance`` stops at the first match:
#: against a class here it is one C-level check, against the runtime-checkable ``Request``
#: protocol it walks the protocol's members in Python (about 11 us per call on Python 3.11, once
#: or twice per submit in the lifecycle benchmark).
_REQUEST_TYPES = (QwenImageEdit, Retexture, RemoveBackground, ImageRequest, Request)


def is_request(value: object) -> TypeGuard[Request]:
    """True when ``value`` offers what the client needs of a request (a built-in type or any
    object with the ``Request`` protocol's members)."""
    return isinstance(value, _REQUEST_TYPES)


def validate_body(body: Mapping[str, Any], *, allow_private_callback: bool = False) -> None:
    """Check a submit body by the same rules as the request types (the sandbox validates with it).

    ``allow_private_callback`` lets a local emulator accept ``http://127.0.0.1/...`` callbacks.
    """
    callback_url = body.get("callback_url")
    if callback_url is not None:
        if not isinstance(callback_url, str):
            raise ValidationError("callback_url", "must be a string")
        check_callback_url("callback_url", callback_url, allow_private=allow_private_callback)
    ImageRequest.from_body({k: v for k, v in body.items() if k != "callback_url"})
