"""The images of a folder as a batch's inputs (the default source of :class:`~evolink_async.batch.Batch`).

Each image file under ``spec.input_dir`` is one input, keyed by its path relative to the folder;
it is uploaded (normalized first when ``spec.normalize`` and the service would refuse it) and sent
as ``spec``'s request with the uploaded file's URL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .._core.logging import logger
from .._files.normalize import ImagePlan, normalize_image, plan_image
from .._models.requests import ImageRequest
from ..errors import ValidationError
from ._entries import Entry
from ._source import OUTSIDE_LINK, PreparedRequest, SourceContext
from ._spec import BatchEvent, BatchSpec, UnreadableFolder, iter_inputs

__all__ = ["FolderSource"]


def _inspect_input(path: Path, root: Path, follow_symlinks: bool) -> tuple[str | None, str | None]:
    """``(problem, content)``: why the input may not be used, or its content signature (size, mtime)."""
    if path.is_symlink() and not follow_symlinks:
        target = path.resolve()
        if not target.is_relative_to(root.resolve()):
            return OUTSIDE_LINK, None
    info = path.stat()
    return None, f"{info.st_size}:{info.st_mtime_ns}"


def unreadable_folder(root: Path, folder: Path, error: OSError) -> UnreadableFolder:
    """The summary's record of a sub-folder ``iter_inputs`` could not list, warned about once."""
    found = UnreadableFolder(path=folder.relative_to(root).as_posix(), message=error.strerror or str(error))
    # %r: a folder name with a newline must not forge a log line.
    logger.warning("cannot read the folder %r; its inputs are left out of the batch: %s", found.path, found.message)
    return found


class FolderSource:
    """The image files of ``spec.input_dir`` (``recursive``, ``pattern``, ``follow_symlinks``), each
    sent as ``spec.request(<its upload>)``."""

    def __init__(self, spec: BatchSpec) -> None:
        self._spec = spec

    async def check(self) -> None:
        if not await anyio.to_thread.run_sync(self._spec.input_dir.is_dir):
            raise ValidationError("input_dir", f"{self._spec.input_dir} is not a folder")

    def inputs(self, *, on_unreadable: Callable[[UnreadableFolder], None] | None = None) -> Iterator[Path]:
        spec = self._spec
        exclude = spec.output_dir if spec.output_dir.resolve().is_relative_to(spec.input_dir.resolve()) else None

        def unreadable(folder: Path, error: OSError) -> None:
            # Called in the worker thread that advances the walk; the loop only reads the list.
            if on_unreadable is not None:
                on_unreadable(unreadable_folder(spec.input_dir, folder, error))

        return iter_inputs(spec.input_dir, recursive=spec.recursive, pattern=spec.pattern, exclude=exclude,
                           on_unreadable=unreadable)  # fmt: skip

    def key_of(self, item: Path) -> str:
        return item.relative_to(self._spec.input_dir).as_posix()

    async def inspect(self, item: Path) -> tuple[str | None, str | None]:
        spec = self._spec
        return await anyio.to_thread.run_sync(_inspect_input, item, spec.input_dir, spec.follow_symlinks)

    def _as_sent(self, path: Path) -> Path:
        """The name the request's suffix rules see: a normalized input is sent as a PNG."""
        return path.with_name(f"{path.name}.png") if self._spec.normalize else path

    async def _plan(self, item: Path) -> ImagePlan:
        spec = self._spec
        spec.request(self._as_sent(item))  # suffix and prompt rules, before anything is read or sent
        check = functools.partial(plan_image, item, model=spec.model, field=self.key_of(item),
                                  normalize=spec.normalize)  # fmt: skip
        return await anyio.to_thread.run_sync(check)

    async def check_request(self, item: Path) -> None:
        await self._plan(item)

    async def prepare(self, item: Path, entry: Entry, context: SourceContext) -> PreparedRequest:
        spec, key = self._spec, entry.key
        try:
            plan = await self._plan(item)
        except OSError as exc:
            raise ValidationError(key, f"cannot be read: {exc.strerror or exc}") from None
        if context.uploads is None:
            raise ValidationError(key, "is a local file, and this client has no Files API to upload it to")
        normalized: list[Path] = []

        async def source() -> Path:  # only when the input has no live upload to reuse
            if not plan.needed:
                return item
            copy = await anyio.to_thread.run_sync(functools.partial(
                normalize_image, item, context.scratch_dir, model=spec.model, name=key))  # fmt: skip
            normalized.append(copy)
            context.emit(BatchEvent(kind="normalized", key=key, paths=(str(copy),)))
            return copy

        try:
            upload = await context.uploads.file_for(key, entry, source)
        finally:  # uploaded (or failed): the copy is not needed; a re-run makes it again if it must
            for copy in normalized:
                await anyio.to_thread.run_sync(functools.partial(copy.unlink, missing_ok=True))
        context.emit(BatchEvent(kind="uploaded", key=key))
        return PreparedRequest(body=spec.request(upload.file_url).to_body(), uploads=(upload,))

    def request_from_body(self, body: Mapping[str, Any]) -> ImageRequest:
        return ImageRequest.from_body(dict(body))
