"""A fleet worker: claims inputs from a PostgreSQL journal, submits, watches, downloads, records.

Run any number of them, on any number of machines, against one journal::

    async with EvolinkClient() as client, PgJournal(url) as journal:
        summary = await Worker(client, journal, WorkerOptions(out_dir=Path("/shared/out"))).run()

Any ``Client`` runs a worker. What a claimed manifest line becomes is the worker's ``source`` (a
:class:`~evolink_async.batch.PlannedSource`, the same request makers a one-machine ``Batch`` uses):
image edits by default (``ManifestSource``: local images uploaded), Midjourney prompts with
``source=ImagineSource()`` and a ``MidjourneyClient``. Results are saved by the batch's one
``ResultSaver``.

Per input: claim (a lease and its epoch) -> ``begin_submit`` (fenced by the lease; the body is
stored) -> submit with the journal's idempotency key -> the task id into the write-ahead file,
then ``record_submitted`` -> watch (the client's tracker) -> outcome -> download (to a shared
``out_dir``) or only the result URLs. Leases are renewed every third of their length; a worker
that dies loses them at expiry and another one takes its inputs over: by task id where one was
recorded, as ``uncertain`` where a submit began without one (until the write-ahead file of the
worker that sent it gives its task id). A download that fails leaves the input ``completed``
with the error (``download_failed``); a worker started later downloads it again, by task id.

Every write about an input names the lease's epoch: a worker that finds an input taken over
(paused past its lease) stops watching it at once, downloads nothing for it, logs it and counts
it (``lost_leases``, ``fenced_writes_refused``). A journal that goes away is retried for
``journal_outage`` seconds while the tasks go on being watched; past that the worker stops with
a ``JournalUnavailableError`` and the write-ahead file keeps every task id it could not record.

This module is over 400 lines: the worker's steps (claims, leases, the write-ahead file, each
input's events) share its state (what it holds under which epoch, the fan-out, the summary) and
read best in one place. What is not that state lives beside it: options, summary and fault hooks
in ``_worker_options``, uploads in ``_worker_uploads``, request making in the sources, result
saving in ``_results``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.abc

from .._core.checks import CREDITS
from .._core.logging import logger
from .._models.events import EventKind, TaskEvent
from .._protocols.evolink.files import Files
from .._watching.fan_out import FanOutItem
from ..errors import (
    DownloadError,
    DuplicateTaskError,
    EvolinkError,
    ModelUnavailableError,
    ValidationError,
    is_fatal_to_batch,
    may_have_been_billed,
    proves_nothing_taken,
    was_refused_for_now,
)
from ._client_api import BatchClient
from ._entries import EntryStatus, JournalError
from ._manifest import parse_line
from ._manifest_source import ManifestSource
from ._outcomes import error_code, error_message, first_cause, stays_pending, task_error
from ._pg_base import JournalHealth, JournalUnavailableError
from ._pg_store import Claimed, PgJournal
from ._results import ResultSaver
from ._source import PlannedSource, SourceContext
from ._spec import NORMALIZED_DIR, BatchEvent
from ._tracing import summary_attributes, traced_run
from ._uploads import files_needed
from ._wal import WalRecord, WriteAheadFile
from ._worker_options import FAULT_ENV, Faults, WorkerOptions, WorkerSummary
from ._worker_uploads import WorkerUploads

__all__ = ["FAULT_ENV", "Worker", "WorkerOptions", "WorkerSummary"]

#: Events read and waiting for their journal record (during an outage); beyond, reading waits.
_MAX_UNRECORDED = 100_000

def _input_of(event: TaskEvent) -> tuple[str, int]:
    """The fan-out key of an input: its journal key and the lease epoch it was claimed under (so the
    events of an earlier claim of the same input are told apart from those of a later one)."""
    key, epoch = cast("tuple[str, int]", event.key)
    return key, epoch


class Worker:
    """One worker of a fleet batch; ``run()`` returns when the batch has nothing left for anyone."""

    def __init__(self, client: BatchClient, journal: PgJournal, options: WorkerOptions | None = None, *,
                 source: PlannedSource[Any] | None = None,
                 on_event: Callable[[BatchEvent], None] | None = None) -> None:  # fmt: skip
        self._client = client
        #: What a claimed line becomes (default: image edits, made once the journal's ``root`` is known).
        self._given_source = source
        self._source: PlannedSource[Any] = source or ManifestSource(root=self._options_root(options))
        self._journal = journal
        self._options = options or WorkerOptions()
        self.id = self._options.worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.summary = WorkerSummary(worker=self.id)
        self._on_event = on_event or (lambda event: None)
        #: key -> the epoch of this worker's lease on it (the fencing token of every write about it).
        self._held: dict[str, int] = {}
        self._idempotency_keys: dict[str, str] = {}
        self._wake = anyio.Event()
        self._downloads = anyio.Semaphore(self._options.max_downloads)
        self._root: Path | None = self._options.root
        #: The journal's time at this worker's start: downloads that failed before it are retried
        #: (once per run: the same one-try-per-run rule as the one-machine batch). None: none left.
        self._retry_downloads_before: datetime | None = None
        self._fan_out: Any = None
        #: Inputs lost (no longer watched) and then taken back by a late task id record: watched again.
        self._unwatched: set[str] = set()
        self._rewatch: list[FanOutItem[Any]] = []
        #: Inputs handed to the fan-out for a submit whose answer (any event) has not been read yet.
        self._unanswered: dict[str, int] = {}
        #: The model each unanswered submit names (a stop for one model gives back those naming it).
        self._unanswered_models: dict[str, str] = {}
        #: Submits answered with a task that this worker has read (against the fan-out's own count),
        #: and those of them whose task id the record loop has handled (recorded, or found another's).
        self._submits_read = 0
        self._submits_recorded = 0
        self._wal = WriteAheadFile(self._options.wal) if self._options.wal is not None else None
        #: Write-ahead records still to bring into the journal, and those it now holds (to forget).
        self._wal_pending: list[WalRecord] = []
        self._wal_recorded: set[WalRecord] = set()
        self._wal_next_replay = 0.0
        self._faults = Faults(os.environ.get(FAULT_ENV, ""))
        # Only with a client that has a Files API (a Midjourney proxy takes no uploads).
        files = getattr(client, "files", None)
        self._uploads = WorkerUploads(
            files, journal, owner=self.id, lease=self._options.lease, keep=self._options.keep_uploads,
            emit=self._on_event,
        ) if isinstance(files, Files) else None  # fmt: skip
        self._saver = ResultSaver(client, self._options.out_dir or Path("."), keep_suffix=False)

    async def _check_stored_budget(self) -> None:
        """Refuse a budget in the journal that is no number (NaN, written by a version that took one):
        ``spent > nan`` is never true, so it would bill every input. A new ``max_credits`` replaces it."""
        stored = (await self._journal.limits()).get("max_credits")
        try:
            CREDITS.check_optional("max_credits", stored)
        except ValidationError as exc:
            raise JournalError(f"the journal's batch-wide max_credits is not a budget ({exc.rule}); "
                               "give max_credits to replace it") from None  # fmt: skip

    async def _check_source_fits(self) -> None:
        """Refuse at once a source that cannot run this batch (a prompt worker on a batch of edits, or
        the reverse): the first planned line is tried before anything is claimed, so that a worker
        started the wrong way fails no input. Raises the source's ``ValidationError``, naming the line."""
        async for row in self._journal.entries(page_size=1):
            if row["line"] is not None:
                self._source.item_of(parse_line(row["line"]))
            return

    def _emit(self, kind: str, key: str | None = None, **fields: Any) -> None:
        self._on_event(BatchEvent(kind=kind, key=key, **fields))

    def _finish(self, key: str, epoch: int, *, ended: bool = True) -> None:
        """This worker is done with ``key`` as held under ``epoch`` (not a later claim of it).

        ``ended``: the input has ended, its uploaded files (whoever uploaded them) are deleted; not
        when they may still be used (timed out or uncertain: its task may run; released: the stored
        body that a later claim sends names them).
        """
        if self._held.get(key) != epoch:
            return
        del self._held[key]
        self._wake.set()
        if ended:
            self._delete_uploads_of(key)

    @staticmethod
    def _options_root(options: WorkerOptions | None) -> Path | None:
        return options.root if options is not None else None

    def _delete_uploads_of(self, key: str) -> None:
        if self._uploads is not None:
            self._uploads.ended(key)

    def _lose(self, key: str, why: str, epoch: int) -> None:
        """Another worker holds ``key`` now: stop watching it at once, write and download nothing for it."""
        if self._held.get(key) != epoch:
            return
        del self._held[key]
        self.summary.lost_leases += 1
        self.summary.fenced_writes_refused = self._journal.fenced_refused
        logger.warning("input %r: lease lost (%s); another worker has it, this one lets it go", key, why)
        self._emit("lease_lost", key, message=why)
        if self._fan_out is not None and self._fan_out.drop((key, epoch)):
            self._unwatched.add(key)
        self._wake.set()

    def _on_journal(self, state: str, health: JournalHealth) -> None:
        self.summary.journal_outages = health.outages
        self.summary.seconds_without_journal = round(health.seconds_without, 3)
        cause = f" ({health.last_error})" if state == "down" else ""
        self._emit(f"journal_{state}", message=f"{health.outages} outage(s) survived, "
                   f"{health.seconds_without:.1f} s without the journal{cause}")  # fmt: skip

    @traced_run(
        "fleet_worker",
        started=lambda worker: {"evolink.worker.id": worker.id, "evolink.worker.max_held": worker._options.max_held},
        ended=lambda worker: summary_attributes("evolink.worker", worker.summary),
    )  # fmt: skip
    async def run(self) -> WorkerSummary:
        journal, options = self._journal, self._options
        if options.max_credits is None:  # the journal's budget stands: it must be one
            await self._check_stored_budget()
        journal.outage = options.journal_outage
        journal.on_outage = self._on_journal
        if self._root is None and (root := await journal.get_meta("root")):
            self._root = Path(root)
        if self._given_source is None:  # manifest paths resolve under the root this worker now knows
            self._source = ManifestSource(root=self._root)
        await self._check_source_fits()
        started = await journal.register_worker(self.id, host=socket.gethostname(), pid=os.getpid())
        # Without --out only URLs are recorded: re-taking a failed download would only record them again.
        self._retry_downloads_before = started if options.out_dir is not None else None
        await journal.set_limits(max_in_flight=options.max_in_flight, max_credits=options.max_credits,
                                 uncertain_slot_hold=options.uncertain_slot_hold)  # fmt: skip
        if options.resubmit_uncertain:
            requeued = await journal.requeue_uncertain()
            if requeued:
                logger.warning("resubmitting %d uncertain input(s) with their original idempotency keys", requeued)
        if options.out_dir is not None:
            await anyio.to_thread.run_sync(lambda: options.out_dir.mkdir(parents=True, exist_ok=True))  # type: ignore[union-attr]
        if self._wal is not None:
            self._wal_pending = await anyio.to_thread.run_sync(self._wal.records)
        if self._uploads is not None and await journal.uploads():
            await self._uploads.start()  # files recorded by earlier workers: those of ended inputs are deleted now
        unreachable = False
        stopped_by: BaseException | None = None
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._renew_loop)
                try:
                    # Events are read at once (a task id goes into the write-ahead file the moment its
                    # submit is answered) and recorded in order by one task, which may wait out a
                    # journal outage while the tasks go on being watched.
                    send, receive = anyio.create_memory_object_stream[tuple[TaskEvent, WalRecord | None]](
                        _MAX_UNRECORDED
                    )
                    async with anyio.create_task_group() as work, self._client.fan_out(
                        self._items(work), max_in_flight=options.max_held, buffer_size=max(64, options.max_held)
                    ) as events:
                        self._fan_out = events
                        work.start_soon(self._record_loop, receive, work)
                        async with send:
                            async for event in events:
                                answered = _input_of(event)[0]
                                self._unanswered.pop(answered, None)
                                self._unanswered_models.pop(answered, None)
                                if event.kind is EventKind.SUBMITTED:
                                    self._submits_read += 1
                                await send.send((event, await self._write_ahead(event)))
                finally:
                    outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            self.summary.interrupted = True
            cause = first_cause(group)
            unreachable = isinstance(cause, JournalUnavailableError)
            stopped_by = cause
            raise cause from None  # a full disk, a wrong key: one cause, not a tree
        except BaseException as exc:
            self.summary.interrupted = True
            unreachable = isinstance(exc, JournalUnavailableError)
            stopped_by = exc
            raise
        finally:
            # A protocol that never says what a task costs: "0 credits reserved" would be false.
            if not self._client.protocol.reports_cost and not self.summary.credits_reserved:
                self.summary.credits_reserved = None
            self.summary.fenced_writes_refused = journal.fenced_refused
            if self._fan_out is not None:
                self.summary.recovered_submits = self._fan_out.summary.recovered_submits
            self._on_journal("health", journal.health)
            if self._uploads is not None:  # ended inputs' files: let their deletions finish, bounded
                await self._uploads.finish(journal_reachable=not unreachable)
                self.summary.uploads_deleted = self._uploads.deleted
                self.summary.quota_waits = self._uploads.quota_waits
            if not unreachable:  # with the journal gone, there is nothing it could be told
                with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                    if isinstance(stopped_by, EvolinkError) and proves_nothing_taken(stopped_by):
                        await self._give_back_unanswered(stopped_by)
                    elif isinstance(stopped_by, ModelUnavailableError) and stopped_by.model is not None:
                        await self._give_back_unanswered(stopped_by, model=stopped_by.model)
                    await journal.stop_worker(self.id)
                    await self._forget_recorded()
        return self.summary

    async def _give_back_unanswered(self, refusal: EvolinkError, *, model: str | None = None) -> None:
        """The worker stops because the server refused a submit in a way that holds for every submit it
        sent (``proves_nothing_taken``), or for every one naming ``model`` (a model the service does
        not offer): the inputs it sent, or was about to send, and got no answer for created no task.
        Back to the pool as pending (no slot, credits refunded), not ``uncertain``: a re-run with the
        right URL, key or model submits each of them once. Inputs of other models stay leased."""
        unanswered, self._unanswered = self._unanswered, {}
        models, self._unanswered_models = self._unanswered_models, {}
        if model is not None:  # no model recorded: stopped before its submit was handed over, never sent
            unanswered = {key: epoch for key, epoch in unanswered.items() if models.get(key, model) == model}
        if self._fan_out is not None and self._fan_out.summary.submitted > self._submits_read:
            # A stop drops the fan-out's events not yet read: a task was made whose input this worker
            # cannot tell (the endpoint or key worked a moment before). Nothing is given back; those
            # inputs stay leased, then ``uncertain``: never sent again without a decision.
            logger.warning("stopped with %d submit answer(s) unread: the inputs without an answer stay leased",
                           self._fan_out.summary.submitted - self._submits_read)  # fmt: skip
            return
        for key, epoch in unanswered.items():
            if self._held.get(key) != epoch:
                continue
            if await self._journal.release_submit(key, owner=self.id, epoch=epoch, error_code=error_code(refusal),
                                                  error_message=error_message(refusal)):  # fmt: skip
                self.summary.released += 1
            self._finish(key, epoch, ended=False)

    # --- leases -------------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        lease = self._options.lease
        while True:
            await anyio.sleep(lease / 3)
            held = dict(self._held)
            try:
                with anyio.fail_after(lease / 3):
                    still = await self._journal.renew(self.id, lease=lease, held=held)
            except JournalUnavailableError:
                raise
            except (Exception, TimeoutError) as exc:  # the journal is away: the fences keep writes safe
                logger.warning("lease renewal failed (%s); retrying", type(exc).__name__ if not str(exc) else exc)
                continue
            for key, epoch in held.items():
                # Not renewed: released by this worker meanwhile (the epoch stays), or taken over.
                if key not in still and self._held.get(key) == epoch and await self._journal.taken_over(
                    key, epoch=epoch
                ):
                    self._lose(key, "taken over after this worker's lease expired", epoch)

    # --- the write-ahead file -----------------------------------------------------------------

    async def _replay(self) -> AsyncIterator[FanOutItem[Any]]:
        """Bring task ids of the write-ahead file into the journal and watch them (no submit)."""
        if not self._wal_pending or time.monotonic() < self._wal_next_replay:
            return
        self._wal_next_replay = time.monotonic() + self._options.lease / 3
        waiting: list[WalRecord] = []
        for record in self._wal_pending:
            if record.key in self._held:  # being recorded by this run right now
                waiting.append(record)
                continue
            refused = self._journal.fenced_refused
            try:
                epoch = await self._journal.record_submitted(
                    record.key, record.task_id, owner=self.id, epoch=-1, lease=self._options.lease,
                    idempotency_key=record.idempotency_key,
                )  # fmt: skip
            except DuplicateTaskError as exc:  # another input's task (a confused server): nothing to watch
                logger.error("write-ahead record of input %r: %s", record.key, exc)
                self._wal_recorded.add(record)
                continue
            self._journal.fenced_refused = refused  # finding the input held elsewhere is no refused write
            if epoch is not None:
                self._held[record.key] = epoch
                self._wal_recorded.add(record)
                self.summary.claimed += 1
                self.summary.recovered_task_ids += 1
                self._emit("reattached", record.key, task_id=record.task_id, message="from the write-ahead file")
                yield FanOutItem(key=(record.key, epoch), task_id=record.task_id)
                continue
            entry = await self._journal.get(record.key)
            if entry is None or entry.idempotency_key != record.idempotency_key:
                continue  # another journal's input (same file for two journals): left alone
            if entry.task_id == record.task_id:
                self._wal_recorded.add(record)
            elif entry.task_id is not None:
                logger.error("input %r has task %s in the journal and task %s in the write-ahead file: both were "
                             "billed", record.key, entry.task_id, record.task_id)  # fmt: skip
                self._wal_recorded.add(record)
            else:
                waiting.append(record)  # still leased by a worker that may be alive: try again later
        self._wal_pending = waiting

    async def _forget_recorded(self) -> None:
        if self._wal is not None and self._wal_recorded:
            done, self._wal_recorded = set(self._wal_recorded), set()
            await anyio.to_thread.run_sync(self._wal.forget, done)

    # --- claiming -----------------------------------------------------------------------------

    async def _claim(self, limit: int) -> Any:
        inside = None
        if self._faults.hit("stop-in-claim"):
            stopped: list[bool] = []

            def inside() -> None:  # once: the claim's retry after the freeze must not freeze again
                if not stopped:
                    stopped.append(True)
                    Faults.signal_self(signal.SIGSTOP)

        return await self._journal.claim(self.id, limit=limit, lease=self._options.lease, inside=inside)

    def _own_room_wait(self) -> float:
        """How long a worker that only its own inputs can give room (at its fair share of the batch's
        bound, or holding ``max_held``) waits for one of them to end before it claims again anyway.

        Its own inputs ending wake it at once; the bound is for what it cannot see. The share grows
        when the live workers become fewer: a crashed one stops counting only once its heartbeat is
        a lease old, so looking again every third of a lease (the renewal's period) adds at most a
        third to that; one that stopped cleanly counts out at once, and its room is used within a
        third of a lease. Expired leases are taken over by any claim, and expire only after a whole
        lease. With no input left, one comes back when a worker gives it back (that worker claims it
        again itself, woken by its own release), a lease expires, or a plan adds inputs (a worker
        started for them takes them at once). Never shorter than ``poll_interval``, and a pending
        write-ahead replay still comes on time.
        """
        wait = max(self._options.poll_interval, self._options.lease / 3)
        if self._wal_pending:
            wait = min(wait, max(self._options.poll_interval, self._wal_next_replay - time.monotonic()))
        return wait

    def _answers_pending(self) -> bool:
        """Submits this worker sent whose answer it has not read, or read and not yet recorded.

        Holding nothing is no end while one is pending: a worker paused past its leases loses the
        inputs it was submitting, and another worker makes them ``uncertain`` (it cannot know their
        tasks); the task id read late then takes the input back for this worker (``_submitted``),
        and only this worker can watch it. Every submit ends in an answer or a failure (bounded by
        the client's timeout), so this wait ends.
        """
        return bool(self._unanswered) or self._submits_read > self._submits_recorded

    async def _items(self, work: anyio.abc.TaskGroup) -> AsyncIterator[FanOutItem[Any]]:
        options = self._options
        budget_exhausted = False
        while True:
            # Whatever happens from here on (an input of this worker ends or is lost, one is to be
            # watched again) ends the wait at the bottom at once: made before, never missed.
            self._wake = anyio.Event()
            while self._rewatch:
                yield self._rewatch.pop()
            async for item in self._replay():
                yield item
            if len(self._wal_recorded) >= 256:
                await self._forget_recorded()
            room = options.max_held - len(self._held)
            # Only this worker's own inputs ending can give it room (looked at again after a bound anyway).
            own_room_only = room <= 0
            if room > 0 and self._retry_downloads_before is not None:
                limit = min(options.claim_size, room)
                retries = await self._journal.claim_downloads(self.id, limit=limit, lease=options.lease,
                                                              failed_before=self._retry_downloads_before)  # fmt: skip
                if len(retries) < limit:
                    self._retry_downloads_before = None
                for claimed in retries:
                    self._held[claimed.entry.key] = claimed.epoch
                    self.summary.claimed += 1
                    await self._prepare(claimed, work)  # a completed input: only its download, no fan-out item
                if retries:
                    continue
            # Submitting stopped (the key's credits ran out): what is held is watched to its end, no more claimed.
            stopped = self._fan_out.summary.stopped_reason if self._fan_out is not None else None
            if room > 0 and stopped is None:
                claim = await self._claim(min(options.claim_size, room))
                budget_exhausted = claim.budget_exhausted
                own_room_only = claim.at_share or claim.nothing_left
                self.summary.claims += 1
                if not claim.items:
                    self.summary.empty_claims += 1
                for claimed in claim.items:
                    self._held[claimed.entry.key] = claimed.epoch
                    self.summary.claimed += 1
                    prepared = await self._prepare(claimed, work)
                    if prepared is not None:
                        yield prepared
                if claim.items and not own_room_only:
                    continue
            if not self._held and not self._wal_pending and not self._answers_pending():
                remaining = await self._journal.remaining(self.id)
                if stopped is not None:  # the inputs left stay claimable, by a later run or another key's worker
                    self.summary.stopped_reason = stopped
                    if remaining["others"] == 0 and remaining["pending"]:
                        self.summary.not_submitted = await self._journal.mark_not_submitted(
                            f"submitting stopped before this input's submit ({stopped})")  # fmt: skip
                    self._emit("submits_stopped", total=remaining["pending"], message=stopped)
                    return
                if remaining["others"] == 0 and (remaining["pending"] == 0 or budget_exhausted):
                    if remaining["pending"]:
                        reason = "the credit budget was reached before this input's submit"  # stored: no option names
                        self.summary.not_submitted = await self._journal.mark_not_submitted(reason)
                        self._emit("budget_reached", total=self.summary.not_submitted)
                    return
            elif not self._held and self._wal_pending and time.monotonic() < self._wal_next_replay:
                # Only write-ahead records are left (another worker's, read at this one's start: their
                # inputs were leased by it). Once no input is left to anyone, settle them at the next
                # turn rather than a third of a lease later: this worker could not end before.
                remaining = await self._journal.remaining(self.id)
                if remaining["others"] == 0 and remaining["pending"] == 0:
                    self._wal_next_replay = 0.0
            # At its share (or max_held), or with no input left to take (the end of a run), a worker
            # that holds inputs waits for one to end: claiming every poll interval would get nothing
            # (issue 21: 5803 claims for 600 inputs with 6 workers). Under its share (rounded down,
            # with the batch's bound full), or holding nothing (its wake would never come), a slot
            # another worker frees is only seen by claiming: it polls.
            wait = self._own_room_wait() if own_room_only and self._held else options.poll_interval
            with anyio.move_on_after(wait):
                await self._wake.wait()

    async def _prepare(self, claimed: Claimed, work: anyio.abc.TaskGroup) -> FanOutItem[Any] | None:
        entry = claimed.entry
        key = entry.key
        epoch = claimed.epoch
        self._idempotency_keys[key] = entry.idempotency_key
        if entry.task_id is not None and entry.status in (EntryStatus.SUBMITTED, EntryStatus.TIMED_OUT):
            self.summary.reattached += 1
            self._emit("reattached", key, task_id=entry.task_id)
            return FanOutItem(key=(key, epoch), task_id=entry.task_id)
        if entry.status is EntryStatus.COMPLETED:
            await self._completed(key, epoch, entry.task_id, entry.result_urls, work)
            return None
        if entry.status is not EntryStatus.PENDING_SUBMIT:  # finished meanwhile: nothing to do
            self._finish(key, epoch, ended=not files_needed(entry))
            return None
        try:
            body = entry.request_body or json.dumps(await self._request_body(claimed))
        except (EvolinkError, OSError) as exc:
            if is_fatal_to_batch(exc):
                raise
            # An upload that did not go through: try later (the files recorded so far are reused then).
            if stays_pending(exc):
                if await self._journal.release_submit(key, owner=self.id, epoch=epoch, error_code=error_code(exc),
                                                      error_message=error_message(exc)):  # fmt: skip
                    self.summary.released += 1
                self._finish(key, epoch, ended=False)
                return None
            else:
                code, message = error_code(exc), error_message(exc)
                if await self._journal.record_outcome(key, EntryStatus.SUBMIT_FAILED, owner=self.id, epoch=epoch,
                                                      error_code=code, error_message=message):  # fmt: skip
                    self.summary.failed += 1
                    self._emit("failed", key, error_code=code, message=message, remedy=getattr(exc, "remedy", None))
            self._finish(key, epoch)
            return None
        # Counted as sent before the journal says so: a stop may cancel this call after its commit.
        self._unanswered[key] = epoch
        sent = await self._journal.begin_submit(key, self.id, body, epoch=epoch)
        if sent is None:  # the lease lapsed: another worker owns this input now
            self._unanswered.pop(key, None)
            self._lose(key, "lease expired before the submit", epoch)
            # A file this worker uploaded meanwhile is recorded: the worker that ends the input deletes
            # it; if the input ended already, nobody will: deleted here.
            current = await self._journal.get(key)
            if current is None or not files_needed(current):
                self._delete_uploads_of(key)
            return None
        sent_body = json.loads(sent)
        model = sent_body.get("model")
        self._unanswered_models[key] = model if isinstance(model, str) else ""
        return FanOutItem(key=(key, epoch), request=self._source.request_from_body(sent_body),
                          idempotency_key=entry.idempotency_key)  # fmt: skip

    async def _request_body(self, claimed: Claimed) -> dict[str, Any]:
        """The body of the input's first submit, made by the source (the one-machine batch's makers)."""
        if claimed.line is None:
            raise ValidationError(claimed.entry.key, "has no manifest line in the journal")
        item = self._source.item_of(parse_line(claimed.line))
        scratch = self._options.out_dir / NORMALIZED_DIR if self._options.out_dir is not None else Path(".")
        context = SourceContext(uploads=self._uploads,
                                emit=self._on_event, scratch_dir=scratch)  # fmt: skip
        return (await self._source.prepare(item, claimed.entry, context)).body

    # --- events -------------------------------------------------------------------------------

    async def _write_ahead(self, event: TaskEvent) -> WalRecord | None:
        """A submit was answered: its task id goes into the write-ahead file (durable) before anything else."""
        key, _ = _input_of(event)
        task = event.task
        idempotency_key = self._idempotency_keys.get(key)
        if event.kind is not EventKind.SUBMITTED or task is None or self._wal is None or idempotency_key is None:
            return None
        record = WalRecord(key=key, idempotency_key=idempotency_key, task_id=task.id)
        try:
            await anyio.to_thread.run_sync(self._wal.append, record)
        except OSError as exc:  # a full disk: the journal (next) still records it; warn, go on
            logger.warning("the write-ahead file %s could not be written (%s): task %s of %r is recorded in "
                           "the journal only", self._wal.own, exc, task.id, key)  # fmt: skip
            return None
        if self._faults.hit("kill-after-submit"):
            Faults.signal_self(signal.SIGKILL)
        return record

    async def _record_loop(self, receive: Any, work: anyio.abc.TaskGroup) -> None:
        async with receive:
            async for event, record in receive:
                try:
                    await self._handle(event, work, record)
                finally:
                    if event.kind is EventKind.SUBMITTED:
                        self._submits_recorded += 1
                        if not self._held and not self._answers_pending():  # the last one held the end back
                            self._wake.set()

    async def _submitted(self, key: str, sent_under: int, task_id: str, credits: float | None,
                         record: WalRecord | None) -> None:  # fmt: skip
        """Record a submit's task id (already in the write-ahead file) in the journal."""
        idempotency_key = self._idempotency_keys.get(key)
        self.summary.submitted += 1
        self.summary.credits_reserved = round((self.summary.credits_reserved or 0.0) + (credits or 0.0), 6)
        try:
            epoch = await self._journal.record_submitted(
                key, task_id, owner=self.id, epoch=sent_under, lease=self._options.lease,
                idempotency_key=idempotency_key, credits=credits,
            )  # fmt: skip
        except DuplicateTaskError as exc:  # another input's task: this one fails alone, not the worker
            if record is not None:
                self._wal_recorded.add(record)  # the id is the other input's: nothing of this one to replay
            if self._fan_out is not None:
                self._fan_out.drop((key, sent_under))  # its "task" is the other input's story
            code, message = error_code(exc), error_message(exc)
            if await self._journal.record_outcome(key, EntryStatus.SUBMIT_FAILED, owner=self.id, epoch=sent_under,
                                                  error_code=code, error_message=message):  # fmt: skip
                self.summary.failed += 1
                self._emit("failed", key, task_id=task_id, error_code=code, message=message)
            self._finish(key, sent_under)
            return
        if epoch is None:  # kept in the write-ahead file: a later run records it where it can
            self._lose(key, f"another worker holds it; task {task_id} kept in the write-ahead file", sent_under)
            if record is not None:
                self._wal_pending.append(record)
            return
        if record is not None:
            self._wal_recorded.add(record)
        self._held[key] = epoch  # also when lost meanwhile and taken back by this record: its task is ours
        if epoch != sent_under or key in self._unwatched:  # taken back under a new epoch: watched under it
            if self._fan_out is not None:
                self._fan_out.drop((key, sent_under))
            self._unwatched.discard(key)
            self._rewatch.append(FanOutItem(key=(key, epoch), task_id=task_id))
            self._wake.set()
        self._emit("submitted", key, task_id=task_id)

    async def _handle(self, event: TaskEvent, work: anyio.abc.TaskGroup, record: WalRecord | None = None) -> None:
        key, epoch = _input_of(event)
        task = event.task
        journal = self._journal
        if event.kind is EventKind.SUBMITTED and task is not None:
            credits = task.usage.credits_reserved if task.usage is not None else None
            await self._submitted(key, epoch, task.id, credits, record)
            return
        if self._held.get(key) != epoch:  # lost meanwhile: its events are another worker's business now
            return
        if event.kind is EventKind.COMPLETED and task is not None:
            self.summary.completed += 1
            await self._completed(key, epoch, task.id, task.results, work, record=True)
        elif event.kind is EventKind.SUBMIT_FAILED:
            error = event.error or EvolinkError("submit failed")
            if was_refused_for_now(error):  # nothing created: back to the pool as it is, its credits too
                applied = await journal.release_submit(key, owner=self.id, epoch=epoch, error_code=error_code(error),
                                                       error_message=error_message(error))  # fmt: skip
                self.summary.released += applied
                ended = False  # a later claim sends the stored body, which names its files
            elif may_have_been_billed(error) and not isinstance(error, DuplicateTaskError):  # the task may exist
                applied = await journal.mark_uncertain(key, owner=self.id, epoch=epoch, message=error_message(error))
                ended = False  # the task may exist, or be resubmitted with this body
                if applied:
                    self.summary.uncertain += 1
                    self._emit("uncertain", key, error_code=error_code(error), message=error_message(error))
            else:
                ended = True
                applied = await journal.record_outcome(
                    key, EntryStatus.SUBMIT_FAILED, owner=self.id, epoch=epoch,
                    error_code=error_code(error), error_message=error_message(error),
                )  # fmt: skip
                if applied:
                    self.summary.failed += 1
                    self._emit("failed", key, error_code=error_code(error), message=error_message(error))
            if not applied:
                self._lose(key, "taken over before its submit's outcome was recorded", epoch)
            self._finish(key, epoch, ended=ended)
        elif event.is_terminal:
            code, message = task_error(event)
            status = {EventKind.CANCELLED: EntryStatus.CANCELLED,
                      EventKind.TIMED_OUT: EntryStatus.TIMED_OUT}.get(event.kind, EntryStatus.FAILED)  # fmt: skip
            if await journal.record_outcome(key, status, owner=self.id, epoch=epoch, error_code=code,
                                            error_message=message):  # fmt: skip
                self.summary.failed += 1
                self._emit("failed", key, task_id=task.id if task else None, error_code=code, message=message)
            else:
                self._lose(key, "taken over before its task's outcome was recorded", epoch)
            self._finish(key, epoch, ended=status is not EntryStatus.TIMED_OUT)  # timed out: it may still run

    async def _completed(self, key: str, epoch: int, task_id: str | None, urls: tuple[str, ...],
                         work: anyio.abc.TaskGroup, *, record: bool = False) -> None:  # fmt: skip
        final = self._options.out_dir is None
        if (record or final) and not await self._journal.record_outcome(
            key, EntryStatus.COMPLETED, owner=self.id, epoch=epoch, result_urls=urls, final=final
        ):
            self._lose(key, "taken over before its task's outcome was recorded", epoch)
            return
        self._emit("completed", key, task_id=task_id)
        if final:
            self._finish(key, epoch)
        else:
            if record:  # its slot is free now (the download needs none): room for a claim
                self._wake.set()
            work.start_soon(self._download, key, task_id, urls, epoch)

    async def _download(self, key: str, task_id: str | None, urls: tuple[str, ...], epoch: int) -> None:
        assert self._options.out_dir is not None
        try:
            async with self._downloads:
                # Waiting for a download slot takes time: download only what is still this worker's.
                if self._held.get(key) != epoch or not await self._journal.holds(
                    key, owner=self.id, epoch=epoch, lease=self._options.lease
                ):
                    self._lose(key, "taken over before its download", epoch)
                    return
                paths = await self._saver.save(key, task_id, urls)
            if await self._journal.record_downloads(key, [str(p) for p in paths], owner=self.id, epoch=epoch):
                self.summary.downloaded += 1
                self._emit("downloaded", key, task_id=task_id, paths=tuple(map(str, paths)))
            else:
                self._lose(key, "taken over during its download", epoch)
        except EvolinkError as exc:
            # Still ``completed`` (the task did; its results are not here), with the error beside the
            # URLs: shown as ``download_failed``, fetched again by a later run, never submitted again.
            if await self._journal.record_outcome(
                key, EntryStatus.COMPLETED, owner=self.id, epoch=epoch, result_urls=urls,
                error_code=error_code(exc), error_message=error_message(exc),
            ):  # fmt: skip
                self.summary.failed += 1
                self._emit("failed", key, task_id=task_id, error_code=error_code(exc), message=error_message(exc))
            if isinstance(exc, DownloadError) and exc.reason == "disk":
                # This machine cannot keep results (disk full, read-only folder): it stops claiming
                # inputs it would pay for and lose; other workers go on.
                raise
        finally:
            self._finish(key, epoch)

