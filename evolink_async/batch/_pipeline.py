"""One input's way through a one-machine batch, from its reservation in the journal to its saved
results: the steps ``Batch`` runs for every input its source gives (``prepare``) and every event
its fan-out reports (``handle``). ``Batch`` owns the run (lock, journal, walk, fan-out); this the input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Hashable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread

from .._core.logging import logger
from .._models.events import EventKind, TaskEvent
from .._watching.fan_out import FanOutItem
from ..errors import (
    APIConnectionError,
    APIUnreachableError,
    DownloadError,
    DuplicateTaskError,
    EvolinkError,
    JournalError,
    JournalStateError,
    Remedy,
    SubmitOutcomeUnknownError,
    ValidationError,
    ends_submitting,
    may_have_been_billed,
)
from ._client_api import BatchClient, FindsLostSubmits
from ._entries import Entry, EntryStatus, request_fingerprint
from ._evidence import result_files
from ._journal_api import RunJournal
from ._outcomes import error_code, error_message, stays_pending, task_error
from ._plan import FAILED_BEFORE, failed_before
from ._results import ResultSaver
from ._source import InputSource, SourceContext, invalid_input, key_problem
from ._spec import NORMALIZED_DIR, BatchEvent, BatchSpec, BatchSummary, FailedInput
from ._uploads import BatchUploads

__all__ = ["InputPipeline"]


def _disk_stop(error: DownloadError, output_dir: Path) -> DownloadError:
    """The error that stops a run whose results cannot be written (disk full, read-only folder).

    Not one input's failure: every later result would fail the same way after being paid for.
    The journal keeps the task as completed and not yet downloaded, so a re-run downloads it
    without submitting it again.
    """
    return DownloadError(
        error.url, "disk",
        f"{error.message} in {output_dir}; free space (or fix the folder) and run the same command again: "
        "finished tasks are downloaded, not paid for again",
    )  # fmt: skip


class InputPipeline:
    """The steps of each input of one run, on its journal, summary and uploads (``uploads`` None: the
    client has no Files API); ``submitting_stopped`` says when the fan-out sends nothing more."""

    def __init__(self, client: BatchClient, spec: BatchSpec, source: InputSource[Any], journal: RunJournal, *,
                 summary: BatchSummary, emit: Callable[[BatchEvent], None], uploads: BatchUploads | None,
                 submitting_stopped: Callable[[], bool]) -> None:  # fmt: skip
        self._client = client
        self._spec = spec
        self._source = source
        self._journal = journal
        self._summary = summary
        self._emit = emit
        self._uploads = uploads
        self._submitting_stopped = submitting_stopped
        self._saver = ResultSaver(client, spec.output_dir)
        self._downloads = anyio.Semaphore(spec.max_downloads)
        self._credits_committed = 0.0  # estimated credits of the submits this run let through
        #: Keys whose earlier submit could not be settled (see ``settle_lost_submits``): not sent this run.
        self._unsettled: dict[str, EvolinkError] = {}
        #: Whether any submit of this run got an answer from the server (accepted or refused).
        self._answered = False
        #: Keys whose submit answer named another input's task: failed, their later events ignored.
        self._disowned: set[str] = set()
        #: Inputs whose request (and uploads) this run stored, with no submit outcome seen yet; of
        #: them, those handed to the fan-out. See ``release_unsent``.
        self._stored_unsent: set[str] = set()
        self._handed_over: set[str] = set()
        #: Whether an input's uploads were cut off before they were recorded (see ``release_unsent``).
        self._uploads_cut = False

    def fail(self, key: str, code: str, message: str, *, task_id: str | None = None,
             remedy: Remedy | None = None) -> None:  # fmt: skip
        self._summary.failed.append(FailedInput(key=key, code=code, message=message, remedy=remedy))
        self._emit(BatchEvent(kind="failed", key=key, task_id=task_id, error_code=code, message=message,
                              remedy=remedy))  # fmt: skip

    def refuse(self, failed: FailedInput) -> None:
        self.fail(failed.key, failed.code, failed.message, remedy=failed.remedy)

    async def settle_lost_submits(self) -> None:
        """Inputs an earlier run may have submitted (a body is stored, no task id), with a client that
        can look them up (its server keeps no idempotency key): find their tasks and record them, so
        the run re-attaches instead of submitting again. One the lookup cannot tell is not sent."""
        client = self._client
        if not isinstance(client, FindsLostSubmits):
            return  # the server de-duplicates by the idempotency key: the same key is sent again
        journal = self._journal
        async for entry in journal.entries(status=EntryStatus.PENDING_SUBMIT):
            if entry.request_body is None:
                continue  # never sent: nothing to find
            try:
                task = await client.find_submitted(entry.idempotency_key, submitted_after=entry.updated_at)
            except EvolinkError as exc:  # the lookup cannot tell: not sent this run (see ``_prepare``)
                self._unsettled[entry.key] = exc
                continue
            if task is not None:
                await journal.record_submitted(entry.key, task.id)

    async def record_unread_submits(self, left_in_flight: Collection[tuple[Hashable, str]]) -> None:
        """At the end of a run, however it ended: record the tasks the fan-out was answered with but
        whose ``submitted`` events this run never read (a stop or Ctrl-C while they waited in its
        buffer, or submits answered while a stopped fan-out let them end).

        Left unrecorded, those inputs stay pending with their stored body, and a re-run sends them
        again: a server that ignores ``Idempotency-Key`` would bill each of them twice. A journal that
        cannot take them (an outage) gets a warning naming each input and its task instead.
        """
        journal = self._journal
        for held, task_id in left_in_flight:
            key = str(held)
            if key in self._disowned:
                continue
            try:
                entry = await journal.get(key)
                if entry is None or not entry.needs_submit:
                    continue  # recorded when its event was read (or another outcome came first)
                await journal.record_submitted(key, task_id)
            except JournalStateError as exc:  # the task is another input's: that input's story, not this one's
                logger.warning("input %r: not recording task %s at the stop: %s", key, task_id, exc)
                continue
            except JournalError as exc:
                logger.warning(
                    "input %r was submitted as task %s, but the journal could not record it (%s): a re-run "
                    "would submit it again", key, task_id, exc,
                )  # fmt: skip
                continue
            self._submit_answered(key)
            self._summary.submitted += 1

    def handed_over(self, key: str) -> None:
        """``key``'s item was taken by the fan-out: from now on only the fan-out can tell if it was sent."""
        if key in self._stored_unsent:
            self._handed_over.add(key)

    async def release_unsent(self, unsent_by_fan_out: Collection[Hashable]) -> None:
        """At the end of a run, however it ended: delete the uploads of the inputs this run uploaded
        for and will not submit (a stop, Ctrl-C), so that they do not hold the key's file quota
        (an abandoned journal, such as a mistyped model's, would hold them until they expire).

        Only inputs surely never sent, or refused with nothing made (``unsent_by_fan_out``):
        an input whose submit may have reached the server keeps its stored body and its files
        (its task may exist and read them; a re-run sends the same body under the same key).
        """
        unsent = set(unsent_by_fan_out)
        for key in sorted(self._stored_unsent):
            if key not in self._handed_over or key in unsent:
                await self._release_unsent(key)
        if self._uploads_cut and self._uploads is not None:
            try:
                await self._uploads.delete_unrecorded()
            except EvolinkError as exc:  # the next run of this batch finds them by their names
                logger.warning("could not look for uploads cut off by the stop: %s", exc)

    def _submit_answered(self, key: str) -> bool:
        """``key``'s submit has an outcome, which decides what its files become; whether this run stored its request."""
        self._handed_over.discard(key)
        if key in self._stored_unsent:
            self._stored_unsent.discard(key)
            return True
        return False

    async def _release_unsent(self, key: str) -> None:
        self._submit_answered(key)
        uploads = self._uploads
        if uploads is None or uploads.keep:
            return
        entry = await self._journal.get(key)
        if entry is None or entry.status is not EntryStatus.PENDING_SUBMIT or entry.task_id is not None:
            return
        # The entry first (a new idempotency key, no stored body), then its files: a body naming a
        # deleted file is never sent, and a file left by a crash in between is the next run's to delete.
        await self._journal.restart(key)
        await uploads.ended(key)

    async def input_ended(self, key: str) -> None:
        """``key`` has ended (results saved, failed, refused): its uploaded file is not needed any more."""
        if self._uploads is not None:
            await self._uploads.ended(key)

    # --- before the submit -----------------------------------------------------------------

    async def prepare(self, item: Any, group: anyio.abc.TaskGroup) -> FanOutItem[Any] | None:
        """Bring one input up to the point where fan_out can take it (or finish it here)."""
        spec, key = self._spec, self._source.key_of(item)
        if (bad_name := key_problem(key)) is not None:  # fails alone, before a header, a journal or a terminal
            self.fail(key, "invalid_input", bad_name)
            return None
        try:
            problem, content = await self._source.inspect(item)
        except OSError as exc:
            self.fail(key, "invalid_input", f"cannot be read: {exc.strerror or exc}")
            return None
        if problem is not None:
            self.refuse(invalid_input(key, problem))
            return None
        entry = await self._reserve(key, content)
        if (failed := failed_before(entry, spec)) is not None:
            self.refuse(failed)
            return None
        if entry.status in FAILED_BEFORE:  # and retry_failed: a new idempotency key, submitted again
            entry = await self._journal.restart(key)
        if entry.status is EntryStatus.DOWNLOADED:
            self._summary.done_before += 1
            self._emit(BatchEvent(kind="done_before", key=key, task_id=entry.task_id, paths=entry.result_paths))
            return None
        if entry.needs_download:
            group.start_soon(self._download, key, entry.task_id, entry.result_urls)
            return None
        if entry.needs_watch:
            self._summary.reattached += 1
            self._emit(BatchEvent(kind="reattached", key=key, task_id=entry.task_id))
            return FanOutItem(key=key, task_id=entry.task_id)
        if self._submitting_stopped():
            # Submitting stopped (credits exhausted, budget reached): no upload; the fan-out ends it, unsent.
            return FanOutItem(key=key, idempotency_key=entry.idempotency_key)
        if not self._within_budget():  # the entry stays pending: a later run with more budget submits it
            self.fail(key, "not_submitted", f"the credit budget ({spec.max_credits:g}) is reached; run again "
                       f"with a bigger {Remedy.MAX_CREDITS} to submit it", remedy=Remedy.MAX_CREDITS)  # fmt: skip
            return None
        try:
            body = await self._request_body(item, entry)
        except EvolinkError as exc:
            if (fatal := ends_submitting(exc)) is not None:  # a wrong key or Files API URL: stop, inputs stay pending
                raise fatal from None
            # Transient: the entry stays pending, a re-run tries again. A local rule (ValidationError:
            # nothing was sent) too: the next run checks the input again, so a fixed file or the option
            # the message names (normalize=True) is enough, without retry_failed.
            if not stays_pending(exc) and not isinstance(exc, ValidationError):
                await self._journal.record_outcome(
                    key, EntryStatus.SUBMIT_FAILED, error_code=error_code(exc), error_message=error_message(exc)
                )
            self.fail(key, error_code(exc), error_message(exc), remedy=exc.remedy)
            return None
        request = self._source.request_from_body(body)
        return FanOutItem(key=key, request=request, idempotency_key=entry.idempotency_key)

    async def _reserve(self, key: str, content: str | None) -> Entry:
        """The journal entry of ``key``; a new one (new idempotency key) when the input's content changed."""
        spec = self._spec
        fingerprint = request_fingerprint(spec.fingerprint_body(key, content=content))
        legacy = request_fingerprint(spec.fingerprint_body(key))
        earlier = await self._journal.get(key)
        if earlier is None and (found := await anyio.to_thread.run_sync(result_files, spec.output_dir, key)):
            # Results, but no record (a journal started anew): paid for already, not submitted again.
            return await self._journal.record_found_results(key, fingerprint, map(str, found))
        if earlier is None or earlier.fingerprint == fingerprint:
            return await self._journal.reserve(key, fingerprint)
        if earlier.fingerprint == legacy:  # a journal from before content signatures: nothing to compare
            return await self._journal.reserve(key, legacy)
        # The meta check already refused another model, prompt or parameters: the input changed.
        self._emit(BatchEvent(kind="changed", key=key, task_id=earlier.task_id,
                              message="content changed since the last run: a new input, submitted again"))  # fmt: skip
        return await self._journal.reserve(key, fingerprint, restart_on_mismatch=True)

    def _within_budget(self) -> bool:
        cost, budget = self._spec.estimated_credits_per_input, self._spec.max_credits
        if budget is None or cost is None:
            return True
        if self._credits_committed + cost > budget + 1e-9:
            return False
        self._credits_committed += cost
        return True

    async def _request_body(self, item: Any, entry: Entry) -> dict[str, Any]:
        """The body this input's submit sends: the stored one on a resume (what the key was first used
        for), else the source's, stored (with its uploads, in one commit) before the submit."""
        if entry.key in self._unsettled:  # transient: the entry stays pending, a later run looks again
            raise SubmitOutcomeUnknownError(entry.idempotency_key, self._unsettled[entry.key])
        if entry.request_body is not None:
            stored: dict[str, Any] = json.loads(entry.request_body)
            return stored
        context = SourceContext(uploads=self._uploads, emit=self._emit,
                                scratch_dir=self._spec.output_dir / NORMALIZED_DIR)  # fmt: skip
        try:
            prepared = await self._source.prepare(item, entry, context)
        except BaseException:  # a stop, or a failed upload: the Files API may have stored a file unrecorded
            self._uploads_cut = self._uploads is not None
            raise
        *others, last = prepared.uploads or (None,)
        # Shielded: files uploaded are recorded even when the run stops now, or nobody deletes them.
        with anyio.CancelScope(shield=True):
            for upload in others:  # every file but the last recorded alone; the last with the body
                assert upload is not None
                await self._journal.record_upload(upload.key, upload.idempotency_key, upload.file_id,
                                                  upload.file_url)  # fmt: skip
            sent = await self._journal.record_request(entry.key, json.dumps(prepared.body), upload=last)
            self._stored_unsent.add(entry.key)
        result: dict[str, Any] = json.loads(sent)
        return result

    # --- fan-out events ---------------------------------------------------------------------

    async def handle(self, event: TaskEvent, group: anyio.abc.TaskGroup) -> None:
        key = str(event.key)
        task = event.task
        task_id = task.id if task is not None else None
        journal = self._journal
        if key in self._disowned:
            return  # its "task" is another input's: that input's events tell that task's story
        if event.kind is EventKind.SUBMITTED and task is not None:
            self._answered = True
            self._submit_answered(key)
            try:
                await journal.record_submitted(key, task.id)
            except JournalStateError:
                if not await self._names_another_inputs_task(key, task.id):
                    raise
                return
            self._summary.submitted += 1
            self._emit(BatchEvent(kind="submitted", key=key, task_id=task.id, progress=task.progress,
                                  status=task.status.value))  # fmt: skip
        elif event.kind is EventKind.PROGRESS and task is not None:
            self._emit(BatchEvent(kind="progress", key=key, task_id=task.id, progress=task.progress,
                                  status=task.status.value))  # fmt: skip
        elif event.kind is EventKind.COMPLETED and task is not None:
            await journal.record_outcome(key, EntryStatus.COMPLETED, result_urls=task.results)
            self._emit(BatchEvent(kind="completed", key=key, task_id=task.id, progress=100, status="completed"))
            group.start_soon(self._download, key, task.id, task.results)
        elif event.kind is EventKind.SUBMIT_FAILED:
            error = event.error or EvolinkError("submit failed")
            if isinstance(error, APIUnreachableError) and not self._answered:
                # No submit of this run has reached the server: a wrong host or no network, which every
                # other input would meet alike, each after its uploads. The run stops; this input was
                # never sent and stays pending, like every input not yet submitted.
                raise error
            fresh = self._submit_answered(key)
            self._answered = self._answered or not isinstance(error, APIConnectionError)
            if not stays_pending(error):
                await journal.record_outcome(
                    key, EntryStatus.SUBMIT_FAILED, error_code=error_code(error), error_message=error_message(error)
                )
                group.start_soon(self.input_ended, key)  # refused: never submitted with this file
            elif fresh and not may_have_been_billed(error):  # refused for now, or not sent: a re-run uploads again
                await self._release_unsent(key)
            self.fail(key, error_code(error), error_message(error), remedy=getattr(error, "remedy", None))
        elif event.kind is EventKind.TIMED_OUT:
            await journal.record_outcome(key, EntryStatus.TIMED_OUT)
            self.fail(key, "timed_out", f"not finished after {self._spec.timeout:g} s; run again to keep waiting",
                       task_id=task_id)  # fmt: skip
        elif event.kind in (EventKind.FAILED, EventKind.CANCELLED):
            code, message = task_error(event)
            status = EntryStatus.FAILED if event.kind is EventKind.FAILED else EntryStatus.CANCELLED
            await journal.record_outcome(key, status, error_code=code, error_message=message)
            self.fail(key, code, message, task_id=task_id)
            group.start_soon(self.input_ended, key)

    async def _names_another_inputs_task(self, key: str, task_id: str) -> bool:
        """Fail ``key`` alone if its submit's answer named a task another input already has.

        A server mixing up answers (a wrong idempotency cache, a hostile gateway) would otherwise
        stop the run on the journal's refusal, or save that input's results under this one's name.
        Whether this submit was billed is unknown: the input ends failed (left out of a re-run
        unless ``retry_failed``), never sent again on its own.
        """
        owner = await self._journal.find_task(task_id)
        if owner is None or owner.key == key:
            return False
        self._disowned.add(key)
        error = DuplicateTaskError(task_id, owner.key)  # as the fan-out names it when both are in flight
        code, message = error_code(error), error_message(error)
        await self._journal.record_outcome(key, EntryStatus.SUBMIT_FAILED, error_code=code, error_message=message)
        self.fail(key, code, message, task_id=task_id)
        return True

    # --- downloads --------------------------------------------------------------------------

    async def _download(self, key: str, task_id: str | None, urls: tuple[str, ...]) -> None:
        try:
            await self._download_results(key, task_id, urls)
        finally:  # saved or not, the task has ended: its input file is not needed for a re-download
            await self.input_ended(key)

    async def _download_results(self, key: str, task_id: str | None, urls: tuple[str, ...]) -> None:
        async with self._downloads:
            try:
                paths = await self._saver.save(key, task_id, urls)
            except DownloadError as exc:
                if exc.reason == "disk":
                    raise _disk_stop(exc, self._spec.output_dir) from None
                self.fail(key, error_code(exc), error_message(exc), task_id=task_id)
                return
            except EvolinkError as exc:  # UnsafePathError, a fresh query that failed, and friends
                self.fail(key, error_code(exc), error_message(exc), task_id=task_id)
                return
            await self._journal.record_downloads(key, [str(p) for p in paths])
        self._summary.downloaded += 1
        self._summary.results_saved += len(paths)
        self._emit(BatchEvent(kind="downloaded", key=key, task_id=task_id, paths=tuple(map(str, paths))))
