"""The PostgreSQL journal's uploads: the SQLite journal's record of uploaded files, for a fleet, and
the key's Files API quota as one budget for all the fleet's workers.

Every worker runs the one-machine batch's upload rules (``_uploads.BatchUploads``) on this store:
each file a worker uploads for an input is recorded (``record_upload``) before the input's submit
begins, deleted and forgotten once the input has ended, and reused (never uploaded again) when
another worker takes the input over; a worker that starts deletes the files of ended inputs that a
dead worker left behind.

The quota is shared through the journal (:class:`PgUploadRoom`): N workers that each read
``remain_files`` would together keep N times the quota alive. ``upload_room`` (batch-wide) is the
quota's ``remain_files`` as the latest starting worker read it, plus the batch's files that were
recorded (so stored) before the read and not marked ``deleting`` (done before a delete is sent)
after it: those were surely not in ``remain_files``. A file uploaded or deleted during the read is
counted as the batch's in no case: the room may be smaller than the truth, never larger; what the
quota endpoint says, no more. Taking room counts
the recorded files and the uploads live workers have under way, under the fleet row's lock
(``evolink_take_upload_room``), so no two workers take the last place; a deletion frees its place at
once (``freed``). Another client of the key using the quota meanwhile still gets 40003 answers:
those wait, as in the one-machine batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._entries import Entry
from ._journal_uploads import JournalUpload
from ._pg_base import _COLUMNS, PgJournalBase, _entry

__all__ = ["PgJournalUploads", "PgUploadRoom"]


class PgJournalUploads(PgJournalBase):
    """The upload record of :class:`~evolink_async.batch.PgJournal` (the ``UploadJournal`` interface)."""

    async def record_upload(self, key: str, idempotency_key: str, file_id: str, file_url: str, *,
                            owner: str | None = None) -> None:  # fmt: skip
        """Record a file uploaded for ``key`` under ``idempotency_key``; the room ``owner`` took for the
        upload (:meth:`PgUploadRoom.take`) is the file's from now on. Recording it again is a no-op."""
        await self.run(lambda c: c.execute(
            "WITH added AS (INSERT INTO evolink_uploads (file_id, key, idempotency_key, file_url, uploaded_by)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (file_id) DO NOTHING RETURNING 1)"
            " UPDATE evolink_workers SET uploads_in_flight = greatest(0, uploads_in_flight"
            " - (SELECT count(*) FROM added)) WHERE id = $5",
            file_id, key, idempotency_key, file_url, owner,
        ), what="an upload's record")  # fmt: skip

    async def forget_uploads(self, file_ids: Iterable[str]) -> None:
        """These files were deleted (or found gone): forget them."""
        gone = list(file_ids)
        if gone:
            await self.run(lambda c: c.execute("DELETE FROM evolink_uploads WHERE file_id = ANY($1::text[])", gone),
                           what="a forget of deleted uploads")  # fmt: skip

    async def uploads(self, key: str | None = None) -> list[JournalUpload]:
        """Files recorded as uploaded and not yet deleted (of ``key``, or of every input), oldest first."""
        rows = await self.run(lambda c: c.fetch(
            "SELECT key, idempotency_key, file_id, file_url FROM evolink_uploads"
            " WHERE $1::text IS NULL OR key = $1 ORDER BY created_at, file_id",
            key,
        ))  # fmt: skip
        return [JournalUpload(key=k, idempotency_key=i, file_id=f, file_url=u) for k, i, f, u in rows]

    async def find_idempotency_key(self, idempotency_key: str) -> Entry | None:
        """The entry whose current idempotency key is ``idempotency_key``, or None."""
        row = await self.run(lambda c: c.fetchrow(
            f"SELECT {_COLUMNS} FROM evolink_entries WHERE idempotency_key = $1", idempotency_key  # noqa: S608
        ))  # fmt: skip
        return None if row is None else _entry(row)


class PgUploadRoom:
    """One worker's side of the batch-wide room for uploaded files (a ``SharedUploadRoom``).

    ``lease``: a worker whose heartbeat is older than this is dead: its uploads under way stop counting.
    """

    def __init__(self, journal: PgJournalUploads, owner: str, *, lease: float) -> None:
        self._journal = journal
        self._owner = owner
        self._lease = lease

    async def alive(self) -> frozenset[str]:
        rows = await self._journal.run(lambda c: c.fetch("SELECT file_id FROM evolink_uploads WHERE NOT deleting"),
                                       what="the batch's uploaded files")  # fmt: skip
        return frozenset(str(row[0]) for row in rows)

    async def open(self, room: int) -> None:
        await self._journal.run(lambda c: c.execute("UPDATE evolink_fleet SET upload_room = $1 WHERE id = 1", room),
                                what="the upload quota's record")  # fmt: skip

    async def take(self, *, force: bool = False) -> bool:
        taken: Any = await self._journal.run(lambda c: c.fetchval(
            "SELECT evolink_take_upload_room($1, $2, $3)", self._owner, self._lease, force
        ), what="room for an upload")  # fmt: skip
        return bool(taken)

    async def give_back(self) -> None:
        await self._journal.run(lambda c: c.execute(
            "UPDATE evolink_workers SET uploads_in_flight = greatest(0, uploads_in_flight - 1) WHERE id = $1",
            self._owner,
        ), what="room given back")  # fmt: skip

    async def deleting(self, file_id: str) -> None:
        await self._journal.run(lambda c: c.execute(
            "UPDATE evolink_uploads SET deleting = true WHERE file_id = $1", file_id
        ), what="an upload's deletion")  # fmt: skip

    async def freed(self, file_id: str) -> None:
        await self._journal.forget_uploads([file_id])
