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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from .._files.download import remove_stale_parts
from .._protocols.evolink.files import Files
from .._watching.fan_out import FanOut, FanOutItem
from ..errors import EvolinkError, Remedy, ValidationError, ends_submitting
from ._client_api import BatchClient, FindsLostSubmits
from ._evidence import open_batch_journal
from ._folder_source import FolderSource
from ._outcomes import first_cause
from ._pipeline import InputPipeline
from ._plan import plan_batch
from ._source import InputSource
from ._spec import LOCK_NAME, BatchEvent, BatchLockedError, BatchSpec, BatchSummary
from ._sqlite_store import Journal
from ._tracing import summary_attributes, traced_run
from ._uploads import BatchUploads

__all__ = ["Batch", "plan_batch"]

EventSink = Callable[[BatchEvent], None]
#: How long the end of a run (a stop, Ctrl-C included) may spend deleting the uploads of unsent inputs.
_RELEASE_BOUND = 5.0
#: How long the end of a run may spend recording the task ids of submit answers it did not read.
_RECORD_BOUND = 10.0


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
        self._pipeline: InputPipeline | None = None  # each input's steps, once the journal is open
        self._fan_out: FanOut[Any] | None = None
        self._counting = True  # the count ahead of the walk may go on (read from its thread)
        self._uploads: BatchUploads | None = None  # the Files API uploads, when the client has one

    def _emit(self, event: BatchEvent) -> None:
        self._on_event(event)

    @property
    def journal(self) -> Journal:
        assert self._journal is not None
        return self._journal

    @property
    def _steps(self) -> InputPipeline:
        assert self._pipeline is not None
        return self._pipeline

    def _submitting_stopped(self) -> bool:
        """Submitting stopped (credits exhausted, budget reached): the fan-out ends what is left, unsent."""
        return self._fan_out is not None and self._fan_out.summary.stopped_reason is not None

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
                    self._pipeline = InputPipeline(
                        self._client, spec, self._source, journal, summary=self.summary, emit=self._emit,
                        uploads=self._uploads, submitting_stopped=self._submitting_stopped,
                    )  # fmt: skip
                    await self._pipeline.settle_lost_submits()
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
            # The fan-out reads ``receive`` but does not own it: closed here, once the fan-out ended.
            async with receive, anyio.create_task_group() as group:
                group.start_soon(self._count_all)
                group.start_soon(self._prepare_all, send, group)
                async with fan_out as events:
                    async for event in events:
                        await self._steps.handle(event, group)
        finally:  # also when interrupted: the submitted tasks' credits are reserved all the same
            self._counting = False
            # The tasks of submits answered after the last event read: recorded before anything
            # else, so that a re-run re-attaches to them instead of paying for them again.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_RECORD_BOUND):
                await self._steps.record_unread_submits(fan_out.summary.left_in_flight)
            with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_BOUND):
                await self._steps.release_unsent(fan_out.summary.unsent)
            self.summary.credits_reserved = round(fan_out.summary.credits_reserved, 6)
            self.summary.retried_uncertain_submits = fan_out.summary.retried_uncertain_submits
            if not isinstance(self._client, FindsLostSubmits):  # else the re-run looks them up before any resend
                self.summary.interrupted_submits = len(fan_out.summary.interrupted_submits)
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
                    prepared = await self._steps.prepare(item, group)
                    if prepared is not None:
                        await out.send(prepared)
                        self._steps.handed_over(str(prepared.key))

        async with send, anyio.create_task_group() as workers:
            for _ in range(spec.max_uploads):
                workers.start_soon(worker, send.clone())
        self._counting = False  # the walk's own number is the total now
        self._emit(BatchEvent(kind="discovered", total=self.summary.inputs))

