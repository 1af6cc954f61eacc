"""The resumable batch: inputs from a source (a folder of images by default), results into a
folder, nothing paid twice.

Per input, in this order, each step committed to the journal before the next starts::

    reserve (idempotency key) -> local checks -> upload -> record_request (exact body)
    -> submit (fan_out, with that key) -> record_submitted (task id) -> outcome -> download

A run killed anywhere (``kill -9`` included) resumes by running the same command: inputs with a
task id are re-attached (no submit), inputs with a stored body are resubmitted with the same key
and body (the server answers a replay, not a second bill), completed ones are only downloaded.
With a client that can find a submit whose answer was lost (a Midjourney proxy, which keeps no
idempotency key), such inputs are looked up first, and one it cannot settle is not sent again.

Where the inputs come from is the ``source`` (:class:`~evolink_async.batch.InputSource`): the
images of ``spec.input_dir`` unless given; ``PromptBatch`` is this class with Midjourney prompts.

>>> async with EvolinkClient() as client:
...     summary = await Batch(client, BatchSpec(model="mj-v7-remove-bg", input_dir="in", output_dir="out")).run()
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from .._files.download import remove_stale_parts
from .._models.events import EventKind, TaskEvent
from .._protocols.evolink.files import Files
from .._watching.fan_out import FanOut, FanOutItem
from ..errors import (
    DownloadError,
    EvolinkError,
    Remedy,
    SubmitOutcomeUnknownError,
    ValidationError,
    ends_submitting,
    may_have_been_billed,
    was_refused_for_now,
)
from ._client_api import BatchClient, FindsLostSubmits
from ._entries import Entry, EntryStatus, request_fingerprint
from ._evidence import open_batch_journal, result_files
from ._folder_source import FolderSource
from ._outcomes import error_code, error_message, first_cause, task_error
from ._plan import FAILED_BEFORE, failed_before, plan_batch
from ._results import ResultSaver
from ._source import InputSource, SourceContext, invalid_input, key_problem
from ._spec import LOCK_NAME, NORMALIZED_DIR, BatchEvent, BatchLockedError, BatchSpec, BatchSummary, FailedInput
from ._sqlite_store import Journal
from ._tracing import summary_attributes, traced_run
from ._uploads import BatchUploads

__all__ = ["Batch", "plan_batch"]

EventSink = Callable[[BatchEvent], None]


def _transient(error: BaseException) -> bool:
    """A submit error after which the entry stays pending and a re-run sends the same key again:
    the submit may have reached the server, or was refused for sure with nothing created."""
    return may_have_been_billed(error) or was_refused_for_now(error)


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


@contextlib.contextmanager
def _run_lock(folder: Path) -> Iterator[None]:
    """One run per output folder. ``flock`` dies with its process, so a killed run never blocks a resume."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks; the journal's own locking remains
        yield
        return
    handle: IO[bytes] = open(folder / LOCK_NAME, "ab")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchLockedError(f"another evolink run is using {folder}; wait for it or use another "
                                   f"{Remedy.OUTPUT_DIR}") from None  # fmt: skip
        yield
    finally:
        handle.close()


