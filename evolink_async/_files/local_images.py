"""Checks of a request's local images before anything is uploaded or paid for."""

from __future__ import annotations

from pathlib import Path, PurePath

import anyio.to_thread

from ..errors import ValidationError
from .image_probe import check_image

__all__ = ["check_local_image"]


async def check_local_image(path: PurePath, *, model: str, field: str) -> None:
    """Format and (for qwen-image-edit) side limits of a local image, from its header, off the loop."""
    try:
        await anyio.to_thread.run_sync(lambda: check_image(Path(path), model=model, field=field))
    except OSError as exc:
        raise ValidationError(field, f"cannot read {path}: {exc.strerror or exc}") from None
