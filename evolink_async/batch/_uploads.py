"""A folder batch's uploads: within the key's file quota, journalled, deleted once their input ends.

One file is uploaded per input; the Files API keeps 100 per key by default (API.md A6), so a batch
of more inputs than that only finishes if it deletes as it goes. The rules, in one place:

- a file is *needed* while its input may still be submitted (``pending_submit``: a resume resends
  the stored body, whose URL is this file) or its task may still be running (``submitted``,
  ``timed_out``); once the input has ended (results downloaded, failed, cancelled, refused) the
  file is deleted, unless the caller keeps uploads (``keep_uploads``);
- each upload is committed to the journal (``file_id``, ``file_url``) right after the Files API
  answers, before the submit; an input that already has a live file reuses it, never uploads again;
- at the start of a run, files an earlier run left behind are settled: those of ended inputs are
  deleted; a file stored by a run killed before it could record the answer is found by its name
  (``evb-<batch tag>-<idempotency key>``): adopted when its input still needs it and nothing else,
  deleted otherwise;
- the quota's ``remain_files`` (plus the files this batch already owns) is the budget of files
  alive at once (:class:`~evolink_async._protocols.evolink.uploads.UploadBudget`); a 40003 caused by
  another client of the key waits for a deletion or a back-off, bounded, reported as ``quota_wait``.

The journal is either store (:class:`UploadJournal`): the one-machine SQLite file, or a fleet's
PostgreSQL journal, whose workers each run these rules and share one budget (``shared``: the room
lives in the journal). In a fleet, a file named for the batch that the journal does not know may
be one another live worker has just uploaded and not yet recorded: it is adopted whenever its input
may still be submitted without a stored body (the same file id, recorded twice, is one record; a
second file of the input is deleted with it when the input ends), and deleted otherwise only if it
is still unrecorded when looked at again (a worker records its files before its submit begins).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from .._core.logging import logger
from .._protocols.evolink.files import Files
from .._protocols.evolink.uploads import SharedUploadRoom, UploadBudget, is_gone
from ..errors import EvolinkError, FilesAPIError
from ._entries import Entry, EntryStatus, JournalMismatchError
from ._journal_api import JournalStore
from ._journal_uploads import JournalUpload
from ._spec import BatchEvent

__all__ = ["BatchUploads", "UploadJournal", "files_needed", "upload_needed"]

_TAG_META = "upload_tag"
_NAME_PREFIX = "evb-"
_MAX_LISTED_PAGES = 100  # 10,000 files: far past any quota; bounds the work on a hostile listing
#: Deleted files are forgotten by the journal in groups: a lost forget only costs a second delete.
_FORGET_EVERY = 32


#: What :class:`BatchUploads` reads and writes: the store protocol both journals satisfy.
UploadJournal = JournalStore


def files_needed(entry: Entry) -> bool:
    """Whether the input's files may still be used: it may be submitted with them, or its task runs
    (a fleet's ``uncertain`` input too: its task may run, or it is resubmitted with the same body)."""
    return entry.needs_submit or entry.needs_watch or entry.status is EntryStatus.UNCERTAIN


def upload_needed(entry: Entry | None, upload: JournalUpload) -> bool:
    """Whether an uploaded file may still be used (:func:`files_needed`, of its current idempotency key).

    A file uploaded under an earlier idempotency key (the input changed, or was started afresh) is not.
    """
    return entry is not None and entry.idempotency_key == upload.idempotency_key and files_needed(entry)


class BatchUploads:
    """The uploads of one batch run. ``start()`` once, then ``file_for`` per input and ``ended`` per end."""

    def __init__(self, files: Files, journal: UploadJournal, *, keep: bool, emit: Callable[[BatchEvent], None],
                 shared: SharedUploadRoom | None = None) -> None:  # fmt: skip
        self._files = files
        self._journal = journal
        self._keep = keep
        self._emit = emit
        self._shared = shared
        self.budget = UploadBudget(files, on_quota_wait=self._quota_wait, shared=shared)
        self._prefix = ""
        #: Files deleted by this run, and files an earlier run left that this one deleted or adopted.
        self.deleted = 0
        self.reclaimed = 0
        self.adopted = 0
        self._to_forget: list[str] = []

    @property
    def keep(self) -> bool:
        """Whether the caller keeps uploads (``keep_uploads``): none is deleted, none released."""
        return self._keep

    def _quota_wait(self, attempt: int, delay: float) -> None:
        self._emit(BatchEvent(kind="quota_wait", error_code="40003", total=attempt,
                              message=f"the Files API quota is full (another client of this key?): waiting up to "
                                      f"{delay:.1f} s for a deletion before upload attempt {attempt + 1}"))  # fmt: skip

    async def start(self) -> None:
        """Settle what earlier runs left, then read the quota: the budget of this run."""
        tag = await self._journal.get_meta(_TAG_META)
        if tag is None:
            tag = secrets.token_hex(6)
            try:
                await self._journal.ensure_meta({_TAG_META: tag})
            except JournalMismatchError:  # a fleet: another worker named the batch's files first
                tag = await self._journal.get_meta(_TAG_META) or tag
        self._prefix = f"{_NAME_PREFIX}{tag}-"
        recorded = await self._journal.uploads()
        alive = 0
        for upload in recorded:
            if upload_needed(await self._journal.get(upload.key), upload) or self._keep:
                alive += 1
            elif await self._delete_quietly(upload.file_id):
                self.reclaimed += 1
        if not self._keep:
            alive += await self._settle_orphans({u.file_id for u in recorded})
        await self.flush()  # a shared budget counts the journal's files: the deleted ones are not
        await self.budget.start(alive=alive)

    async def _settle_orphans(self, known: set[str]) -> int:
        """Files named for this batch that the journal does not know: adopt or delete them; how many adopted."""
        adopted = 0
        for page_number in range(1, _MAX_LISTED_PAGES + 1):
            page = await self._files.list(page=page_number)
            for stored in page.files:
                name = stored.file_name or ""
                if stored.file_id in known or not name.startswith(self._prefix):
                    continue
                entry = await self._journal.find_idempotency_key(Path(name[len(self._prefix):]).stem)
                unsent = entry is not None and entry.needs_submit and entry.request_body is None
                if entry is not None and unsent and stored.file_url \
                        and (self._shared is not None or not await self._journal.uploads(entry.key)):  # fmt: skip
                    # Stored, its answer lost with the killed run: the input's file, not to upload again.
                    await self._journal.record_upload(entry.key, entry.idempotency_key, stored.file_id,
                                                      stored.file_url)  # fmt: skip
                    known.add(stored.file_id)
                    adopted += 1
                    self.adopted += 1
                elif entry is not None and stored.file_id in {u.file_id for u in await self._uploads_of(entry.key)}:
                    known.add(stored.file_id)  # recorded meanwhile by the (live) worker that uploaded it
                elif await self._delete_quietly(stored.file_id):
                    self.reclaimed += 1
            if not page.has_more or not page.files:
                break
        return adopted

    async def file_for(self, key: str, entry: Entry, source: Callable[[], Awaitable[Path]], *,
                       taken: Collection[str] = ()) -> JournalUpload:  # fmt: skip
        """``key``'s file: its live upload if it has one, else a new upload of the file ``source()`` gives.

        ``taken``: file ids already used for other images of the same request (a request with several
        local images has one file each, recorded oldest first in the order they were uploaded).

        A new upload is not recorded yet: the caller records it with the request body, in one commit
        (``Journal.record_request(upload=...)``); a crash before that leaves a file the next run
        finds by its name.
        """
        for upload in await self._uploads_of(key):
            if upload.file_id in taken:
                continue
            if upload.idempotency_key == entry.idempotency_key:
                return upload
            if not self._keep:  # an earlier image of a changed input: not this one
                await self._delete_quietly(upload.file_id)
        path = await source()
        name = f"{self._prefix}{entry.idempotency_key}{path.suffix.lower()}"
        if self._keep:
            uploaded = await self.budget.after_quota_waits(
                lambda: self._files.upload(path, file_name=name, check_format=False)
            )
        else:
            uploaded = await self.budget.upload(path, file_name=name)
        return JournalUpload(key=key, idempotency_key=entry.idempotency_key, file_id=uploaded.file_id,
                             file_url=uploaded.file_url)  # fmt: skip

    async def delete_unrecorded(self) -> None:
        """Delete the files named for this batch that the journal does not know: uploads cut off (a
        stop, Ctrl-C) after the Files API stored them and before their answer was recorded.

        Only at the end of a one-machine run: no other worker uploads for the batch, and every
        answer this run got is recorded, so such a file belongs to no input (its input has no stored
        body: never sent). Left alone, an abandoned journal's (a mistyped model's) would hold the
        key's quota until it expires; the next run of the same batch would find it by its name.
        """
        if self._keep or self._shared is not None or not self._prefix:
            return
        known = {upload.file_id for upload in await self._journal.uploads()}
        for page_number in range(1, _MAX_LISTED_PAGES + 1):
            page = await self._files.list(page=page_number)
            for stored in page.files:
                if stored.file_id in known or not (stored.file_name or "").startswith(self._prefix):
                    continue
                known.add(stored.file_id)
                try:  # not through the budget: the cut upload gave its room back already
                    await self._files.delete(stored.file_id)
                except FilesAPIError as exc:
                    if not is_gone(exc):
                        raise
                self.deleted += 1
            if not page.has_more or not page.files:
                break

    async def _uploads_of(self, key: str) -> list[JournalUpload]:
        """``key``'s files the journal knows, less those deleted and not yet forgotten."""
        return [u for u in await self._journal.uploads(key) if u.file_id not in self._to_forget]

    async def flush(self) -> None:
        """Forget the deleted files in the journal (at the end of a run, and every few deletions)."""
        gone, self._to_forget = self._to_forget, []
        await self._journal.forget_uploads(gone)

    async def ended(self, key: str) -> None:
        """``key``'s input has ended: delete its files (unless kept). A failed delete is left to a later run."""
        if self._keep:
            return
        for upload in await self._uploads_of(key):
            if await self._delete_quietly(upload.file_id):
                self.deleted += 1

    async def _delete_quietly(self, file_id: str, *, forget: bool = True) -> bool:
        """Delete a file (and forget it); False when that failed for a reason other than it being gone."""
        try:
            if self.budget.room is None:  # an earlier run's file, before this run's budget exists
                if self._shared is not None:
                    await self._shared.deleting(file_id)
                try:
                    await self._files.delete(file_id)
                except FilesAPIError as exc:
                    if not is_gone(exc):
                        raise
            else:
                await self.budget.delete(file_id)
        except EvolinkError as exc:
            logger.warning("could not delete uploaded file %s (%s); a later run deletes it", file_id, exc)
            return False
        if forget:
            self._to_forget.append(file_id)
            if len(self._to_forget) >= _FORGET_EVERY:
                await self.flush()
        return True