class Batch:
    """Runs one :class:`BatchSpec` with a client over ``source``; ``on_event`` sees every :class:`BatchEvent`.

    ``source`` (an :class:`~evolink_async.batch.InputSource`) gives the inputs and makes each one's
    request; by default the images of ``spec.input_dir``. Any ``Client`` runs it, a third
    protocol's included: the batch reads only the client's fan-out, task query, session and
    what its protocol says of itself.
    """

    def __init__(self, client: BatchClient, spec: BatchSpec, *, source: InputSource[Any] | None = None,
                 on_event: EventSink | None = None) -> None:  # fmt: skip
        self._client = client
        self._spec = spec
        self._source: InputSource[Any] = source if source is not None else FolderSource(spec)
        self._on_event = on_event or (lambda event: None)
        self.summary = BatchSummary(output_dir=str(spec.output_dir), journal=str(spec.journal_path))
        self._journal: Journal | None = None
        self._fan_out: FanOut[Any] | None = None
        self._downloads = anyio.Semaphore(spec.max_downloads)
        self._saver = ResultSaver(client, spec.output_dir)
        self._credits_committed = 0.0  # estimated credits of the submits this run let through
        self._counting = True  # the count ahead of the walk may go on (read from its thread)
        self._uploads: BatchUploads | None = None  # the Files API uploads, when the client has one
        #: Keys whose earlier submit could not be settled (see ``_settle_lost_submits``): not sent this run.
        self._unsettled: dict[str, EvolinkError] = {}

    def _emit(self, event: BatchEvent) -> None:
        self._on_event(event)

    def _fail(self, key: str, code: str, message: str, *, task_id: str | None = None,
              remedy: Remedy | None = None) -> None:  # fmt: skip
        self.summary.failed.append(FailedInput(key=key, code=code, message=message, remedy=remedy))
        self._emit(BatchEvent(kind="failed", key=key, task_id=task_id, error_code=code, message=message,
                              remedy=remedy))  # fmt: skip

    def _refuse(self, failed: FailedInput) -> None:
        self._fail(failed.key, failed.code, failed.message, remedy=failed.remedy)

    @property
    def journal(self) -> Journal:
        assert self._journal is not None
        return self._journal

    @traced_run(
        "batch",
        started=lambda batch: {"gen_ai.request.model": batch._spec.model,
                               "evolink.batch.max_in_flight": batch._spec.max_in_flight},
        ended=lambda batch: summary_attributes("evolink.batch", batch.summary),
    )  # fmt: skip
    async def run(self) -> BatchSummary:
        """Process every input; returns the summary (also on Ctrl-C, with ``interrupted`` set, re-raised)."""
        spec = self._spec
        await self._source.check()
        if spec.max_credits is not None and spec.estimated_credits_per_input is None:
            raise ValidationError("max_credits", f"needs a known cost per input; {spec.model} has none")
        await anyio.to_thread.run_sync(lambda: spec.output_dir.mkdir(parents=True, exist_ok=True))
        # Evidence of an earlier run, should its journal be lost: the lock file is made before the journal.
        lock_existed = await anyio.to_thread.run_sync((spec.output_dir / LOCK_NAME).exists)
        with _run_lock(spec.output_dir):
            # Under the lock no download runs: what a killed run left half-written can go.
            await anyio.to_thread.run_sync(remove_stale_parts, spec.output_dir)
            async with contextlib.aclosing(await open_batch_journal(spec, lock_existed=lock_existed)) as journal:
                self._journal = journal
                await journal.ensure_meta(spec.meta())
                try:
                    await self._start_uploads(journal)
                    await self._settle_lost_submits()
                    await self._run()
                except BaseExceptionGroup as group:
                    # One cause (a wrong key, say) reads better than a tree of task groups.
                    cause = first_cause(group)
                    self._stopped_by(cause)
                    raise cause from None
                except BaseException as exc:
                    self._stopped_by(exc)
                    raise
                finally:
                    # A protocol that never says what a task costs (a Midjourney proxy): "0 credits
                    # reserved" would be false.
                    if not self._client.protocol.reports_cost and not self.summary.credits_reserved:
                        self.summary.credits_reserved = None
        return self.summary

    def _stopped_by(self, error: BaseException) -> None:
        if isinstance(error, Exception) and not isinstance(error, anyio.get_cancelled_exc_class()):
            self.summary.error = f"{type(error).__name__}: {error}"
        else:  # cancelled, Ctrl-C: a re-run resumes
            self.summary.interrupted = True

    async def _run(self) -> None:
        send, receive = anyio.create_memory_object_stream[FanOutItem[Any]](0)
        spec = self._spec
        # The fan-out holds the budget to the credits the server's answers reserve; the estimate
        # check in ``_prepare`` stops earlier, before an input is uploaded for nothing.
        credits_per_task = spec.estimated_credits_per_input if spec.max_credits is not None else None
        fan_out = self._fan_out = self._client.fan_out(
            receive, max_in_flight=spec.max_in_flight, timeout=spec.timeout,
            max_credits=spec.max_credits, credits_per_task=credits_per_task,
        )  # fmt: skip
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._count_all)
                group.start_soon(self._prepare_all, send, group)
                async with fan_out as events:
                    async for event in events:
                        await self._handle(event, group)
        finally:  # also when interrupted: the submitted tasks' credits are reserved all the same
            self._counting = False
            self.summary.credits_reserved = round(fan_out.summary.credits_reserved, 6)
            self.summary.retried_uncertain_submits = fan_out.summary.retried_uncertain_submits
            if self._uploads is not None:
                self.summary.quota_waits = self._uploads.budget.quota_waits
                self.summary.uploads_deleted = self._uploads.deleted + self._uploads.reclaimed
                with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                    await self._uploads.flush()  # a forget lost here costs the next run a "gone" delete

    async def _start_uploads(self, journal: Journal) -> None:
        """Settle an earlier run's uploads and read the file quota (only clients with a Files API)."""
        files = getattr(self._client, "files", None)
        if isinstance(files, Files):
            self._uploads = BatchUploads(files, journal, keep=self._spec.keep_uploads, emit=self._emit)
            try:
                await self._uploads.start()
            except EvolinkError as exc:  # a wrong Files API URL: one error naming it, every input left pending
                if (fatal := ends_submitting(exc)) is not None:
                    raise fatal from None
                raise

    async def _settle_lost_submits(self) -> None:
        """Inputs an earlier run may have submitted (a body is stored, no task id), with a client that
        can look them up (its server keeps no idempotency key): find their tasks and record them, so
        the run re-attaches instead of submitting again. One the lookup cannot tell is not sent."""
        client = self._client
        if not isinstance(client, FindsLostSubmits):
            return  # the server de-duplicates by the idempotency key: the same key is sent again
        journal = self.journal
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

    async def _input_ended(self, key: str) -> None:
        """``key`` has ended (results saved, failed, refused): its uploaded file is not needed any more."""
        if self._uploads is not None:
            await self._uploads.ended(key)

    # --- inputs -----------------------------------------------------------------------------

    async def _count_all(self) -> None:
        """Count the inputs ahead of the walk, which goes at the pace of the uploads and submits,
        so that a progress total is right from the start (``counted``). A count, never a list;
        it stops as soon as the walk itself has found them all, or the run ends."""

        def count() -> int | None:
            total = 0
            try:
                for _ in self._source.inputs():  # an unreadable folder is the walk's to report
                    if not self._counting:
                        return None
                    total += 1
            except (OSError, EvolinkError):  # the walk reports what it cannot read; the count just stops
                return None
            return total

        total = await anyio.to_thread.run_sync(count, abandon_on_cancel=True)
        if total is not None and self._counting:
            self._emit(BatchEvent(kind="counted", total=total))

    async def _prepare_all(self, send: MemoryObjectSendStream[FanOutItem[Any]], group: anyio.abc.TaskGroup) -> None:
        spec = self._spec
        # Called in the worker thread that advances the walk; the loop only reads the list.
        items = self._source.inputs(on_unreadable=self.summary.unreadable_folders.append)
        walk_lock = anyio.Lock()

        async def next_item() -> Any:
            async with walk_lock:  # one thread advances the generator at a time
                found = await anyio.to_thread.run_sync(next, items, None)
            if found is not None:
                self.summary.inputs += 1
                self._emit(BatchEvent(kind="found", key=self._source.key_of(found), total=self.summary.inputs))
            return found

        async def worker(out: anyio.abc.ObjectSendStream[FanOutItem[Any]]) -> None:
            async with out:
                while (item := await next_item()) is not None:
                    prepared = await self._prepare(item, group)
                    if prepared is not None:
                        await out.send(prepared)

        async with send, anyio.create_task_group() as workers:
            for _ in range(spec.max_uploads):
                workers.start_soon(worker, send.clone())
        self._counting = False  # the walk's own number is the total now
        self._emit(BatchEvent(kind="discovered", total=self.summary.inputs))

    async def _prepare(self, item: Any, group: anyio.abc.TaskGroup) -> FanOutItem[Any] | None:
        """Bring one input up to the point where fan_out can take it (or finish it here)."""
        spec, key = self._spec, self._source.key_of(item)
        if (bad_name := key_problem(key)) is not None:  # fails alone, before a header, a journal or a terminal
            self._fail(key, "invalid_input", bad_name)
            return None
        try:
            problem, content = await self._source.inspect(item)
        except OSError as exc:
            self._fail(key, "invalid_input", f"cannot be read: {exc.strerror or exc}")
            return None
        if problem is not None:
            self._refuse(invalid_input(key, problem))
            return None
        entry = await self._reserve(key, content)
        if (failed := failed_before(entry, spec)) is not None:
            self._refuse(failed)
            return None
        if entry.status in FAILED_BEFORE:  # and retry_failed: a new idempotency key, submitted again
            entry = await self.journal.restart(key)
        if entry.status is EntryStatus.DOWNLOADED:
            self.summary.done_before += 1
            self._emit(BatchEvent(kind="done_before", key=key, task_id=entry.task_id, paths=entry.result_paths))
            return None
        if entry.needs_download:
            group.start_soon(self._download, key, entry.task_id, entry.result_urls)
            return None
        if entry.needs_watch:
            self.summary.reattached += 1
            self._emit(BatchEvent(kind="reattached", key=key, task_id=entry.task_id))
            return FanOutItem(key=key, task_id=entry.task_id)
        if self._fan_out is not None and self._fan_out.summary.stopped_reason is not None:
            # Submitting stopped (credits exhausted, budget reached): no upload; the fan-out ends it, unsent.
            return FanOutItem(key=key, idempotency_key=entry.idempotency_key)
        if not self._within_budget():  # the entry stays pending: a later run with more budget submits it
            self._fail(key, "not_submitted", f"the credit budget ({spec.max_credits:g}) is reached; run again "
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
            if not _transient(exc) and not isinstance(exc, ValidationError):
                await self.journal.record_outcome(
                    key, EntryStatus.SUBMIT_FAILED, error_code=error_code(exc), error_message=error_message(exc)
                )
            self._fail(key, error_code(exc), error_message(exc), remedy=exc.remedy)
            return None
        request = self._source.request_from_body(body)
        return FanOutItem(key=key, request=request, idempotency_key=entry.idempotency_key)

    async def _reserve(self, key: str, content: str | None) -> Entry:
        """The journal entry of ``key``; a new one (new idempotency key) when the input's content changed."""
        spec = self._spec
        fingerprint = request_fingerprint(spec.fingerprint_body(key, content=content))
        legacy = request_fingerprint(spec.fingerprint_body(key))
        earlier = await self.journal.get(key)
        if earlier is None and (found := await anyio.to_thread.run_sync(result_files, spec.output_dir, key)):
            # Results, but no record (a journal started anew): paid for already, not submitted again.
            return await self.journal.record_found_results(key, fingerprint, map(str, found))
        if earlier is None or earlier.fingerprint == fingerprint:
            return await self.journal.reserve(key, fingerprint)
        if earlier.fingerprint == legacy:  # a journal from before content signatures: nothing to compare
            return await self.journal.reserve(key, legacy)
        # The meta check already refused another model, prompt or parameters: the input changed.
        self._emit(BatchEvent(kind="changed", key=key, task_id=earlier.task_id,
                              message="content changed since the last run: a new input, submitted again"))  # fmt: skip
        return await self.journal.reserve(key, fingerprint, restart_on_mismatch=True)

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
        prepared = await self._source.prepare(item, entry, context)
        *others, last = prepared.uploads or (None,)
        for upload in others:  # every file but the last recorded alone; the last with the body
            assert upload is not None
            await self.journal.record_upload(upload.key, upload.idempotency_key, upload.file_id, upload.file_url)
        sent = await self.journal.record_request(entry.key, json.dumps(prepared.body), upload=last)
        result: dict[str, Any] = json.loads(sent)
        return result

    # --- fan-out events ---------------------------------------------------------------------

    async def _handle(self, event: TaskEvent, group: anyio.abc.TaskGroup) -> None:
        key = str(event.key)
        task = event.task
        task_id = task.id if task is not None else None
        journal = self.journal
        if event.kind is EventKind.SUBMITTED and task is not None:
            await journal.record_submitted(key, task.id)
            self.summary.submitted += 1
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
            if not _transient(error):
                await journal.record_outcome(
                    key, EntryStatus.SUBMIT_FAILED, error_code=error_code(error), error_message=error_message(error)
                )
                group.start_soon(self._input_ended, key)  # refused: never submitted with this file
            self._fail(key, error_code(error), error_message(error), remedy=getattr(error, "remedy", None))
        elif event.kind is EventKind.TIMED_OUT:
            await journal.record_outcome(key, EntryStatus.TIMED_OUT)
            self._fail(key, "timed_out", f"not finished after {self._spec.timeout:g} s; run again to keep waiting",
                       task_id=task_id)  # fmt: skip
        elif event.kind in (EventKind.FAILED, EventKind.CANCELLED):
            code, message = task_error(event)
            status = EntryStatus.FAILED if event.kind is EventKind.FAILED else EntryStatus.CANCELLED
            await journal.record_outcome(key, status, error_code=code, error_message=message)
            self._fail(key, code, message, task_id=task_id)
            group.start_soon(self._input_ended, key)

    # --- downloads --------------------------------------------------------------------------

    async def _download(self, key: str, task_id: str | None, urls: tuple[str, ...]) -> None:
        try:
            await self._download_results(key, task_id, urls)
        finally:  # saved or not, the task has ended: its input file is not needed for a re-download
            await self._input_ended(key)

    async def _download_results(self, key: str, task_id: str | None, urls: tuple[str, ...]) -> None:
        async with self._downloads:
            try:
                paths = await self._saver.save(key, task_id, urls)
            except DownloadError as exc:
                if exc.reason == "disk":
                    raise _disk_stop(exc, self._spec.output_dir) from None
                self._fail(key, error_code(exc), error_message(exc), task_id=task_id)
                return
            except EvolinkError as exc:  # UnsafePathError, a fresh query that failed, and friends
                self._fail(key, error_code(exc), error_message(exc), task_id=task_id)
                return
            await self.journal.record_downloads(key, [str(p) for p in paths])
        self.summary.downloaded += 1
        self.summary.results_saved += len(paths)
        self._emit(BatchEvent(kind="downloaded", key=key, task_id=task_id, paths=tuple(map(str, paths))))
