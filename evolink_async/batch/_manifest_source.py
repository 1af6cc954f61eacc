"""The lines of a manifest as a batch's inputs: a one-machine ``Batch`` over a JSON Lines file, and
what a fleet ``Worker`` makes of the lines it claims (its default source).

Each line is an image request (:class:`~evolink_async.batch.ManifestInput`): its URLs are sent as
they are, its local paths (relative to ``root``) checked (a file, an image the Files API stores and
the model accepts) and uploaded to the Files API first, each upload recorded before the submit so
that whoever ends the input deletes it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .._models.requests import ImageRequest
from ..errors import Remedy, ValidationError
from ._entries import Entry
from ._journal_uploads import JournalUpload
from ._manifest import IMAGINE_MODEL, ManifestInput, check_local_image, read_manifest
from ._source import PreparedRequest, SourceContext
from ._spec import UnreadableFolder

__all__ = ["ManifestSource"]


class ManifestSource:
    """The inputs of the manifest at ``path`` (a ``Batch``), or the lines a fleet worker claims
    (``path`` None); local images resolve under ``root``.

    >>> await Batch(client, spec, source=ManifestSource(Path("edits.jsonl"), root=Path("/shared"))).run()
    """

    def __init__(self, path: Path | None = None, *, root: Path | None = None) -> None:
        self._path = path
        self._root = root

    async def check(self) -> None:
        if self._path is None or not await anyio.to_thread.run_sync(self._path.is_file):
            raise ValidationError("manifest", f"{self._path} is not a file")

    def inputs(self, *, on_unreadable: Callable[[UnreadableFolder], None] | None = None) -> Iterator[ManifestInput]:
        return read_manifest(self._path) if self._path is not None else iter(())

    def key_of(self, item: ManifestInput) -> str:
        return item.key

    async def inspect(self, item: ManifestInput) -> tuple[str | None, str | None]:
        # The line's own fingerprint: an edited line is a new input, submitted again.
        return None, item.fingerprint

    async def check_request(self, item: ManifestInput) -> None:
        await self._checked(item)

    def item_of(self, line: ManifestInput) -> ManifestInput:
        if line.model == IMAGINE_MODEL:
            raise ValidationError(line.key, f"is a Midjourney prompt: run it with {Remedy.PROMPT_SOURCE}",
                                  remedy=Remedy.PROMPT_SOURCE)  # fmt: skip
        return line

    async def _checked(self, item: ManifestInput) -> ImageRequest:
        """The line's request, its local images checked (a local path without ``root`` is refused, naming it)."""
        request = item.request(self._root)
        for image in request.image_urls:
            if not isinstance(image, str):
                check = functools.partial(check_local_image, Path(image), model=item.model, key=item.key)
                await anyio.to_thread.run_sync(check)
        return request

    async def prepare(self, item: ManifestInput, entry: Entry, context: SourceContext) -> PreparedRequest:
        request = await self._checked(item)
        urls: list[str] = []
        uploads: list[JournalUpload] = []
        for image in request.image_urls:
            if isinstance(image, str):
                urls.append(image)
                continue
            if context.uploads is None:
                raise ValidationError(item.key, "has a local file, and this client has no Files API to upload it to")

            async def source(path: Path = Path(image)) -> Path:
                return path

            # The input's recorded file when it has one (an earlier claim of it uploaded it), else a new upload.
            upload = await context.uploads.file_for(entry.key, entry, source, taken=[u.file_id for u in uploads])
            uploads.append(upload)
            urls.append(upload.file_url)
        body = ImageRequest(model=request.model, prompt=request.prompt, image_urls=tuple(urls),
                            model_params=request.model_params or None).to_body()  # fmt: skip
        return PreparedRequest(body=body, uploads=tuple(uploads))

    def request_from_body(self, body: Mapping[str, Any]) -> ImageRequest:
        return ImageRequest.from_body(body)
