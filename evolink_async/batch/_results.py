"""The one result saver of every batch (one machine, prompts, fleet workers): a completed task's
results into a folder, durably, by one naming rule, with fresh links when the first ones expired."""

from __future__ import annotations

from pathlib import Path

from .._files.download import download_urls
from .._files.image_probe import ImageFormat
from ..errors import DownloadError
from ._client_api import BatchClient
from ._evidence import result_file_name_of

__all__ = ["ResultSaver"]


class ResultSaver:
    """Saves results of input ``key`` under ``output_dir`` (``<key>.result-<i>.<ext>``)."""

    def __init__(self, client: BatchClient, output_dir: Path, *, keep_suffix: bool = True) -> None:
        self._client = client
        self._output_dir = output_dir
        self._keep_suffix = keep_suffix

    async def save(self, key: str, task_id: str | None, urls: tuple[str, ...]) -> tuple[Path, ...]:
        """The saved files, in result order; raises ``DownloadError`` (``reason="disk"``: this folder
        cannot keep results at all) or the ``EvolinkError`` of the fresh query."""
        try:
            return await self._download(key, urls)
        except DownloadError as exc:
            if exc.reason != "http_status" or task_id is None:
                raise
        # Result links expire after 24 h: a fresh query of the task gives new ones.
        fresh = await self._client.tasks.get(task_id)
        return await self._download(key, fresh.results)

    async def _download(self, key: str, urls: tuple[str, ...]) -> tuple[Path, ...]:
        if not urls:
            raise DownloadError("", "no_results", "the task completed without result URLs")
        keep_suffix = self._keep_suffix

        def name_for(index: int, image_format: ImageFormat) -> str:
            return result_file_name_of(key, index, image_format, keep_suffix=keep_suffix)

        # Durable: the journal is about to record these results as saved, and a resumed run trusts
        # it; a power cut must not leave an empty file behind that record. Reusing an identical
        # file: a run killed after saving a result but before recording it finds that file on
        # resume instead of saving a second copy beside it.
        return await download_urls(self._client.session, urls, self._output_dir, name_for, durable=True,
                                   reuse_identical=True)  # fmt: skip
