"""Uploads as a bounded resource: the key's Files API quota is a budget of files alive at once.

The Files API keeps 100 files per key by default (500 for VIP keys; API.md A6), and a file counts
until it is deleted or expires after 72 h. A caller that uploads one file per input (a folder batch,
a fan-out over local paths) must therefore delete each file once its task has ended, and never have
more files alive than the quota allows. :class:`UploadBudget` is that rule in one place:

- :meth:`UploadBudget.start` reads ``files.quota()`` once: the room is ``remain_files`` plus the
  files of an earlier run that the caller already counts as its own (``alive``);
- :meth:`UploadBudget.upload` waits for room (a deletion of one of this budget's files) before it
  uploads, so the budget never has more files alive than the room it was given;
- another process of the same key may use the quota meanwhile: the server then answers 40003 and
  the upload waits for a deletion of ours or a back-off delay (whichever comes first) and tries
  again, at most ``max_quota_waits`` times before the 40003 is raised;
- :meth:`UploadBudget.delete` deletes a file and frees its room; a file already gone (deleted
  earlier, expired) counts as deleted.

Several processes of one batch (a fleet's workers) share one quota: each would read the same
``remain_files`` and together overrun it. A :class:`SharedUploadRoom` (the fleet's journal holds
one) is then the budget instead of the process's own count: ``start`` gives it the quota's
``remain_files`` plus the batch's files that were alive all through the quota's read (a file
uploaded or deleted meanwhile may or may not be in ``remain_files``: counted as the batch's, it
could be counted twice), each upload takes room from it (waiting, polled, while the batch's files fill it)
and each deletion frees room at once for every process.

Waiting for room is bounded twice: by the tasks that hold it (each file alive belongs to an input
whose task is watched, and deleted when it ends) and by ``max_room_wait``, after which the upload is
tried anyway and the server decides (a full quota then takes the 40003 path above).

>>> budget = UploadBudget(client.files)
>>> await budget.start()
>>> uploaded = await budget.upload(Path("cat.png"))     # waits while the quota is spent
>>> ... submit, wait ...
>>> await budget.delete(uploaded.file_id)
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

from ..._core.checks import check_count, check_number
from ..._core.logging import logger
from ...errors import FilesAPIError
from .file_answers import FilesQuota, UploadedFile
from .files import Files

__all__ = ["QUOTA_EXCEEDED", "SharedUploadRoom", "UploadBudget", "is_gone", "is_quota_exceeded"]

#: The Files API's code for a full quota (A6).
QUOTA_EXCEEDED = "40003"
_GONE = frozenset({"40400", "404"})


def is_quota_exceeded(error: BaseException) -> bool:
    """Whether ``error`` is the Files API saying the key's file quota is full (code 40003)."""
    return isinstance(error, FilesAPIError) and error.code == QUOTA_EXCEEDED


def is_gone(error: BaseException) -> bool:
    """Whether a delete failed only because the file no longer exists (already deleted or expired)."""
    return isinstance(error, FilesAPIError) and (error.code in _GONE or error.status_code == 404)


class SharedUploadRoom(Protocol):
    """Room for files alive at once, shared by the processes of one batch (see the module docs)."""

    async def alive(self) -> frozenset[str]:
        """The batch's files known to be alive and not being deleted (the room's own files)."""

    async def open(self, room: int) -> None:
        """The most files the batch may have alive at once: ``remain_files`` plus the batch's own files."""

    async def take(self, *, force: bool = False) -> bool:
        """Take room for one more file if the batch has it (``force``: take it anyway); whether taken."""

    async def give_back(self) -> None:
        """Give back room a ``take`` got for an upload that made no file."""

    async def deleting(self, file_id: str) -> None:
        """``file_id`` is about to be deleted: no longer counted as room by a process that starts now
        (the quota may or may not count it free yet: counted nowhere, the room is smaller, never larger)."""

    async def freed(self, file_id: str) -> None:
        """``file_id``, a file of the batch, is deleted (or gone): its room is free for every process."""


