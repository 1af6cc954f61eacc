"""The resumable folder batch: a folder of images in, a folder of results out, nothing paid twice.

Per input, in this order, each step committed to the journal before the next starts::

    reserve (idempotency key) -> local checks -> upload -> record_request (exact body)
    -> submit (fan_out, with that key) -> record_submitted (task id) -> outcome -> download

A run killed anywhere (``kill -9`` included) resumes by running the same command: inputs with a
task id are re-attached (no submit), inputs with a stored body are resubmitted with the same key
and body (the server answers a replay, not a second bill), completed ones are only downloaded.

>>> async with EvolinkClient() as client:
...     summary = await Batch(client, BatchSpec(model="mj-v7-remove-bg", input_dir="in", output_dir="out")).run()
"""

from __future__ import annotations

import contextlib
import functools
import json
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from .._core.logging import logger
from .._files.download import download_urls, remove_stale_parts
from .._files.image_probe import ImageFormat
from .._files.normalize import normalize_image, plan_image
from .._models.events import EventKind, TaskEvent
from .._models.requests import ImageRequest, Request
from .._protocols.evolink.files import Files
from .._watching.fan_out import FanOut, FanOutItem
from ..errors import (
    DownloadError,
    EvolinkError,
    Remedy,
    ValidationError,
    ends_submitting,
    may_have_been_billed,
    was_refused_for_now,
)
from ._client_api import BatchClient
from ._entries import Entry, EntryStatus, request_fingerprint
from ._evidence import open_batch_journal, result_file_name_of, result_files
from ._outcomes import error_code, error_message, first_cause, task_error
from ._spec import (  # fmt: skip
    LOCK_NAME,
    NORMALIZED_DIR,
    BatchEvent,
    BatchLockedError,
    BatchPlan,
    BatchSpec,
    BatchSummary,
    FailedInput,
    UnreadableFolder,
    iter_inputs,
)
from ._sqlite_store import Journal
from ._tracing import summary_attributes, traced_run
from ._uploads import BatchUploads

__all__ = ["Batch", "plan_batch"]

EventSink = Callable[[BatchEvent], None]


def _transient(error: BaseException) -> bool:
    """A submit error after which the entry stays pending and a re-run sends the same key again:
    the submit may have reached the server, or was refused for sure with nothing created."""
    return may_have_been_billed(error) or was_refused_for_now(error)


def _name_problem(name: str) -> str | None:
    """Why a file name cannot be an input's key, or None.

    C0/C1 controls and DEL (``Cc``), line and paragraph separators forge terminal lines and break
    multipart headers; lone surrogates (bytes that are not UTF-8) cannot be stored or sent.
    """
    categories = {unicodedata.category(ch) for ch in name}
    if categories & {"Cc", "Zl", "Zp"}:
        return "the file name contains control characters; rename the file"
    if "Cs" in categories:
        return "the file name is not valid UTF-8; rename the file"
    return None


#: The problem of a link out of the input folder: ``follow_symlinks=True`` takes it.
OUTSIDE_LINK = f"is a symbolic link to a file outside the input folder ({Remedy.FOLLOW_SYMLINKS} takes it)"


def invalid_input(key: str, problem: str) -> FailedInput:
    """An input refused by a local check (``_name_problem``, ``_inspect_input``), for the run and the plan."""
    remedy = Remedy.FOLLOW_SYMLINKS if problem == OUTSIDE_LINK else None
    return FailedInput(key=key, code="invalid_input", message=problem, remedy=remedy)


def _inspect_input(path: Path, root: Path, follow_symlinks: bool) -> tuple[str | None, str | None]:
    """``(problem, content)``: why the input may not be used, or its content signature (size, mtime)."""
    if path.is_symlink() and not follow_symlinks:
        target = path.resolve()
        if not target.is_relative_to(root.resolve()):
            return OUTSIDE_LINK, None
    info = path.stat()
    return None, f"{info.st_size}:{info.st_mtime_ns}"


def _as_sent(path: Path, spec: BatchSpec) -> Path:
    """The name the request's suffix rules see: a normalized input is sent as a PNG."""
    return path.with_name(f"{path.name}.png") if spec.normalize else path


