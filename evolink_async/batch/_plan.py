"""The dry run of a batch (``plan_batch``), and the rule it shares with the run for inputs that
failed before: a plan never counts as handled an input that the run then fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from ..errors import Remedy, ValidationError
from ._entries import Entry, EntryStatus, request_fingerprint
from ._evidence import open_batch_journal, result_files
from ._folder_source import FolderSource
from ._outcomes import error_message
from ._source import InputSource, invalid_input, key_problem
from ._spec import LOCK_NAME, BatchEvent, BatchPlan, BatchSpec, FailedInput, UnreadableFolder

__all__ = ["FAILED_BEFORE", "failed_before", "plan_batch"]

#: The outcomes of an earlier run that a run reports again as they are, unless ``retry_failed``.
FAILED_BEFORE = frozenset({EntryStatus.FAILED, EntryStatus.CANCELLED, EntryStatus.SUBMIT_FAILED})


def failed_before(entry: Entry, spec: BatchSpec) -> FailedInput | None:
    """How a run reports an input that failed in an earlier run; None when it takes it up (again).

    The one rule for a run and its dry run (``plan_batch``), so that a plan never counts as
    handled an input that the run then fails.
    """
    if entry.status not in FAILED_BEFORE or spec.retry_failed:
        return None
    message = entry.error_message or "failed in an earlier run"
    return FailedInput(key=entry.key, code=entry.error_code or entry.status.value, remedy=Remedy.RETRY_FAILED,
                       message=f"{message} ({Remedy.RETRY_FAILED} starts it again)")  # fmt: skip


async def plan_batch(
    spec: BatchSpec, *, source: InputSource[Any] | None = None, on_event: Callable[[BatchEvent], None] | None = None
) -> BatchPlan:
    """A dry run: find the inputs, check each locally, count what a run would submit; spend nothing.

    ``source`` as the run's (default: the images of ``spec.input_dir``). Reads an existing journal
    (to leave out inputs already handled) but never creates one.
    """
    source = source if source is not None else FolderSource(spec)
    await source.check()
    unreadable: list[UnreadableFolder] = []
    items = source.inputs(on_unreadable=unreadable.append)
    # What the run would refuse (a lost or damaged journal), the dry run refuses too; and an empty
    # file stays empty: opening it would make it a valid, empty journal that the run then trusts.
    lock_existed = await anyio.to_thread.run_sync((spec.output_dir / LOCK_NAME).exists)
    journal = await open_batch_journal(spec, lock_existed=lock_existed, dry_run=True)
    inputs = to_submit = handled = 0
    invalid: list[FailedInput] = []

    def refuse(failed: FailedInput) -> None:  # as the run's ``_fail`` reports it
        invalid.append(failed)
        if on_event is not None:
            on_event(BatchEvent(kind="failed", key=failed.key, error_code=failed.code, message=failed.message,
                                remedy=failed.remedy))  # fmt: skip

    try:
        while (item := await anyio.to_thread.run_sync(next, items, None)) is not None:
            inputs += 1
            key = source.key_of(item)
            # What the run would refuse, the dry run reports: the same key rules and the source's checks.
            problem = key_problem(key)
            content = None
            if problem is None:
                try:
                    problem, content = await source.inspect(item)
                except OSError as exc:
                    problem = f"cannot be read: {exc.strerror or exc}"
            if problem is not None:
                refuse(invalid_input(key, problem))
                continue
            entry = await journal.get(key) if journal is not None else None
            same = {request_fingerprint(spec.fingerprint_body(key, content=content)),
                    request_fingerprint(spec.fingerprint_body(key))}  # fmt: skip
            if entry is not None and entry.fingerprint in same:  # else: the input changed, a new one
                if (failed := failed_before(entry, spec)) is not None:  # the run fails it again, as it is
                    refuse(failed)
                    continue
                if not entry.needs_submit and entry.status not in FAILED_BEFORE:  # FAILED_BEFORE: retried
                    handled += 1
                    continue
            if entry is None and len(await anyio.to_thread.run_sync(result_files, spec.output_dir, key)) > 0:
                handled += 1  # the run takes its results on disk as done (see ``Batch._reserve``)
                continue
            try:
                await source.check_request(item)
            except (ValidationError, OSError) as exc:
                refuse(FailedInput(key=key, code="invalid_input", message=error_message(exc),
                                   remedy=getattr(exc, "remedy", None)))  # fmt: skip
                continue
            to_submit += 1
    finally:
        if journal is not None:
            await journal.aclose()
    return BatchPlan(
        inputs=inputs, to_submit=to_submit, already_handled=handled, invalid=tuple(invalid),
        credits_per_input=spec.estimated_credits_per_input, model=spec.model, unreadable_folders=tuple(unreadable),
    )  # fmt: skip
