"""A task span per submitted task, around any protocol's ``TaskAPI`` (used only with telemetry on).

``TracedTaskAPI`` wraps a protocol: a submit opens the span ``generate_content {model}`` (a child
of the caller's current span, or of the fan-out's), current while the submit's request runs; each
query of the task runs under it, so its HTTP spans are its children; every answer and every
pushed callback becomes a status or progress event on it, and the first terminal one ends it.

Where a task span lives: in :class:`TaskSpans`, by task id, at most ``limit`` of them. A task
nobody watches any more keeps its span open until an answer shows it ended (a later
``tasks.get``), the client closes, or ``limit`` newer ones push it out; the last two end it with
``evolink.task.status = "unknown"``. Nothing leaks past the client's ``async with``.

With tracing off and metrics on, the same records carry no span: the task's metrics only.
A bulk query (``fetch_many``) opens a ``query_many`` span under each task span it asks about.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic

from .._core.secret import redact
from .._core.telemetry import FAN_OUT_KEY, HTTP_LINKS, SpanHandle, Telemetry
from .._models.task import Task, TaskStatus
from .task_api import Cancel, FetchMany, Recover, ReleaseUploads, RequestT, TaskAPI

__all__ = ["DEFAULT_SPAN_LIMIT", "TaskSpans", "TracedTaskAPI"]

#: Task spans one client keeps open at most (a task span costs a few hundred bytes).
DEFAULT_SPAN_LIMIT = 10_000
_UNKNOWN = "unknown"


class _TaskRecord:
    __slots__ = ("by_callback", "by_query", "metric_attributes", "model", "progress", "span", "started", "status")

    def __init__(
        self, span: SpanHandle | None, model: str, metric_attributes: dict[str, str], status: TaskStatus
    ) -> None:
        self.span = span
        self.model = model
        self.metric_attributes = metric_attributes
        self.started = time.monotonic()
        self.status = status
        self.progress = -1
        self.by_callback = 0
        self.by_query = 0


class TaskSpans:
    """The open task spans of one client family, by task id (bounded; see the module's docstring)."""

    def __init__(self, telemetry: Telemetry, *, provider: str, limit: int = DEFAULT_SPAN_LIMIT) -> None:
        self.telemetry = telemetry
        self.provider = provider
        self._limit = limit
        self._open: OrderedDict[str, _TaskRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def get(self, task_id: str) -> SpanHandle | None:
        record = self._open.get(task_id)
        return None if record is None else record.span

    def bulk_queries(self, task_ids: Sequence[str]) -> dict[str, SpanHandle]:
        """A query span under each task's span for one bulk query about ``task_ids`` (those with
        a span): each task's polling shows under it, as its single queries' HTTP spans do."""
        queries: dict[str, SpanHandle] = {}
        if not self.telemetry.tracing:
            return queries
        size = len(task_ids)
        for task_id in task_ids:
            record = self._open.get(task_id)
            if record is None or record.span is None:
                continue
            attributes: dict[str, str | int | float | bool] = {
                "evolink.task.id": task_id,
                "evolink.query.batch_size": size,
            }
            query = self.telemetry.span("query_many", attributes, parent=record.span)
            if query is not None:
                queries[task_id] = query
        return queries

    def start(self, model: str) -> SpanHandle | None:
        """The span of a submit about to be sent (a child of the current span); ``None`` with
        tracing off (metrics only: the task is still counted), or if the span could not be made."""
        if not self.telemetry.tracing:
            return None
        attributes: dict[str, str | int | float | bool] = {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": self.provider,
            "gen_ai.request.model": model,
            "gen_ai.output.type": "image",
        }
        key = FAN_OUT_KEY.get()
        if key is not None:
            attributes["evolink.fan_out.key"] = redact(key)
        span: SpanHandle | None = self.telemetry.span(f"generate_content {model}", attributes)
        return span

    def submitted(self, span: SpanHandle | None, model: str, task: Task) -> None:
        """The submit's answer: the span (if any) now belongs to ``task`` until it ends."""
        try:
            telemetry = self.telemetry
            metric_attributes = {"gen_ai.provider.name": self.provider, "gen_ai.request.model": model}
            attributes: dict[str, str | int | float | bool] = {"evolink.task.id": task.id}
            credits = task.usage.credits_reserved if task.usage is not None else None
            if credits:
                attributes["evolink.credits.reserved"] = credits
                telemetry.credits_reserved.add(credits, {"gen_ai.request.model": model})
            if span is not None:
                span.set(attributes)
                span.event("evolink.task.status", {"evolink.task.status": task.status.value})
            record = _TaskRecord(span, model, metric_attributes, task.status)
            telemetry.tasks_in_flight.add(1, metric_attributes)
            if task.is_terminal:  # an idempotent replay of a task that already ended
                self._finish(record, task.status.value, _error_type(task))
                return
            previous = self._open.pop(task.id, None)
            if previous is not None:  # the same task submitted again (a replay): one span for it
                self._finish(previous, _UNKNOWN, None)
            self._open[task.id] = record
            while len(self._open) > self._limit:
                _, oldest = self._open.popitem(last=False)
                self._finish(oldest, _UNKNOWN, None)
        except Exception:  # telemetry never raises into the caller
            if span is not None:
                span.end(error_type=None)

    def observe(self, task: Task, *, pushed: bool) -> None:
        """An answer or a pushed callback about ``task``: events, and the end of its span once terminal."""
        record = self._open.get(task.id)
        if record is None:
            return
        try:
            span = record.span
            if pushed:
                record.by_callback += 1
                if span is not None:
                    self.telemetry.callback_received(
                        span, {"evolink.task.id": task.id, "evolink.task.status": task.status.value}
                    )
            else:
                record.by_query += 1
            if task.status is not record.status:
                record.status = task.status
                if span is not None:
                    span.event("evolink.task.status", {"evolink.task.status": task.status.value})
            if task.progress != record.progress and not task.is_terminal:
                record.progress = task.progress
                if span is not None:
                    span.event("evolink.task.progress", {"evolink.task.progress_percent": task.progress})
            if task.is_terminal:
                del self._open[task.id]
                self._finish(record, task.status.value, _error_type(task))
        except Exception:
            self._open.pop(task.id, None)
            if record.span is not None:
                record.span.end()

    def close(self) -> None:
        """The client closes: every span still open ends with status ``unknown``."""
        while self._open:
            _, record = self._open.popitem(last=False)
            self._finish(record, _UNKNOWN, None)

    def _finish(self, record: _TaskRecord, status: str, error_type: str | None) -> None:
        span = record.span
        try:
            telemetry = self.telemetry
            if span is not None:
                span.set(
                    {
                        "evolink.task.status": status,
                        "evolink.updates.by_callback": record.by_callback,
                        "evolink.updates.by_query": record.by_query,
                    }
                )
            seconds = time.monotonic() - record.started
            telemetry.tasks_in_flight.add(-1, record.metric_attributes)
            telemetry.task_duration.record(seconds, {"gen_ai.request.model": record.model, "outcome": status})
            operation = {"gen_ai.operation.name": "generate_content", **record.metric_attributes}
            if error_type is not None:
                operation["error.type"] = error_type
            telemetry.operation_duration.record(seconds, operation)
        finally:
            if span is not None:
                span.end(error_type=error_type)


def _error_type(task: Task) -> str | None:
    if task.status is TaskStatus.FAILED:
        code = task.error.code if task.error is not None else None
        return redact(str(code)) if code else "task_failed"
    if task.status is TaskStatus.CANCELLED:
        return "task_cancelled"
    return None


def _model_of(request: Any) -> str:
    model = getattr(request, "model", None)
    return str(model) if model else type(request).__name__.lower()


class TracedTaskAPI(Generic[RequestT]):
    """A ``TaskAPI`` whose submits open task spans and whose answers feed them (see the module)."""

    def __init__(
        self, inner: TaskAPI[RequestT], spans: TaskSpans, *, model_of: Callable[[RequestT], str] = _model_of
    ) -> None:
        self._inner = inner
        self.spans = spans
        self._model_of = model_of
        # The protocol's ``query`` for the tracker, where it has one (``EvolinkAPI.query``).
        self._inner_query: Callable[[str, Task | None], Awaitable[Task]] | None = getattr(inner, "query", None)

    def __getattr__(self, name: str) -> Any:
        # Whatever else the protocol offers (uploads, budgets) is the protocol's own.
        return getattr(self._inner, name)

    async def submit(self, request: RequestT, *, idempotency_key: str) -> Task:
        spans = self.spans
        model = self._model_of(request)
        span = spans.start(model)
        if span is None:  # tracing off: the task's metrics all the same
            task = await self._inner.submit(request, idempotency_key=idempotency_key)
            spans.submitted(None, model, task)
            return task
        token = span.attach()
        try:
            task = await self._inner.submit(request, idempotency_key=idempotency_key)
        except BaseException as exc:
            span.end(error_type=type(exc).__name__)
            raise
        finally:
            span.detach(token)
        spans.submitted(span, model, task)
        return task

    async def fetch(self, task_id: str) -> Task:
        spans = self.spans
        span = spans.get(task_id)
        if span is None:
            task = await self._inner.fetch(task_id)
        else:
            token = span.attach()  # the query's HTTP spans are children of the task's
            try:
                task = await self._inner.fetch(task_id)
            finally:
                span.detach(token)
        spans.observe(task, pushed=False)
        return task

    async def query(self, task_id: str, last: Task | None) -> Task:
        """The protocol's ``query`` (its ``fetch`` if it has none) under the task's span, like ``fetch``."""
        query = self._inner_query
        if query is None:
            return await self.fetch(task_id)
        spans = self.spans
        span = spans.get(task_id)
        if span is None:
            task = await query(task_id, last)
        else:
            token = span.attach()
            try:
                task = await query(task_id, last)
            finally:
                span.detach(token)
        spans.observe(task, pushed=False)
        return task

    @property
    def fetch_many(self) -> FetchMany | None:
        fetch_many = self._inner.fetch_many
        if fetch_many is None:
            return None
        spans = self.spans

        async def traced(task_ids: Sequence[str]) -> Sequence[Task]:
            queries = spans.bulk_queries(task_ids)
            if not queries:
                tasks = await fetch_many(task_ids)
            else:
                # The one request's HTTP span links to each task's query span (it is a child of none).
                token = HTTP_LINKS.set(tuple(queries.values()))
                try:
                    tasks = await fetch_many(task_ids)
                except BaseException as exc:
                    for query in queries.values():
                        query.end(error_type=type(exc).__name__)
                    raise
                finally:
                    HTTP_LINKS.reset(token)
                for task in tasks:  # ended before the task's own span may end below
                    if task.id in queries:
                        query = queries.pop(task.id)
                        query.set({"evolink.task.status": task.status.value})
                        query.end()
                for query in queries.values():  # not in the answer
                    query.set({"evolink.task.found": False})
                    query.end()
            for task in tasks:
                spans.observe(task, pushed=False)
            return tasks

        return traced

    @property
    def fetch_many_limit(self) -> int:
        return self._inner.fetch_many_limit

    @property
    def cancel(self) -> Cancel | None:
        return self._inner.cancel

    @property
    def recover(self) -> Recover | None:
        return self._inner.recover

    @property
    def release_uploads(self) -> ReleaseUploads | None:
        return self._inner.release_uploads
