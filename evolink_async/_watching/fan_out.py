"""``client.fan_out``: many requests, bounded in flight, events through a bounded buffer.

Why an async context manager and not an async generator: the fan-out owns a task group (the
feeder and the submits). Yielding out of a task group from a generator breaks structured
concurrency, so the ``async with`` owns the work and the iterator only reads the buffer.

Why one module of ~520 lines: ``FanOut`` is one state machine (slots, buffer, budget, the inputs
in flight and being submitted); its feeder, submits and event handling each change that state,
and split apart they would pass all of it around. Its value types live in ``fan_out_items``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Hashable, Iterable
from types import TracebackType
from typing import Any, Generic, Self

import anyio
import anyio.abc

from .._core.checks import MAX_COUNT, check_count, check_number, check_timeout
from .._core.idempotency import check_idempotency_key, new_idempotency_key
from .._core.logging import LOG_CONTEXT, child_logger, logger
from .._core.telemetry import FAN_OUT_KEY, SpanHandle, Telemetry
from .._core.transport import RETRY_TALLY, SEND_STOP, RetryTally, SendStop
from .._models.events import EventKind, TaskEvent, requires_action_error, snapshot_event
from .._models.task import Task, TaskStatus
from .._models.task_ids import task_id_of
from .._protocols.task_api import RequestT, TaskAPI
from ..errors import (
    APIStatusError,
    APITimeoutError,
    APIUnreachableError,
    DuplicateTaskError,
    EvolinkError,
    InsufficientCreditsError,
    NotJSONAnswerError,
    NotSubmittedError,
    SubmitOutcomeUnknownError,
    ValidationError,
    ends_submitting,
    is_fatal_to_batch,
    may_have_been_billed,
    means_endpoint_missing,
)
from .credit_budget import CreditBudget, credits_of
from .event_buffer import EventBuffer
from .fan_out_items import FanOutInput, FanOutItem, FanOutSummary, as_item, is_unhashable
from .normalizing import Normalizer
from .tracker import Tracker, WatchHandle

__all__ = ["FanOut", "FanOutInput", "FanOutItem", "FanOutSummary"]

#: The one record a fan-out leaves when it ends with tasks unfinished or submits interrupted: for a
#: caller who does not read ``summary``. Its own logger (the README names it), so that one who
#: does can silence it alone (``evolink batch work`` does).
_leftovers = child_logger("fan_out.leftovers")


#: How long a fan-out without ``timeout`` waits for the task of a submit whose answer was lost.
RECOVER_TIMEOUT = 1800.0
#: How long leaving the block waits for the deletions of ended tasks' uploaded files.
RELEASE_TIMEOUT = 30.0
#: How long a stopped fan-out waits for the answers of the submits under way (a Ctrl-C included):
#: within the command line's grace after its first Ctrl-C (8 s), with room for the journal after it.
STOP_SETTLE_TIMEOUT = 5.0


class _InputSink:
    """The tracker's sink for one input: turns its events into the fan-out's buffer."""

    __slots__ = ("__weakref__", "fan_out", "handle", "key", "last")

    def __init__(self, fan_out: FanOut[Any], key: Hashable) -> None:
        self.fan_out = fan_out
        self.key = key
        self.last: Task | None = None
        self.handle: WatchHandle | None = None

    def deliver(self, event: TaskEvent) -> None:
        self.last = event.task or self.last
        if event.task is not None and event.task.status is TaskStatus.REQUIRES_ACTION:
            # A task waiting for the caller (a Midjourney Modal submit) never moves on by itself.
            self.fan_out._end_requires_action(self, event.task)
            return
        self.fan_out._emit(event)

    def fail(self, error: BaseException) -> None:
        if is_fatal_to_batch(error):
            self.fan_out._fatal(error)
            return
        # The task can no longer be watched (gone, or the client closed): this input ends here.
        self.fan_out._emit(
            TaskEvent(kind=EventKind.FAILED, task=self.last, key=self.key, at=time.monotonic(), error=error)
        )


class FanOut(Generic[RequestT]):
    """The ``async with`` of ``client.fan_out``; iterate it for events. See ``EvolinkClient.fan_out``.

    It speaks to the protocol only through ``TaskAPI.submit`` and to the client's ``Tracker``.
    """

    def __init__(
        self,
        api: TaskAPI[RequestT],
        tracker: Tracker,
        requests: Iterable[FanOutInput[RequestT]] | AsyncIterable[FanOutInput[RequestT]],
        *,
        max_in_flight: int,
        max_submits_per_second: float | None,
        buffer_size: int,
        timeout: float | None,
        max_credits: float | None = None,
        credits_per_task: float | None = None,
        keep_uploads: bool = False,
        normalize: bool = False,
        progress_every: float | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        check_count("max_in_flight", max_in_flight, maximum=MAX_COUNT)
        if not isinstance(keep_uploads, bool):
            raise ValidationError("keep_uploads", f"must be True or False, got {keep_uploads!r}")
        if not isinstance(normalize, bool):
            raise ValidationError("normalize", f"must be True or False, got {normalize!r}")
        self._normalizer = Normalizer() if normalize else None
        check_count("buffer_size", buffer_size, maximum=MAX_COUNT)
        if max_submits_per_second is not None:
            check_number("max_submits_per_second", max_submits_per_second, above=True)
        timeout = check_timeout("timeout", timeout)
        self._progress_every = (
            None if progress_every is None else check_number("progress_every", progress_every, above=True)
        )
        if requests is None or not isinstance(requests, Iterable | AsyncIterable) or isinstance(requests, str | bytes):
            raise ValidationError("requests", "must be an iterable or async iterable of requests")
        self._api = api
        self._tracker = tracker
        self._requests = requests
        self._max_in_flight = max_in_flight
        self._interval = 1 / max_submits_per_second if max_submits_per_second else 0.0
        self._timeout = timeout
        self._buffer = EventBuffer(buffer_size)
        if credits_per_task is not None and max_credits is None:
            raise ValidationError("credits_per_task", "is the estimate for max_credits: pass max_credits too")
        self._budget = None if max_credits is None else CreditBudget(max_credits, credits_per_task)
        self._slots = asyncio.Semaphore(max_in_flight)
        # key -> sink of every input between its submit and its terminal event.
        self._in_flight: dict[Hashable, _InputSink] = {}
        self._submitting: dict[Hashable, str] = {}
        self._feeding = True
        self._stop_submitting = False
        #: Whether any submit got an answer from the server (a task, or a refusal).
        self._server_answered = False
        #: The input (key, and the idempotency key it was submitted under; None: attached by task
        #: id) that each task of this fan-out belongs to, for its whole life (a task that ended is
        #: still that input's): a submit under another key answered with one of them fails alone
        #: (``DuplicateTaskError``). The same key again is a replay: the same task. One entry per
        #: input, like the events the caller receives.
        self._owners: dict[str, tuple[Hashable, str | None]] = {}
        # Stopped by a fatal error or by leaving the block (``_halted``): the feeder stops pulling
        # inputs, and every submit under way, which holds it as ``SEND_STOP``, sends nothing more.
        # Merely stopped submitting (credits exhausted), it goes on pulling, and ends each input unsent.
        self._send_stop = SendStop()
        self._next_submit_at = 0.0
        self._group: anyio.abc.TaskGroup | None = None
        # Set by ``__aenter__``: only then does anything feed the buffer the iterator reads.
        self._entered = False
        # The submits in flight: plain asyncio tasks, not children of the anyio group. Spawning
        # an anyio task (its cancel scope, task state and wrapper coroutine) cost about 20 us per
        # submit, several times a bare ``create_task``; ``__aexit__`` cancels and awaits these
        # itself, and a submit that raises unexpectedly fails the fan-out (``_submit_done``).
        self._submits: set[asyncio.Task[None]] = set()
        # Files uploaded for a task are let go of when it ends: deleted unless ``keep_uploads``.
        self._release_uploads = api.release_uploads
        self._keep_uploads = keep_uploads
        self._releases: set[asyncio.Task[None]] = set()
        self.summary = FanOutSummary()
        self._telemetry = telemetry
        # The fan-out's span (telemetry on): the parent of every task span of its submits.
        self._span: SpanHandle | None = None

    @property
    def _halted(self) -> bool:
        return self._send_stop.stopped

    @property
    def in_flight(self) -> int:
        """Inputs submitted (or being submitted) and not yet terminal."""
        return len(self._in_flight) + len(self._submitting)

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if not self._tracker.running:
            raise RuntimeError("fan_out needs a running client: use `async with EvolinkClient() as client:`")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._entered = True
        self._group = group
        if self._telemetry is not None:
            self._span = self._telemetry.span("fan_out", {"evolink.fan_out.max_in_flight": self._max_in_flight})
        if self._span is not None:
            # Current while the feeder starts: it and the submits it spawns copy this context.
            token = self._span.attach()
            try:
                group.start_soon(self._feed)
            finally:
                self._span.detach(token)
        else:
            group.start_soon(self._feed)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        group, self._group = self._group, None
        self._stop_submitting = True
        self._send_stop.stopped = True
        try:
            try:
                if self._submits:
                    # Shielded: a stop by cancellation (Ctrl-C) lets them end too, within the bound.
                    with anyio.CancelScope(shield=True):
                        await self._settle_submits()
            finally:  # also when the bound ran out: cut the rest off
                for submit in self._submits:
                    submit.cancel()
            if group is not None:
                group.cancel_scope.cancel()
                # The body's own exception is not handed to the group: it would come back wrapped
                # in an ExceptionGroup. It propagates as it is once this method returns.
                await group.__aexit__(None, None, None)
            if self._submits:
                await asyncio.wait(list(self._submits))
            if self._releases:  # deletions of ended tasks' files: let them finish, bounded
                with anyio.CancelScope(shield=True), anyio.move_on_after(RELEASE_TIMEOUT):
                    await asyncio.wait(list(self._releases))
            if self._normalizer is not None:
                with anyio.CancelScope(shield=True):
                    await self._normalizer.aclose()
        finally:
            # Also under outside cancellation, which re-raises from the await above.
            self._release_watches()
            if self._span is not None:
                self._end_span(exc)
        return None

    async def _settle_submits(self) -> None:
        """Let the submits under way end, bounded, when the fan-out stops with some (an answer every
        submit would get, a cancellation such as Ctrl-C, a caller leaving the block early): each
        then ends known, refused (its uploads deleted, listed in ``unsent``) or accepted (its task
        id in ``left_in_flight``, for a journal to record), rather than cut off as an interrupted
        submit, which may have been billed, which a server that ignores ``Idempotency-Key`` bills
        again when it is sent again, and whose uploads nobody may delete. Nothing new is sent: the
        feeder has stopped, and ``SEND_STOP`` keeps a submit not yet sent (or one that would be
        retried) from sending."""
        with anyio.move_on_after(STOP_SETTLE_TIMEOUT):
            await asyncio.wait(list(self._submits))

    def _end_span(self, exc: BaseException | None) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        summary = self.summary
        span.set(
            {
                "evolink.fan_out.submitted": summary.submitted,
                "evolink.fan_out.left_in_flight": len(summary.left_in_flight),
                **{f"evolink.fan_out.outcomes.{kind}": count for kind, count in summary.outcomes.items()},
            }
        )
        span.end(error_type=None if exc is None else type(exc).__name__)

    def _release_watches(self) -> None:
        for key, sink in list(self._in_flight.items()):
            if sink.handle is not None:
                self._tracker.unwatch(sink.handle)
            if sink.last is not None:
                self.summary.left_in_flight.append((key, sink.last.id))
        self.summary.interrupted_submits.extend(self._submitting.items())
        self._in_flight.clear()
        self._submitting.clear()
        if self.summary.left_in_flight or self.summary.interrupted_submits:
            _leftovers.warning(
                "fan-out left with %d task(s) unfinished and %d submit(s) interrupted; see summary",
                len(self.summary.left_in_flight), len(self.summary.interrupted_submits),
            )

    def __aiter__(self) -> AsyncIterator[TaskEvent]:
        if not self._entered:
            # Iterated without its ``async with``, nothing would ever submit: fail at once, not hang.
            raise TypeError(
                "fan_out() is an async context manager: "
                "`async with client.fan_out(requests) as events:` then `async for event in events:`"
            )
        return self

    async def __anext__(self) -> TaskEvent:
        return await self._buffer.get()

    def drop(self, key: Hashable) -> bool:
        """Stop watching one input at once (its caller no longer owns it): no more events for it.

        Frees its place under ``max_in_flight``; False if it is not being watched (being
        submitted, or already ended).
        """
        sink = self._in_flight.pop(key, None)
        if sink is None:
            return False
        if sink.handle is not None:
            self._tracker.unwatch(sink.handle)
        self.summary.outcomes["dropped"] += 1
        self._slots.release()
        self._maybe_finish()
        return True

    # --- submitting -------------------------------------------------------------------------

    async def _feed(self) -> None:
        try:
            index = 0
            async with contextlib.aclosing(_iterate(self._requests)) as items:
                async for raw in items:
                    item = as_item(raw, index)
                    index += 1
                    if not isinstance(item.key, Hashable) or is_unhashable(item.key):
                        raise ValidationError("key", f"{item.key!r} cannot be a key: keys must be hashable")
                    if item.key in self._in_flight or item.key in self._submitting:
                        raise ValidationError("key", f"{item.key!r} is already in flight: keys must be unique")
                    if self._halted:
                        self.summary.unsent.append(item.key)
                        break
                    if (broken := _broken_rule(item)) is not None:
                        await self._not_submitted(item, broken)
                        continue
                    if item.task_id is None and self._stop_submitting:
                        await self._not_submitted(item)
                        continue
                    # Re-attaching costs nothing: it goes on after submitting stopped.
                    if not await self._admit(submitting=item.task_id is None):
                        if self._halted:
                            self.summary.unsent.append(item.key)
                            break
                        await self._not_submitted(item)
                        continue
                    assert self._group is not None
                    # The key is fixed here, before the submit, so that an uncertain outcome can
                    # be reported with the key that makes a resubmit safe.
                    if item.idempotency_key is None and item.task_id is None:
                        # Not ``attrs.evolve``: it inspects the class on every call (twice the cost).
                        item = FanOutItem(key=item.key, request=item.request, idempotency_key=new_idempotency_key())
                    self._submitting[item.key] = item.idempotency_key or ""
                    submit = asyncio.get_running_loop().create_task(self._submit(item))
                    self._submits.add(submit)
                    submit.add_done_callback(self._submit_done)
        except Exception as exc:  # the caller's iterable raised, or broke a rule: the batch cannot go on
            self._fatal(exc)
        finally:
            self._feeding = False
            self._maybe_finish()

    async def _admit(self, *, submitting: bool = True) -> bool:
        """Wait for a free slot, room in the buffer, the pace and the credit budget; False once
        submitting (or all) stopped."""
        await self._slots.acquire()
        await self._buffer.wait_for_room()
        await self._pace()
        budget = self._budget if submitting else None
        if budget is not None and not (self._halted or self._stop_submitting):
            if await budget.admit():
                if self._halted or self._stop_submitting:  # stopped while waiting for answers
                    budget.withdraw()
            elif not self._stop_submitting:
                self._stop_submitting = True
                self.summary.stopped_reason = budget.reason
                logger.warning("%s: no new submits; unfinished tasks continue", budget.reason)
        if self._halted or (submitting and self._stop_submitting):
            self._slots.release()
            return False
        return True

    async def _not_submitted(self, item: FanOutItem[RequestT], refused: ValidationError | None = None) -> None:
        """End an input that will not be sent: its one terminal event, no request, no slot.

        ``refused``: the input itself breaks a rule (a malformed idempotency key or task id): it
        fails alone, like a request that breaks one; otherwise submitting has stopped.
        """
        await self._buffer.wait_for_room()  # backpressure still holds
        error: EvolinkError
        if refused is not None:
            error = refused
        else:
            self.summary.not_submitted += 1
            error = NotSubmittedError(self.summary.stopped_reason or "submitting stopped")
        self.summary.outcomes[EventKind.SUBMIT_FAILED.value] += 1
        self.summary.unsent.append(item.key)
        self._buffer.put(TaskEvent(kind=EventKind.SUBMIT_FAILED, task=None, key=item.key, at=time.monotonic(),
                                   error=error))  # fmt: skip

    async def _pace(self) -> None:
        if self._interval:
            now = time.monotonic()
            wait = self._next_submit_at - now
            self._next_submit_at = max(now, self._next_submit_at) + self._interval
            if wait > 0:
                await anyio.sleep(wait)

    async def _submit(self, item: FanOutItem[RequestT]) -> None:
        key = item.key
        sink = _InputSink(self, key)
        try:
            if item.task_id is not None:
                task = None
                self.summary.reattached += 1
            elif item.request is None:
                if self._budget is not None:
                    self._budget.withdraw()
                raise ValidationError("request", f"input {key!r} has neither a request nor a task_id")
            else:
                assert item.idempotency_key is not None  # fixed by the feeder before the submit
                tally = RetryTally()
                RETRY_TALLY.set(tally)  # this task's own context: each submit runs in a task of its own
                SEND_STOP.set(self._send_stop)
                LOG_CONTEXT.set({"key": key, "model": getattr(item.request, "model", None)})
                if self._span is not None:
                    FAN_OUT_KEY.set(str(key))  # read by the task span the submit opens
                cost: float | None = 0.0  # refused (or cut off): nothing reserved
                try:
                    request = item.request
                    if self._normalizer is not None:
                        request = await self._normalizer.request(request)
                    task = await self._submit_or_recover(request, item.idempotency_key)
                    cost = credits_of(task)
                except EvolinkError as exc:
                    if may_have_been_billed(exc):
                        cost = None  # the server may have billed it
                    raise
                finally:
                    self.summary.retried_uncertain_submits += tally.uncertain > 0
                    if self._budget is not None:
                        self._budget.settle(cost)
        except EvolinkError as exc:
            if isinstance(exc, NotSubmittedError) and self._halted:
                # Held back by the stop (SEND_STOP) before it went out: never sent, like an input the
                # feeder had not started; no event (the run is over), no failure of its own.
                self.summary.unsent.append(key)
                self._submitting.pop(key, None)
                self._slots.release()
                return
            if not may_have_been_billed(exc):  # refused (or never sent): nothing was made for it
                self.summary.unsent.append(key)
            fatal = ends_submitting(exc)
            if fatal is None and isinstance(exc, NotJSONAnswerError) and not self._server_answered:
                fatal = exc  # the run's first answer is a web page, not the API: a wrong base URL
            if fatal is not None:  # a wrong key or base URL: every submit would fail so
                if may_have_been_billed(exc) and item.idempotency_key is not None:  # a page may hide an acceptance
                    self.summary.interrupted_submits.append((key, item.idempotency_key))
                self._submitting.pop(key, None)
                self._slots.release()
                self._fatal(fatal)
                return
            if isinstance(exc, InsufficientCreditsError) and not self._stop_submitting:
                self._stop_submitting = True
                self.summary.stopped_reason = f"credits exhausted: {exc}"
                logger.warning("credits exhausted: no new submits; unfinished tasks continue")
            elif isinstance(exc, APIUnreachableError) and not self._server_answered and not self._stop_submitting:
                # Not one submit has reached the server (a wrong host, no network): every other input
                # would meet the same after its retries. No new submits; those under way end on their own.
                self._stop_submitting = True
                self.summary.stopped_reason = f"cannot reach the server: {exc}"
                logger.warning("cannot reach the server: no new submits; unfinished tasks continue")
            self._server_answered = self._server_answered or isinstance(exc, APIStatusError)
            if may_have_been_billed(exc) and item.idempotency_key is not None:
                self.summary.interrupted_submits.append((key, item.idempotency_key))
            self._submitting.pop(key, None)
            self._in_flight[key] = sink
            self._emit(TaskEvent(kind=EventKind.SUBMIT_FAILED, task=None, key=key, at=time.monotonic(), error=exc))
            return
        self._submitting.pop(key, None)
        self._in_flight[key] = sink
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        if task is not None:
            self._server_answered = True
            owner, owner_key = self._owners.get(task.id, (key, None))
            if owner != key and owner_key is not None and owner_key != item.idempotency_key:
                # Never the other input's results under this input's name: it fails alone.
                duplicate = DuplicateTaskError(task.id, owner)
                self._emit(TaskEvent(kind=EventKind.SUBMIT_FAILED, task=None, key=key, at=time.monotonic(),
                                     error=duplicate))  # fmt: skip
                return
            self._owners[task.id] = (key, item.idempotency_key)
            self.summary.submitted += 1
            if task.usage is not None and task.usage.credits_reserved:
                # Rounded as the service states costs (1.8, not 1.8 summed into 12.600000000000001).
                reserved = self.summary.credits_reserved + task.usage.credits_reserved
                self.summary.credits_reserved = round(reserved, 6)
            sink.last = task
            self._emit(TaskEvent(kind=EventKind.SUBMITTED, task=task, key=key, at=time.monotonic()))
            if task.is_terminal:  # a replay of a task that already ended
                self._emit(snapshot_event(task, key=key, at=time.monotonic()))
                return
            if task.status is TaskStatus.REQUIRES_ACTION:
                self._end_requires_action(sink, task)
                return
        task_id = task.id if task is not None else item.task_id
        assert task_id is not None
        if task is None:  # attached by its id: the task is this input's, whoever submitted it
            self._owners.setdefault(task_id, (key, None))
        sink.handle = self._tracker.watch(
            task_id, sink, snapshot=task, key=key, deadline=deadline, progress_every=self._progress_every
        )
        if key not in self._in_flight:  # ended while subscribing (a REQUIRES_ACTION snapshot delivered at once)
            self._tracker.unwatch(sink.handle)

    async def _submit_or_recover(self, request: RequestT, idempotency_key: str) -> Task:
        """``_submit_once`` within the per-task ``timeout``: a server that never answers a submit must
        not hold the input (and a command's --timeout) for the transport's attempts times its retries.
        A submit cut off may have been billed: its outcome is unknown, as for a lost answer."""
        if self._timeout is None:
            return await self._submit_once(request, idempotency_key)
        with anyio.move_on_after(self._timeout):
            return await self._submit_once(request, idempotency_key)
        cut = APITimeoutError(f"the submit did not end within the timeout ({self._timeout:g} s)")
        raise SubmitOutcomeUnknownError(idempotency_key, cut)

    async def _submit_once(self, request: RequestT, idempotency_key: str) -> Task:
        """Submit; if the answer is lost and the protocol can settle that (a callback, a listed
        ``state``), wait for the task the submit created instead of submitting again."""
        try:
            return await self._api.submit(request, idempotency_key=idempotency_key)
        except EvolinkError as exc:
            recover = self._api.recover
            if recover is None or not may_have_been_billed(exc) or means_endpoint_missing(exc):  # 501: nothing made
                raise
            wait = self._timeout if self._timeout is not None else RECOVER_TIMEOUT
            logger.info("submit %s: answer lost (%s); waiting up to %g s for its task", idempotency_key, exc, wait)
            task = await recover(idempotency_key, wait)
            if task is None:
                raise SubmitOutcomeUnknownError(idempotency_key, exc) from exc
            self.summary.recovered_submits += 1
            return task

    def _submit_done(self, submit: asyncio.Task[None]) -> None:
        self._submits.discard(submit)
        if submit.cancelled():
            return
        error = submit.exception()
        if error is not None:  # not an API error (those become events): a bug, surfaced to the reader
            logger.error("a fan-out submit raised unexpectedly", exc_info=error)
            self._fatal(error)

    # --- events -----------------------------------------------------------------------------

    def _emit(self, event: TaskEvent) -> None:
        if event.is_terminal:
            if self._in_flight.pop(event.key, None) is None:
                return  # this input already had its terminal event
            self.summary.outcomes[event.kind.value] += 1
            self._slots.release()
            if self._release_uploads is not None and event.task is not None:
                # Timed out is not ended: the task may still run and read its files; keep them.
                ended = event.kind is not EventKind.TIMED_OUT
                self._release(event.task.id, delete=ended and not self._keep_uploads)
        self._buffer.put(event)
        if event.is_terminal:
            self._maybe_finish()

    def _release(self, task_id: str, *, delete: bool) -> None:
        assert self._release_uploads is not None
        deletions = self._release_uploads(task_id, delete)
        if deletions is None:  # nothing uploaded for it, or nothing to delete: no task (nearly every input)
            return
        release = asyncio.get_running_loop().create_task(_awaited(deletions))
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)

    def _end_requires_action(self, sink: _InputSink, task: Task) -> None:
        if sink.handle is not None:
            self._tracker.unwatch(sink.handle)
        error = requires_action_error(task)
        self._emit(TaskEvent(kind=EventKind.FAILED, task=task, key=sink.key, at=time.monotonic(), error=error))

    def _fatal(self, error: BaseException) -> None:
        self._stop_submitting = True
        self._send_stop.stopped = True
        self.summary.stopped_reason = f"{type(error).__name__}: {error}"
        self._buffer.fail(error)

    def _maybe_finish(self) -> None:
        if not self._feeding and not self._in_flight and not self._submitting:
            self._buffer.finish()


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


def _broken_rule(item: FanOutItem[Any]) -> ValidationError | None:
    """The rule an input's own idempotency key or task id breaks, if any (that input fails alone)."""
    try:
        if item.idempotency_key is not None:
            check_idempotency_key(item.idempotency_key)
        if item.task_id is not None:
            task_id_of(item.task_id)
    except ValidationError as exc:
        return exc
    return None


async def _iterate(
    source: Iterable[FanOutInput[RequestT]] | AsyncIterable[FanOutInput[RequestT]],
) -> AsyncGenerator[FanOutInput[RequestT], None]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        # Pull lazily: a generator over a million files is never materialized.
        for item in source:
            yield item
