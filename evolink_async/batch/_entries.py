"""The journal's value types: one input's ``Entry``, its ``EntryStatus``, and the journal's errors."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import JournalCorruptError, JournalError, JournalLostError, JournalMismatchError, JournalStateError

__all__ = ["OUTCOMES", "Entry", "EntryStatus", "JournalCorruptError", "JournalError", "JournalLostError",
           "JournalMismatchError", "JournalStateError", "request_fingerprint"]  # fmt: skip


class EntryStatus(enum.StrEnum):
    """Where one input stands."""

    PENDING_SUBMIT = "pending_submit"  # key reserved; a submit may or may not have reached the server
    SUBMITTED = "submitted"  # the server gave a task id
    COMPLETED = "completed"  # results exist on the server, not downloaded yet
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"  # the client's deadline passed; the server task may still finish
    SUBMIT_FAILED = "submit_failed"  # the server definitively refused the submit (e.g. HTTP 400)
    DOWNLOADED = "downloaded"
    #: A fleet journal only: a submit began, its worker's lease expired before a task id was
    #: recorded; the server may or may not have the task. Never resubmitted blindly.
    UNCERTAIN = "uncertain"


#: The statuses that are an outcome of the task itself (not a step of the batch).
OUTCOMES = frozenset(EntryStatus) - {EntryStatus.PENDING_SUBMIT, EntryStatus.SUBMITTED, EntryStatus.DOWNLOADED,
                                     EntryStatus.UNCERTAIN}  # fmt: skip


@attrs.frozen(kw_only=True)
class Entry:
    """One input's row; ``key`` is the input's stable identity, e.g. its path relative to the batch root."""

    key: str
    fingerprint: str
    idempotency_key: str
    status: EntryStatus
    task_id: str | None = None
    request_body: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    result_urls: tuple[str, ...] = ()
    result_paths: tuple[str, ...] = ()
    created_at: float
    updated_at: float
    submitted_at: float | None = None

    @property
    def needs_submit(self) -> bool:
        """No task id yet: submit with ``idempotency_key`` (and ``request_body``, if stored)."""
        return self.status is EntryStatus.PENDING_SUBMIT

    @property
    def needs_watch(self) -> bool:
        """A task exists whose end is unknown. ``timed_out`` counts: re-attaching is free."""
        return self.task_id is not None and self.status in (EntryStatus.SUBMITTED, EntryStatus.TIMED_OUT)

    @property
    def needs_download(self) -> bool:
        """The task completed; its results are not on disk yet."""
        return self.status is EntryStatus.COMPLETED

    @property
    def is_finished(self) -> bool:
        """Nothing is left to do for this input short of an explicit ``restart``."""
        return not (self.needs_submit or self.needs_watch or self.needs_download)


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """A stable hash of a request body (key order does not matter).

    >>> request_fingerprint({"b": 1, "a": "x"}) == request_fingerprint({"a": "x", "b": 1})
    True
    """
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
