"""``fan_out(normalize=True)``: local images the service would refuse, converted before their submit.

The rules and the conversion are ``_files.normalize``'s; this only applies them to a request's local
images and owns the folder of copies: a temporary folder made at the first copy and removed when
the fan-out ends (the copies are uploaded by then; nothing of the user's is touched).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path, PurePath
from typing import TypeVar, cast

import anyio.to_thread

from .._files.normalize import normalize_image, plan_image
from .._models.requests import Request
from ..errors import ValidationError

__all__ = ["Normalizer"]

R = TypeVar("R")


class Normalizer:
    """Replaces a request's local images that need it by normalized PNG copies (see the module docs)."""

    def __init__(self) -> None:
        self._folder: Path | None = None

    async def request(self, request: R) -> R:
        """``request`` with its local images replaced where needed; any other request as it is."""
        if not isinstance(request, Request):
            return request
        images = request.image_urls
        if not any(isinstance(image, PurePath) for image in images):
            return request
        changed = list(images)
        for index, image in enumerate(images):
            if isinstance(image, PurePath):
                changed[index] = await self._image(Path(image), model=request.model, field=f"image_urls[{index}]")
        # ``with_image_urls`` is an ``attrs.evolve``: the copy is of the request's own class.
        return cast(R, request.with_image_urls(tuple(changed)))

    async def _image(self, path: Path, *, model: str, field: str) -> Path:
        try:
            plan = await anyio.to_thread.run_sync(
                functools.partial(plan_image, path, model=model, field=field, normalize=True)
            )
            if not plan.needed:
                return path
            if self._folder is None:
                self._folder = Path(await anyio.to_thread.run_sync(functools.partial(tempfile.mkdtemp,
                                                                                     prefix="evolink-normalized-")))
            return await anyio.to_thread.run_sync(
                functools.partial(normalize_image, path, self._folder, model=model, name=path.name)
            )
        except OSError as exc:
            raise ValidationError(field, f"cannot read {path}: {exc.strerror or exc}") from None

    async def aclose(self) -> None:
        folder, self._folder = self._folder, None
        if folder is not None:
            await anyio.to_thread.run_sync(functools.partial(shutil.rmtree, folder, ignore_errors=True))
