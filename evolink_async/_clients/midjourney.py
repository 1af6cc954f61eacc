"""``MidjourneyClient``: a Midjourney proxy with the same tasks, events, streams and fan-out as Evolink."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import aiohttp

from .._callbacks.receiver import CallbackReceiver, callback_binding
from .._core.config import ClientConfig, check_base_url, wrap_api_key
from .._core.idempotency import check_idempotency_key, new_idempotency_key
from .._core.retry import RetryPolicy
from .._core.telemetry import telemetry_for
from .._core.transport import Transport
from .._files.download import DEFAULT_MAX_DOWNLOAD_BYTES, download_urls
from .._files.image_probe import ImageFormat
from .._files.safe_paths import result_file_name
from .._models.task import Task, TaskStatus
from .._models.task_ids import task_id_of
from .._protocols.midjourney.api import MidjourneyAPI
from .._protocols.midjourney.buttons import request_for_button
from .._protocols.midjourney.requests import MidjourneyRequest
from .._protocols.midjourney.tasks import state_of, structure_mj_task
from .._protocols.task_api import TaskAPI
from .._protocols.traced import TaskSpans, TracedTaskAPI
from .._watching.fan_out import FanOut, FanOutInput
from .._watching.poll_policy import PollPolicy
from .._watching.tracker import Tracker
from ..errors import (
    EvolinkError,
    MissingAPIKeyError,
    NotFoundError,
    SubmitOutcomeUnknownError,
    UnsupportedOperationError,
    ValidationError,
)
from .lifecycle import UNSET, TrackerLifecycle
from .tasks import Tasks

__all__ = ["MidjourneyClient", "MidjourneyTasks"]

_AUTH_HEADERS = {"bearer": "Authorization", "mj-api-secret": "mj-api-secret"}
# Parallel single queries when the server cannot fetch many at once.
_GET_MANY_CONCURRENCY = 8


def _batch_window(policy: PollPolicy) -> float:
    """How early a query may be sent along with a due one in a ``list-by-condition`` request.

    One request answers any number of tasks at the cost of one fetch (new-api polls all of a
    channel's tasks every 15 s this way), so a due query takes along every query due within the
    spacing the policy keeps near the expected finish (``resolution`` x the estimate), not just
    within ``min_interval``: with 30 tasks in flight a task then costs well under one request.
    """
    return max(policy.min_interval, min(policy.max_interval, policy.resolution * policy.default_estimated_time))


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _traced(api: MidjourneyAPI, spans: TaskSpans | None) -> TaskAPI:
    """The API submits and tracker queries go through: with task spans when telemetry is on."""
    if spans is None:
        return cast(TaskAPI, api)
    return TracedTaskAPI(cast(TaskAPI, api), spans, model_of=lambda request: "midjourney")


class MidjourneyTasks(Tasks):
    """``mj.tasks``: ``get``, ``wait``, ``stream`` as for Evolink, plus ``get_many`` and ``cancel``."""

    def __init__(self, api: MidjourneyAPI, tracker: Tracker) -> None:
        super().__init__(cast(TaskAPI, api), tracker)
        self._mj = api

    async def get_many(self, task_ids: Iterable[Task | str]) -> list[Task]:
        """The tasks the server knows, in the order asked (unknown ids are left out).

        One ``POST task/list-by-condition`` per 50 ids where the server has it, else one query each.

        >>> tasks = await mj.tasks.get_many(["1712345678901123", "1712345678901456"])
        """
        ids = list(dict.fromkeys(task_id_of(task) for task in task_ids))
        found: dict[str, Task] = {}
        fetch_many = self._mj.fetch_many
        if fetch_many is not None:
            try:
                found = {task.id: task for task in await fetch_many(ids)}
            except UnsupportedOperationError:
                fetch_many = None
        if fetch_many is None:
            limit = asyncio.Semaphore(_GET_MANY_CONCURRENCY)

            async def one(task_id: str) -> None:
                async with limit:
                    with contextlib.suppress(NotFoundError):
                        found[task_id] = await self._mj.fetch(task_id)

            async with asyncio.TaskGroup() as group:
                for task_id in ids:
                    group.create_task(one(task_id))
        return [found[task_id] for task_id in ids if task_id in found]

    async def cancel(self, task_or_id: Task | str) -> Task:
        """Ask the proxy to cancel the task and return it as it now is.

        Raises ``UnsupportedOperationError`` where the server has no ``task/{id}/cancel`` (or
        refuses it to non-admin keys, as trueai's does).

        >>> task = await mj.tasks.cancel(task)
        """
        cancel = self._mj.cancel
        if cancel is None:
            raise UnsupportedOperationError("cancel", "this server has no task/{id}/cancel endpoint")
        return await cancel(task_id_of(task_or_id))


class MidjourneyClient(TrackerLifecycle):
    """An asyncio client for a Midjourney proxy (novicezk or trueai midjourney-proxy, or a gateway).

    The key comes from ``api_key`` or ``MJ_PROXY_API_KEY`` (``api_key=""`` sends none); the host
    from ``base_url`` or ``MJ_PROXY_BASE_URL``. ``auth="bearer"`` sends ``Authorization: Bearer
    <key>`` (gateways), ``auth="mj-api-secret"`` the proxies' own header. ``path_prefix`` is
    ``"/mj"`` upstream, ``"/v1/mj"`` or ``"/mj-fast/mj"`` at some gateways.

    >>> async with MidjourneyClient(base_url="https://proxy.example", path_prefix="/v1/mj") as mj:
    ...     task = await mj.submit(Imagine(prompt="a red fox"))
    ...     done = await mj.tasks.wait(task, timeout=900)
    ...     upscaled = await mj.action(done, "U2")
    """

    TRACKER_TASK_NAME = "evolink-mj-tracker"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        path_prefix: str = "/mj",
        auth: Literal["bearer", "mj-api-secret"] = "bearer",
        poll_policy: PollPolicy | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
        default_headers: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        max_concurrent_queries: int = 32,
        batch_polling: bool = True,
        callbacks: CallbackReceiver | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        # In its ``Secret`` before anything can raise (see EvolinkClient); "" is a proxy without auth.
        key = wrap_api_key(api_key, "MJ_PROXY_API_KEY", check=False, allow_empty=True)
        del api_key
        if isinstance(key, ValidationError):
            raise key
        if key is None:
            raise MissingAPIKeyError(
                "no API key: pass api_key=... or set MJ_PROXY_API_KEY (api_key='' for a proxy without auth)"
            )
        base = base_url if base_url is not None else _env("MJ_PROXY_BASE_URL")
        if not base:
            raise ValidationError("base_url", "pass base_url='https://...' or set MJ_PROXY_BASE_URL")
        base = check_base_url("base_url", base)
        if not isinstance(path_prefix, str):
            raise ValidationError("path_prefix", f"must be a string such as '/mj', got {type(path_prefix).__name__}")
        if auth not in _AUTH_HEADERS:
            raise ValidationError("auth", f"must be one of {', '.join(_AUTH_HEADERS)}, got {auth!r}")
        self._config = ClientConfig(
            api_key=key,
            base_url=base,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=retry if retry is not None else RetryPolicy(max_retries=max_retries),
            max_connections=max_connections,
            default_headers=dict(default_headers or {}),
            auth_header=_AUTH_HEADERS[auth],
        )
        telemetry = telemetry_for(tracer_provider=tracer_provider, meter_provider=meter_provider)
        self._transport = Transport(self._config, session=session, telemetry=telemetry, trace_configs=trace_configs)
        spans = None if telemetry is None else TaskSpans(telemetry, provider="midjourney_proxy")
        # notifyHook posts every change, so a receiver makes polling a safety net here too.
        binding = callback_binding(callbacks, parse=structure_mj_task, client=self, marker_of=state_of)
        self._binding = binding
        self._api = MidjourneyAPI(self._transport, path_prefix=path_prefix, callbacks=binding)
        api = self._api
        self._task_spans = spans
        traced = self._traced = _traced(api, spans)

        async def fetch_many(task_ids: Sequence[str]) -> Sequence[Task]:
            batch = traced.fetch_many
            if batch is None:
                raise UnsupportedOperationError("fetch_many", "the server has no task/list-by-condition")
            return await batch(task_ids)

        policy = poll_policy or PollPolicy()
        self._tracker = Tracker(
            traced.fetch,
            policy=policy,
            max_concurrent_queries=max_concurrent_queries,
            fetch_many=fetch_many if batch_polling else None,
            fetch_many_limit=api.fetch_many_limit,
            push_coverage=binding,
            batch_window=_batch_window(policy),
        )
        self._tracker_task: asyncio.Task[None] | None = None
        self._owns_tracker = True
        self.tasks = MidjourneyTasks(api, self._tracker)
        self._hook_telemetry(spans)

    def with_options(
        self,
        *,
        timeout: float = UNSET,
        connect_timeout: float = UNSET,
        max_retries: int = UNSET,
        retry: RetryPolicy = UNSET,
        default_headers: Mapping[str, str] = UNSET,
    ) -> MidjourneyClient:
        """A client with some options changed that shares this one's connection pool and tracker.

        Closing the derived client does not close the shared session; close the original (whose
        ``async with`` also runs the tracker the derived client's waits use).

        >>> patient = mj.with_options(timeout=300, max_retries=6)
        """
        config = self._changed_config(
            timeout=timeout, connect_timeout=connect_timeout, max_retries=max_retries, retry=retry,
            default_headers=default_headers,
        )
        client = type(self).__new__(type(self))
        client._config = config
        client._transport = self._transport.derive(config)
        client._binding = self._binding  # the same receiver: the shared tracker knows its tasks
        client._api = MidjourneyAPI(client._transport, path_prefix=self._api.path_prefix, callbacks=self._binding)
        client._tracker = self._tracker
        client._tracker_task = None
        client._owns_tracker = False
        client.tasks = MidjourneyTasks(client._api, self._tracker)
        client._task_spans = self._task_spans
        client._traced = _traced(client._api, self._task_spans)
        return client

    @property
    def api_base(self) -> str:
        """``base_url`` plus the path prefix, ending in ``/`` (``https://host/mj/``)."""
        return self._api.base

    async def submit(self, request: MidjourneyRequest, *, idempotency_key: str | None = None) -> Task:
        """Submit one request and return its first snapshot (``pending``, or ``modal`` for code 21).

        ``idempotency_key`` (or a fresh one) travels as the task's ``state`` unless the request
        sets ``state``: a submit whose answer was lost is looked up by it before any resubmit.

        >>> task = await mj.submit(Imagine(prompt="a red fox", images=[Path("ref.png")]))
        """
        key = check_idempotency_key(idempotency_key) if idempotency_key is not None else new_idempotency_key()
        return await self._traced.submit(request, idempotency_key=key)

    async def action(
        self, task: Task | str, label_or_custom_id: str, *, state: str | None = None, idempotency_key: str | None = None
    ) -> Task:
        """Press a button of a finished task: a label (``"U1"``..``"V4"``, ``"🔄"``, ``"Vary (Strong)"``)
        or its ``customId``. Returns the new task's first snapshot.

        >>> upscaled = await mj.tasks.wait(await mj.action(done, "U2"), timeout=600)
        """
        if not isinstance(label_or_custom_id, str) or not label_or_custom_id.strip():
            raise ValidationError("label_or_custom_id", "must be a button label or customId")
        current = task if isinstance(task, Task) and task.status is TaskStatus.COMPLETED else None
        if current is None:
            current = await self.tasks.get(task)
        if current.status is not TaskStatus.COMPLETED:
            raise ValidationError(
                "task", f"must have succeeded before a button is pressed; it is {current.status.value}"
            )
        details = current.midjourney
        buttons = details.buttons if details is not None else ()
        request = request_for_button(current.id, buttons, label_or_custom_id, state=state)
        if request is None:
            names = ", ".join(b.label or b.emoji or b.custom_id for b in buttons) or "none"
            raise ValidationError(
                "label_or_custom_id", f"task {current.id} has no button {label_or_custom_id!r} (buttons: {names})"
            )
        return await self.submit(request, idempotency_key=idempotency_key)

    async def find_submitted(self, idempotency_key: str, *, submitted_after: float | None = None) -> Task | None:
        """The task an earlier ``submit`` under ``idempotency_key`` created (found by its ``state`` in
        ``task/list``), or None when the list proves there is none: e.g. a resumed batch settles a
        submit its killed run never recorded. ``submitted_after`` (epoch seconds) is when that submit
        started at the earliest. Raises ``SubmitOutcomeUnknownError`` when the list cannot tell (no
        ``task/list``, or one cut short that holds only newer tasks): then do not submit again.

        >>> task = await mj.find_submitted(entry.idempotency_key, submitted_after=entry.updated_at)
        """
        key = check_idempotency_key(idempotency_key)
        started = submitted_after if submitted_after is not None else time.time()
        cause = SubmitOutcomeUnknownError(key, UnsupportedOperationError("task/list", "cannot be read"))
        try:
            return await self._api._find_by_state(key, since_ms=None, started_ms=int(started * 1000), cause=cause)
        except SubmitOutcomeUnknownError:
            raise
        except EvolinkError as exc:
            raise SubmitOutcomeUnknownError(key, exc) from None

    def fan_out(
        self,
        requests: Iterable[FanOutInput | MidjourneyRequest] | AsyncIterable[FanOutInput | MidjourneyRequest],
        *,
        max_in_flight: int = 8,
        max_submits_per_second: float | None = None,
        buffer_size: int = 64,
        timeout: float | None = None,
        max_credits: float | None = None,
        credits_per_task: float | None = None,
        progress_every: float | None = None,
    ) -> FanOut:
        """Submit many requests with at most ``max_in_flight`` unfinished; stream all their events.

        As ``EvolinkClient.fan_out`` (``progress_every`` included); a task left in ``MODAL`` ends
        its input with a ``FAILED`` event whose ``error`` is ``TaskNeedsModalError``. A proxy's
        answers carry no cost, so ``max_credits`` needs ``credits_per_task``: each submit counts
        that much.

        >>> async with mj.fan_out([Imagine(prompt=p) for p in prompts], max_in_flight=8) as events:
        ...     async for event in events:
        ...         print(event.key, event.kind, event.progress)
        """
        # FanOut hands each request to ``TaskAPI.submit`` untouched: any request type of the protocol fits.
        items = cast("Iterable[FanOutInput] | AsyncIterable[FanOutInput]", requests)
        if max_credits is not None and credits_per_task is None:
            raise ValidationError("credits_per_task", "is needed with max_credits: proxy answers carry no cost")
        return FanOut(
            self._traced,
            self._tracker,
            items,
            max_in_flight=max_in_flight,
            max_submits_per_second=max_submits_per_second,
            buffer_size=buffer_size,
            timeout=timeout,
            max_credits=max_credits,
            credits_per_task=credits_per_task,
            progress_every=progress_every,
            telemetry=self._transport.telemetry,
        )

    @staticmethod
    def parse_task(body: object) -> Task:
        """A task from a proxy's ``notifyHook`` POST body (the fetch shape), e.g. for ``mj.tracker.push``.

        >>> mj.tracker.push(mj.parse_task(await request.json()))
        """
        return structure_mj_task(body)

    async def download(
        self,
        task: Task,
        dest_dir: str | os.PathLike[str],
        *,
        name: str | None = None,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        timeout: float = 300.0,
    ) -> tuple[Path, ...]:
        """Save a completed task's images into ``dest_dir`` as ``EvolinkClient.download`` does
        (no key is sent to the image host).

        >>> await mj.download(done, "out", name="fox")
        """
        if task.status is not TaskStatus.COMPLETED or not task.results:
            raise ValidationError("task", f"has no results to download (status {task.status.value})")
        stem = name or task.id

        def name_for(index: int, image_format: ImageFormat) -> str:
            return result_file_name(stem, index, image_format=image_format)

        return await download_urls(self._transport.session, task.results, dest_dir, name_for,
                                   max_bytes=max_bytes, timeout=timeout)  # fmt: skip

    def __repr__(self) -> str:
        return f"MidjourneyClient(base_url={self.base_url!r}, api_key='***')"

    def __reduce__(self) -> Any:
        raise TypeError("MidjourneyClient objects cannot be pickled")
