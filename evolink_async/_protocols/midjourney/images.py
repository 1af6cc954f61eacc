"""Midjourney request images as the data URLs every proxy accepts (novicezk's takes nothing else).

Files are read off the event loop, bounded in size, and probed: what is not a supported image
fails as a ``ValidationError`` naming the field, before anything is sent.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path, PurePath

import anyio
import anyio.to_thread

from ..._files.image_probe import probe_image
from ...errors import ValidationError
from .requests import MAX_IMAGE_BYTES, MidjourneyImage

__all__ = ["encode_images"]


async def encode_images(images: Sequence[MidjourneyImage]) -> list[str]:
    """Every image as a data URL; files are read (bounded) and encoded off the event loop."""
    if not images:
        return []

    def encode_all() -> list[str]:
        return [_data_url(image, f"images[{index}]") for index, image in enumerate(images)]

    if all(isinstance(image, str) for image in images):
        return [str(image) for image in images]
    return await anyio.to_thread.run_sync(encode_all)


def _data_url(image: MidjourneyImage, field: str) -> str:
    if isinstance(image, str):
        return image
    if isinstance(image, PurePath):
        try:
            with open(Path(image), "rb") as handle:
                data = handle.read(MAX_IMAGE_BYTES + 1)
        except OSError as exc:
            raise ValidationError(field, f"cannot read {image}: {exc.strerror or exc}") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise ValidationError(field, f"{image} is larger than {MAX_IMAGE_BYTES} bytes")
    else:
        data = bytes(image)
    info = probe_image(data, field=field)
    mime = f"image/{info.format.value}"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
