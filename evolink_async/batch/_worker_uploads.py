"""A fleet worker's uploads: the one-machine batch's rules (``BatchUploads``) on the PostgreSQL
journal's record of them, within the key's file quota shared by every worker of the batch (a 40003
from another client waits). Started (the quota read, a dead worker's leftovers deleted) before the
first upload; each new file recorded under the worker at once, before the submit begins, so that
whoever ends the input deletes it; deleted in the background when an input ends, bounded at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

import anyio

from .._protocols.evolink.files import Files
from ._entries import Entry
from ._journal_uploads import JournalUpload
from ._pg_store import PgJournal
from ._pg_uploads import PgUploadRoom
from ._spec import BatchEvent
from ._uploads import BatchUploads

__all__ = ["WorkerUploads"]


class WorkerUploads:
    """The uploads of worker ``owner`` (an ``Uploader`` for its sources)."""

    def __init__(self, files: Files, journal: PgJournal, *, owner: str, lease: float, keep: bool,
                 emit: Callable[[BatchEvent], None]) -> None:  # fmt: skip
        self._journal = journal
        self._owner = owner
        self._keep = keep
        self._uploads = BatchUploads(files, journal, keep=keep, emit=emit,
                                     shared=PgUploadRoom(journal, owner, lease=lease))  # fmt: skip
        self._started = False
        self._starting = anyio.Lock()
        self._deletions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Read the quota into the batch-wide room and delete what dead workers left (once)."""
        async with self._starting:
            if not self._started:
                await self._uploads.start()
                self._started = True

    async def file_for(self, key: str, entry: Entry, source: Callable[[], Awaitable[Path]], *,
                       taken: Collection[str] = ()) -> JournalUpload:  # fmt: skip
        await self.start()
        upload = await self._uploads.file_for(key, entry, source, taken=taken)
        await self._journal.record_upload(key, entry.idempotency_key, upload.file_id, upload.file_url,
                                          owner=self._owner)  # fmt: skip
        return upload

    def ended(self, key: str) -> None:
        """``key``'s input has ended: delete its files in the background (unless kept, or none were started)."""
        if self._keep or not self._started:
            return
        deletion = asyncio.get_running_loop().create_task(self._uploads.ended(key))
        self._deletions.add(deletion)
        deletion.add_done_callback(self._deletions.discard)

    async def finish(self, *, journal_reachable: bool) -> None:
        """Let the deletions of ended inputs' files finish, and forget them in the journal (bounded)."""
        if not (self._deletions or self._started):
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            if self._deletions:
                await asyncio.wait(list(self._deletions))
            if journal_reachable:
                await self._uploads.flush()

    @property
    def deleted(self) -> int:
        """Files deleted: this worker's inputs' and those dead workers left."""
        return self._uploads.deleted + self._uploads.reclaimed

    @property
    def quota_waits(self) -> int:
        return self._uploads.budget.quota_waits