class UploadBudget:
    """Files uploaded through this budget, held within the key's quota. See the module docs.

    ``on_quota_wait(attempt, delay)`` is called (on the event loop) each time a 40003 makes an
    upload wait: a live view reports it.
    """

    def __init__(
        self,
        files: Files,
        *,
        max_quota_waits: int = 12,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        max_room_wait: float = 900.0,
        on_quota_wait: Callable[[int, float], None] | None = None,
        shared: SharedUploadRoom | None = None,
        shared_poll: float = 0.25,
    ) -> None:
        check_count("max_quota_waits", max_quota_waits, minimum=0)
        check_number("first_delay", first_delay)
        check_number("max_delay", max_delay)
        check_number("max_room_wait", max_room_wait)
        check_number("shared_poll", shared_poll)
        #: Room shared with the other processes of a batch; None: this budget's own count is the bound.
        self._shared = shared
        self._shared_poll = shared_poll
        self._max_room_wait = max_room_wait
        self._files = files
        self._max_quota_waits = max_quota_waits
        self._first_delay = first_delay
        self._max_delay = max_delay
        self.on_quota_wait = on_quota_wait
        self._room: int | None = None  # None: not started
        self._alive = 0
        self._freed = anyio.Event()  # set (and replaced) whenever a file of this budget is deleted
        self._start_lock = anyio.Lock()
        self._rng = random.Random()
        #: How many uploads waited after a 40003, and the most files this budget had alive at once.
        self.quota_waits = 0
        self.peak_alive = 0

    @property
    def alive(self) -> int:
        """Files of this budget alive now (uploaded or being uploaded, not yet deleted)."""
        return self._alive

    @property
    def room(self) -> int | None:
        """The most files this budget may have alive (``None`` before :meth:`start`)."""
        return self._room

    async def start(self, *, alive: int = 0) -> FilesQuota | None:
        """Read the quota once (later calls return None): room = ``remain_files`` + ``alive``.

        ``alive`` counts files of the caller's that the quota already holds (an earlier run's
        uploads still needed): they are this budget's from now on, and deleting them frees room.
        """
        check_count("alive", alive, minimum=0)
        async with self._start_lock:
            if self._room is not None:
                return None
            before = await self._shared.alive() if self._shared is not None else frozenset()
            quota = await self._files.quota()
            if self._shared is not None:
                # Alive before and after the read: stored all through it, so not in ``remain_files``.
                await self._shared.open(quota.remain_files + len(before & await self._shared.alive()))
            self._alive += alive
            self._room = quota.remain_files + alive
            logger.info("files quota: %d of %d used; this run may keep %d alive", quota.used_files,
                        quota.max_files, self._room)  # fmt: skip
            return quota

    def adopt(self) -> None:
        """Count one more file as this budget's (found alive after :meth:`start`, e.g. an orphan)."""
        self._alive += 1
        self.peak_alive = max(self.peak_alive, self._alive)

    async def reserve(self) -> None:
        """Wait for room for one more file and take it (:meth:`release` gives it back unused)."""
        if self._room is None:
            await self.start()
        assert self._room is not None
        if self._shared is not None:
            await self._take_shared()
        else:
            # With nothing of ours alive there is nobody to wait for: try, and let a 40003 back off.
            with anyio.move_on_after(self._max_room_wait):
                while self._alive >= self._room and self._alive > 0:
                    await self._freed.wait()
        self._alive += 1
        self.peak_alive = max(self.peak_alive, self._alive)

    async def _take_shared(self) -> None:
        """Room from the shared budget: a deletion of ours wakes the wait, the other processes' are polled."""
        assert self._shared is not None
        with anyio.move_on_after(self._max_room_wait):
            while not await self._shared.take():
                with anyio.move_on_after(self._shared_poll):
                    await self._freed.wait()
            return
        await self._shared.take(force=True)  # waited long enough: the server decides (a 40003 waits again)

    def release(self) -> None:
        """Give back room taken by :meth:`reserve` whose file does not exist (the upload failed)."""
        self._alive = max(0, self._alive - 1)
        freed, self._freed = self._freed, anyio.Event()
        freed.set()

    async def upload(
        self, path: str | os.PathLike[str], *, file_name: str | None = None, upload_path: str | None = None
    ) -> UploadedFile:
        """Upload a local image within the budget (waiting for room, riding out 40003s, bounded)."""
        await self.reserve()
        try:
            return await self.after_quota_waits(
                lambda: self._files.upload(path, file_name=file_name, upload_path=upload_path)
            )
        except BaseException:
            self.release()
            if self._shared is not None:  # even when cancelled: the room is the batch's, not ours
                with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                    await self._shared.give_back()
            raise

    async def after_quota_waits(self, upload: Callable[[], Awaitable[UploadedFile]]) -> UploadedFile:
        """Run ``upload`` (an upload call) until it is not refused for a full quota, or the waits run out."""
        attempt = 0
        while True:
            try:
                return await upload()
            except FilesAPIError as exc:
                if not is_quota_exceeded(exc) or attempt >= self._max_quota_waits:
                    raise
            attempt += 1
            self.quota_waits += 1
            delay = min(self._max_delay, self._first_delay * 2 ** (attempt - 1)) * (0.5 + self._rng.random() / 2)
            logger.warning("files quota full (40003, another client of this key?): waiting up to %.1f s for a "
                           "deletion (attempt %d of %d)", delay, attempt, self._max_quota_waits)  # fmt: skip
            if self.on_quota_wait is not None:
                self.on_quota_wait(attempt, delay)
            with anyio.move_on_after(delay):
                await self._freed.wait()  # a deletion of ours frees a file at once: no need to sleep on

    async def delete(self, file_id: str) -> None:
        """Delete one of this budget's files and free its room; a file already gone counts as deleted.

        Any other failure is raised, and the room stays taken: the file may still be alive.
        """
        if self._shared is not None:
            await self._shared.deleting(file_id)
        try:
            await self._files.delete(file_id)
        except FilesAPIError as exc:
            if not is_gone(exc):
                raise
        self.release()
        if self._shared is not None:
            await self._shared.freed(file_id)