def _unreadable_folder(root: Path, folder: Path, error: OSError) -> UnreadableFolder:
    """The summary's record of a sub-folder ``iter_inputs`` could not list, warned about once."""
    found = UnreadableFolder(path=folder.relative_to(root).as_posix(), message=error.strerror or str(error))
    # %r: a folder name with a newline must not forge a log line.
    logger.warning("cannot read the folder %r; its inputs are left out of the batch: %s", found.path, found.message)
    return found


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
    """Runs one :class:`BatchSpec` with a client; ``on_event`` sees every :class:`BatchEvent`.

    The inputs are the images of ``spec.input_dir``; a subclass takes others by overriding the
    input hooks (``_check_inputs``, ``_inputs``, ``_key``, ``_inspect``, ``_request_body``,
    ``_request_from_body``), as ``PromptBatch`` does for Midjourney prompts.
    """

    def __init__(self, client: BatchClient, spec: BatchSpec, *, on_event: EventSink | None = None) -> None:
        self._client = client
        self._spec = spec
        self._on_event = on_event or (lambda event: None)
        self.summary = BatchSummary(output_dir=str(spec.output_dir), journal=str(spec.journal_path))
        self._journal: Journal | None = None
        self._fan_out: FanOut[Any] | None = None
        self._downloads = anyio.Semaphore(spec.max_downloads)
        self._credits_committed = 0.0  # estimated credits of the submits this run let through
        self._counting = True  # the count ahead of the walk may go on (read from its thread)
        self._uploads: BatchUploads | None = None  # the Files API uploads, when the client has one

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
        await self._check_inputs()
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
                    await self._run()
                except BaseExceptionGroup as group:
                    # One cause (a wrong key, say) reads better than a tree of task groups.
                    cause = first_cause(group)
                    self._stopped_by(cause)
                    raise cause from None
                except BaseException as exc:
                    self._stopped_by(exc)
                    raise
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

    async def _input_ended(self, key: str) -> None:
        """``key`` has ended (results saved, failed, refused): its uploaded file is not needed any more."""
        if self._uploads is not None:
            await self._uploads.ended(key)

    # --- inputs -----------------------------------------------------------------------------

    async def _check_inputs(self) -> None:
        """Refuse a batch whose inputs cannot be found at all, before the journal is opened."""
        if not await anyio.to_thread.run_sync(self._spec.input_dir.is_dir):
            raise ValidationError("input_dir", f"{self._spec.input_dir} is not a folder")

    def _inputs(self, *, counting: bool = False) -> Iterator[Any]:
        """The inputs, lazily (advanced in a worker thread, one at a time); ``counting``: a second
        walk that only counts them (an unreadable folder is the first walk's to report)."""
        spec = self._spec
        exclude = spec.output_dir if spec.output_dir.resolve().is_relative_to(spec.input_dir.resolve()) else None

        def unreadable(folder: Path, error: OSError) -> None:
            # Called in the worker thread that advances the walk; the loop only reads the list.
            if not counting:
                self.summary.unreadable_folders.append(_unreadable_folder(spec.input_dir, folder, error))

        return iter_inputs(spec.input_dir, recursive=spec.recursive, pattern=spec.pattern, exclude=exclude,
                           on_unreadable=unreadable)  # fmt: skip

    async def _inspect(self, path: Any) -> tuple[str | None, str | None]:
        """``(problem, content)`` of one input (see ``_inspect_input``); may raise ``OSError``."""
        spec = self._spec
        return await anyio.to_thread.run_sync(_inspect_input, path, spec.input_dir, spec.follow_symlinks)

    def _request_from_body(self, body: dict[str, object]) -> Request:
        """The request fan_out submits, from the body the journal stored."""
        return ImageRequest.from_body(body)

    async def _count_all(self) -> None:
        """Count the inputs ahead of the walk, which goes at the pace of the uploads and submits,
        so that a progress total is right from the start (``counted``). A count, never a list;
        it stops as soon as the walk itself has found them all, or the run ends."""

        def count() -> int | None:
            total = 0
            try:
                for _ in self._inputs(counting=True):
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
        paths = self._inputs()
        walk_lock = anyio.Lock()

        async def next_path() -> Any:
            async with walk_lock:  # one thread advances the generator at a time
                found = await anyio.to_thread.run_sync(next, paths, None)
            if found is not None:
                self.summary.inputs += 1
                self._emit(BatchEvent(kind="found", key=self._key(found), total=self.summary.inputs))
            return found

        async def worker(out: anyio.abc.ObjectSendStream[FanOutItem[Any]]) -> None:
            async with out:
                while (path := await next_path()) is not None:
                    item = await self._prepare(path, group)
                    if item is not None:
                        await out.send(item)

        async with send, anyio.create_task_group() as workers:
            for _ in range(spec.max_uploads):
                workers.start_soon(worker, send.clone())
        self._counting = False  # the walk's own number is the total now
        self._emit(BatchEvent(kind="discovered", total=self.summary.inputs))

    def _key(self, path: Any) -> str:
        return Path(path).relative_to(self._spec.input_dir).as_posix()

    async def _prepare(self, path: Any, group: anyio.abc.TaskGroup) -> FanOutItem[Any] | None:
        """Bring one input up to the point where fan_out can take it (or finish it here)."""
        spec, key = self._spec, self._key(path)
        if (bad_name := _name_problem(key)) is not None:  # fails alone, before a header, a journal or a terminal
            self._fail(key, "invalid_input", bad_name)
            return None
        try:
            problem, content = await self._inspect(path)
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
            body = await self._request_body(path, key, entry)
        except EvolinkError as exc:
            if (fatal := ends_submitting(exc)) is not None:  # a wrong key or Files API URL: stop, inputs stay pending
                raise fatal from None
            # Transient: the entry stays pending, a re-run tries again. A local rule (ValidationError:
            # nothing was sent) too: the next run checks the file again, so a fixed file or the option
            # the message names (normalize=True) is enough, without retry_failed.
            if not _transient(exc) and not isinstance(exc, ValidationError):
                await self.journal.record_outcome(
                    key, EntryStatus.SUBMIT_FAILED, error_code=error_code(exc), error_message=error_message(exc)
                )
            self._fail(key, error_code(exc), error_message(exc), remedy=exc.remedy)
            return None
        return FanOutItem(key=key, request=self._request_from_body(body), idempotency_key=entry.idempotency_key)

    async def _reserve(self, key: str, content: str | None) -> Entry:
        """The journal entry of ``key``; a new one (new idempotency key) when the file's content changed."""
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
        # The meta check already refused another model, prompt or parameters: the file changed.
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

    async def _request_body(self, path: Any, key: str, entry: Entry) -> dict[str, object]:
        if entry.request_body is not None:  # a resume: send exactly what the key was first used for
            stored: dict[str, object] = json.loads(entry.request_body)
            return stored
        spec = self._spec
        spec.request(_as_sent(path, spec))  # suffix and prompt rules, before anything is read or sent
        try:
            plan = await anyio.to_thread.run_sync(
                functools.partial(plan_image, path, model=spec.model, field=key, normalize=spec.normalize)
            )
        except OSError as exc:
            raise ValidationError(key, f"cannot be read: {exc.strerror or exc}") from None
        if self._uploads is None:
            raise ValidationError(key, "is a local file, and this client has no Files API to upload it to")
        normalized: list[Path] = []

        async def source() -> Path:  # only when the input has no live upload to reuse
            if not plan.needed:
                return Path(path)
            copy = await anyio.to_thread.run_sync(functools.partial(
                normalize_image, Path(path), spec.output_dir / NORMALIZED_DIR, model=spec.model, name=key))  # fmt: skip
            normalized.append(copy)
            self._emit(BatchEvent(kind="normalized", key=key, paths=(str(copy),)))
            return copy

        try:
            upload = await self._uploads.file_for(key, entry, source)
        finally:  # uploaded (or failed): the copy is not needed; a re-run makes it again if it must
            for copy in normalized:
                await anyio.to_thread.run_sync(functools.partial(copy.unlink, missing_ok=True))
        self._emit(BatchEvent(kind="uploaded", key=key))
        body = spec.request(upload.file_url).to_body()
        # The upload and the body it sends, in one commit, before the submit.
        sent = await self.journal.record_request(key, json.dumps(body), upload=upload)
        result: dict[str, object] = json.loads(sent)
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
                paths = await self._save(key, urls)
            except DownloadError as exc:
                if exc.reason == "disk":
                    raise _disk_stop(exc, self._spec.output_dir) from None
                if exc.reason != "http_status" or task_id is None:
                    self._fail(key, error_code(exc), error_message(exc), task_id=task_id)
                    return
                # Result links expire after 24 h: a fresh query of the task gives new ones.
                try:
                    fresh = await self._client.tasks.get(task_id)
                    paths = await self._save(key, fresh.results)
                except EvolinkError as retry_exc:
                    self._fail(key, error_code(retry_exc), error_message(retry_exc), task_id=task_id)
                    return
            except EvolinkError as exc:  # UnsafePathError and friends
                self._fail(key, error_code(exc), error_message(exc), task_id=task_id)
                return
            await self.journal.record_downloads(key, [str(p) for p in paths])
        self.summary.downloaded += 1
        self.summary.results_saved += len(paths)
        self._emit(BatchEvent(kind="downloaded", key=key, task_id=task_id, paths=tuple(map(str, paths))))

    async def _save(self, key: str, urls: tuple[str, ...]) -> tuple[Path, ...]:
        if not urls:
            raise DownloadError("", "no_results", "the task completed without result URLs")

        def name_for(index: int, image_format: ImageFormat) -> str:
            return result_file_name_of(key, index, image_format)

        # Durable: the journal is about to record these results as saved, and a resumed run
        # trusts it; a power cut must not leave an empty file behind that record. Reusing an
        # identical file: a run killed after saving a result but before recording it finds that
        # file on resume instead of saving a second copy beside it.
        return await download_urls(
            self._client.session,
            urls,
            self._spec.output_dir,
            name_for,
            durable=True,
            reuse_identical=True,
        )


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


