"""Checks of a request's local images before anything is uploaded or paid for.

Two rule sets apply to a local image: the Files API's (it stores JPEG, PNG, GIF and WebP images
only, judged by content, at most 100 MB; API.md A6) and the model's (formats, side limits; A2).
A model may accept more than the Files API stores (``qwen-image-edit`` takes BMP and TIFF by URL),
so a local BMP is refused here, or converted by the ``[images]`` extra (``normalize``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import anyio.to_thread

from ..errors import Remedy, ValidationError
from .image_probe import ImageFormat, ImageInfo, check_image

__all__ = ["FILES_API_FORMATS", "NORMALIZE_HINT", "check_local_image", "check_upload_format", "local_image_problem"]

#: The image types the Files API stores, by content (API.md A6: no BMP, no TIFF).
FILES_API_FORMATS = frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.GIF, ImageFormat.WEBP})
#: What a refusal that normalizing would cure tells the user.
NORMALIZE_HINT = f'normalize it ({Remedy.NORMALIZE}, needs pip install "evolink-async[images]")'


def check_upload_format(info: ImageInfo, *, field: str, hint: str | None = None) -> None:
    """Raise :class:`ValidationError` on ``field`` unless the Files API stores this image type."""
    if info.format not in FILES_API_FORMATS:
        allowed = ", ".join(sorted(f.value.upper() for f in FILES_API_FORMATS))
        rule = f"the Files API stores {allowed} images, this is {info.format.value.upper()}"
        remedy = Remedy.NORMALIZE if hint == NORMALIZE_HINT else None
        raise ValidationError(field, f"{rule}; {hint}" if hint else rule, remedy=remedy)


def local_image_problem(path: str | os.PathLike[str], *, model: str, field: str) -> ImageInfo:
    """Probe a local image and check it against the model's rules and the Files API's types (blocking).

    The model's rules come first: they say more (a side out of range is the model's rule).
    """
    info = check_image(path, model=model, field=field)
    check_upload_format(info, field=field, hint=NORMALIZE_HINT)
    return info


async def check_local_image(path: PurePath, *, model: str, field: str) -> None:
    """Format (model and Files API) and side limits of a local image, from its header, off the loop."""
    try:
        await anyio.to_thread.run_sync(lambda: local_image_problem(Path(path), model=model, field=field))
    except OSError as exc:
        raise ValidationError(field, f"cannot read {path}: {exc.strerror or exc}") from None