async def plan_batch(spec: BatchSpec, *, on_event: EventSink | None = None) -> BatchPlan:
    """A dry run: find the inputs, check each locally, count what a run would submit; spend nothing.

    Reads an existing journal (to leave out inputs already handled) but never creates one.
    """
    if not await anyio.to_thread.run_sync(spec.input_dir.is_dir):
        raise ValidationError("input_dir", f"{spec.input_dir} is not a folder")
    exclude = spec.output_dir if spec.output_dir.resolve().is_relative_to(spec.input_dir.resolve()) else None
    unreadable: list[UnreadableFolder] = []
    paths = iter_inputs(spec.input_dir, recursive=spec.recursive, pattern=spec.pattern, exclude=exclude,
                        on_unreadable=lambda folder, error: unreadable.append(
                            _unreadable_folder(spec.input_dir, folder, error)))  # fmt: skip
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
        while (path := await anyio.to_thread.run_sync(next, paths, None)) is not None:
            inputs += 1
            key = path.relative_to(spec.input_dir).as_posix()
            # What the run would refuse, the dry run reports: the same name and link rules.
            problem = _name_problem(key)
            content = None
            if problem is None:
                try:
                    problem, content = await anyio.to_thread.run_sync(_inspect_input, path, spec.input_dir,
                                                                      spec.follow_symlinks)  # fmt: skip
                except OSError as exc:
                    problem = f"cannot be read: {exc.strerror or exc}"
            if problem is not None:
                refuse(invalid_input(key, problem))
                continue
            entry = await journal.get(key) if journal is not None else None
            same = {request_fingerprint(spec.fingerprint_body(key, content=content)),
                    request_fingerprint(spec.fingerprint_body(key))}  # fmt: skip
            if entry is not None and entry.fingerprint in same:  # else: the file changed, a new input
                if (failed := failed_before(entry, spec)) is not None:  # the run fails it again, as it is
                    refuse(failed)
                    continue
                if not entry.needs_submit and entry.status not in FAILED_BEFORE:  # FAILED_BEFORE: retried
                    handled += 1
                    continue
            if entry is None and len(await anyio.to_thread.run_sync(result_files, spec.output_dir, key)) > 0:
                handled += 1  # the run takes its results on disk as done (see ``_reserve``)
                continue
            try:
                spec.request(_as_sent(path, spec))
                check = functools.partial(plan_image, path, model=spec.model, field=key, normalize=spec.normalize)
                await anyio.to_thread.run_sync(check)
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

