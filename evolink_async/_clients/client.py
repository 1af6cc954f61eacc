"""``Client``: one protocol's ``TaskAPI``, one aiohttp session and one tracker, composed.

Every client is this class built from a :class:`~evolink_async._protocols.task_api.TaskProtocol`
and the shared options; nothing here names a vendor. ``EvolinkClient`` and ``MidjourneyClient``
only turn their own arguments (keys, hosts, the auth header) into a ``ClientConfig`` and add
their protocol's own verbs (``images`` and ``files``; ``action`` and ``find_submitted``). A third
protocol needs a ``TaskAPI``, a ``TaskProtocol``, and ``Client(protocol, config)``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Self

import aiohttp
import attrs

from .._callbacks.binding import ReceiverBinding, callback_binding
from .._callbacks.receiver import CallbackReceiver
from .._core.checks import check_path
from .._core.config import ClientConfig, check_headers
from .._core.idempotency import check_idempotency_key, new_idempotency_key
from .._core.logging import LOG_CONTEXT
from .._core.retry import RetryPolicy, retry_from
from .._core.telemetry import telemetry_for
from .._core.transport import Transport
from .._files.download import DEFAULT_MAX_DOWNLOAD_BYTES, download_urls
from .._files.image_probe import ImageFormat
from .._files.safe_paths import result_file_name
from .._models.task import Task, TaskStatus
from .._protocols.task_api import QueryingTaskAPI, RequestT, TaskAPI, TaskProtocol
from .._protocols.traced import TaskSpans, TracedTaskAPI
from .._watching.fan_out import FanOut, FanOutInput
from .._watching.poll_policy import PollPolicy
from .._watching.tracker import Tracker
from ..errors import UnsupportedOperationError, ValidationError
from .lifecycle import TrackerLifecycle
from .tasks import Tasks

__all__ = ["Client"]

#: "Not given" for ``with_options`` arguments, where ``None`` could be a value.
UNSET: Any = object()

#: What a ``TaskProtocol`` and the ``TaskAPI`` it connects must have (``None`` stands for a
#: capability the server lacks: ``fetch_many``, ``cancel``, ``recover``, ``release_uploads``).
_PROTOCOL_MEMBERS = (
    "name", "reports_cost", "uploads_images", "default_max_in_flight",
    "connect", "parse_task", "callback_marker", "model_of",
)  # fmt: skip
_API_MEMBERS = ("submit", "fetch", "fetch_many", "fetch_many_limit", "cancel", "recover", "release_uploads")


def _missing(value: object, members: tuple[str, ...]) -> list[str]:
    return [name for name in members if not hasattr(value, name)]


def batch_window(policy: PollPolicy) -> float:
    """How early a query may be sent along with a due one in a many-task fetch.

    One request answers any number of tasks at the cost of one fetch (new-api polls all of a
    channel's Midjourney tasks every 15 s this way), so a due query takes along every query due
    within the spacing the policy keeps near the expected finish (``resolution`` x the estimate),
    not just within ``min_interval``: with 30 tasks in flight a task then costs well under one request.
    """
    return max(policy.min_interval, min(policy.max_interval, policy.resolution * policy.default_estimated_time))


@attrs.frozen
class _Family:
    """What a client shares with the views ``with_options`` makes of it: the pool, the tracker
    (whose ``async with`` the original runs), the callback receiver and the open task spans."""

    transport: Transport
    tracker: Tracker
    binding: ReceiverBinding | None
    spans: TaskSpans | None


class Client(TrackerLifecycle, Generic[RequestT]):
    """An asyncio client for any task protocol. Use it as an async context manager.

    ``protocol`` says how to reach the protocol's API; ``config`` holds the key and the host.
    The keyword options are those of ``EvolinkClient`` (``batch_polling=False`` keeps the
    tracker from fetching many tasks per request where the protocol could).

    >>> async with Client(MyProtocol(), ClientConfig(api_key=Secret(key), base_url=url)) as client:
    ...     done = await client.tasks.wait(await client.submit(MyRequest(...)), timeout=600)
    """

    def __init__(
        self,
        protocol: TaskProtocol[RequestT],
        config: ClientConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        poll_policy: PollPolicy | None = None,
        max_concurrent_queries: int = 32,
        batch_polling: bool = True,
        callbacks: CallbackReceiver | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        tracer_provider: Any = None,
        meter_provider: Any = None,
        _family: _Family | None = None,
    ) -> None:
        if missing := _missing(protocol, _PROTOCOL_MEMBERS):
            raise ValidationError(
                "protocol", f"must be a TaskProtocol; {type(protocol).__name__} lacks {', '.join(missing)}"
            )
        if poll_policy is not None and not isinstance(poll_policy, PollPolicy):
            raise ValidationError("poll_policy", f"must be a PollPolicy, got {type(poll_policy).__name__}")
        if not isinstance(config, ClientConfig):
            raise ValidationError("config", f"must be a ClientConfig, got {type(config).__name__}")
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ValidationError("session", f"must be an aiohttp.ClientSession, got {type(session).__name__}")
        if not isinstance(batch_polling, bool):
            raise ValidationError("batch_polling", f"must be True or False, got {batch_polling!r}")
        self._protocol = protocol
        self._config = config
        self.tracker_task_name = f"{protocol.name}-tracker"
        self._owns_tracker = _family is None
        self._tracker_task = None
        if _family is None:
            telemetry = telemetry_for(tracer_provider=tracer_provider, meter_provider=meter_provider)
            transport = Transport(config, session=session, telemetry=telemetry, trace_configs=trace_configs)
            # Late-bound to this client: its tracker and ``tasks`` are made below.
            binding = callback_binding(
                callbacks, parse=protocol.parse_task, client=self, marker_of=protocol.callback_marker
            )
            spans = None if telemetry is None else TaskSpans(telemetry, provider=protocol.name)
        else:  # a ``with_options`` view: its own options over the original's pool, tracker and spans
            transport, binding, spans = _family.transport.derive(config), _family.binding, _family.spans
        self._transport = transport
        self._binding = binding
        connected = protocol.connect(transport, binding)
        if missing := _missing(connected, _API_MEMBERS):
            raise ValidationError(
                "protocol", f"connect() must return a TaskAPI; {type(connected).__name__} lacks {', '.join(missing)}"
            )
        # With telemetry on, every submit and query goes through the task spans (nothing otherwise).
        api: TaskAPI[RequestT] = (
            connected if spans is None else TracedTaskAPI(connected, spans, model_of=protocol.model_of)
        )
        self._api = api
        tracker = _family.tracker if _family is not None else self._new_tracker(
            api, policy=poll_policy or PollPolicy(), max_concurrent_queries=max_concurrent_queries,
            batch_polling=batch_polling,
        )  # fmt: skip
        self._tracker = tracker
        self._family = _Family(transport, tracker, binding, spans)
        self.tasks = Tasks(api, tracker)
        self._hook_telemetry(spans, hook_tracker=_family is None)
        self._connected(connected)

    def _new_tracker(
        self, api: TaskAPI[RequestT], *, policy: PollPolicy, max_concurrent_queries: int, batch_polling: bool
    ) -> Tracker:
        fetch_many = None
        if batch_polling and api.fetch_many is not None:

            async def fetch_many(task_ids: Sequence[str]) -> Sequence[Task]:
                # Read at each call: the API stops offering it once the server turned out not to have it.
                many = api.fetch_many
                if many is None:
                    raise UnsupportedOperationError("fetch_many", "the server has no many-task fetch")
                return await many(task_ids)

        return Tracker(
            # The API's own bound method, not a lambda around it: a frame fewer per query.
            api.fetch,
            query=api.query if isinstance(api, QueryingTaskAPI) else None,
            policy=policy,
            max_concurrent_queries=max_concurrent_queries,
            fetch_many=fetch_many,
            fetch_many_limit=api.fetch_many_limit,
            push_coverage=self._binding,
            batch_window=batch_window(policy) if fetch_many is not None else None,
        )

    def _connected(self, api: TaskAPI[RequestT]) -> None:
        """Called once the protocol's API is connected: a vendor's client keeps what it adds (its
        ``files``, its own lookups). The default keeps nothing."""

    def with_options(
        self,
        *,
        timeout: float = UNSET,
        connect_timeout: float = UNSET,
        max_retries: int = UNSET,
        retry: RetryPolicy = UNSET,
        default_headers: Mapping[str, str] = UNSET,
    ) -> Self:
        """A client with some options changed that shares this one's connection pool and tracker.

        Closing the derived client does not close the shared session; close the original (whose
        ``async with`` also runs the tracker the derived client's waits use).

        >>> patient = client.with_options(timeout=300, max_retries=6)
        """
        changes: dict[str, Any] = {}
        if timeout is not UNSET:
            changes["timeout"] = timeout
        if connect_timeout is not UNSET:
            changes["connect_timeout"] = connect_timeout
        if retry is not UNSET or max_retries is not UNSET:
            given_retry = None if retry is UNSET else retry
            given_max = None if max_retries is UNSET else max_retries
            changes["retry"] = retry_from(given_retry, given_max, base=self._config.retry)
        if default_headers is not UNSET:  # added to this client's (checked before the merge reads them)
            added = check_headers("default_headers", default_headers)
            changes["default_headers"] = {**self._config.default_headers, **added}
        # ``evolve`` runs ``ClientConfig``'s checks: a bad value is a ValidationError naming it.
        config = attrs.evolve(self._config, **changes)
        view = type(self).__new__(type(self))
        # The one constructor, not the vendor's: its arguments (a key, hosts) are already in ``config``.
        Client.__init__(view, self._protocol, config, _family=self._family)
        return view

    async def submit(self, request: RequestT, *, idempotency_key: str | None = None) -> Task:
        """Submit one request and return its first snapshot (usually ``pending``).

        The submit carries an idempotency key (``idempotency_key``, or a fresh one), reused on
        every retry. Pass your own key to make a submit safe across process restarts on servers
        that honour it.

        >>> task = await client.submit(request)
        """
        key = check_idempotency_key(idempotency_key) if idempotency_key is not None else new_idempotency_key()
        token = LOG_CONTEXT.set({"model": self._protocol.model_of(request)})  # the submit's records name it
        try:
            return await self._api.submit(request, idempotency_key=key)
        finally:
            LOG_CONTEXT.reset(token)

    def fan_out(
        self,
        requests: Iterable[FanOutInput[RequestT]] | AsyncIterable[FanOutInput[RequestT]],
        *,
        max_in_flight: int | None = None,
        max_submits_per_second: float | None = None,
        buffer_size: int = 64,
        timeout: float | None = None,
        max_credits: float | None = None,
        credits_per_task: float | None = None,
        keep_uploads: bool = False,
        normalize: bool = False,
        progress_every: float | None = None,
    ) -> FanOut[RequestT]:
        """Submit many requests with at most ``max_in_flight`` unfinished; stream all their events.

        ``requests`` (sync or async, consumed lazily) yields requests, ``(key, request)`` pairs or
        ``FanOutItem``s. Every input gets exactly one terminal event. When the consumer stops
        reading, submits stop once ``buffer_size`` events wait (backpressure). An authentication
        error ends the batch with that error, and so does a submit endpoint that is missing (404,
        405, 501: a wrong base URL) as one ``EndpointMissingError`` naming the URL, not a failure
        per input; exhausted credits stop new submits while the unfinished tasks go on. Leaving
        the block early stops submitting and watching; what was left unfinished is listed in
        ``events.summary``. ``max_in_flight`` defaults to the protocol's (16 for Evolink, 8 for
        a Midjourney proxy); a task left waiting for the caller (Midjourney's ``MODAL``) ends
        its input with a ``FAILED`` event whose error is a ``TaskRequiresActionError``.

        ``max_credits`` bounds the credits the submits may reserve (``usage.credits_reserved`` of
        their answers). A submit goes out only while the credits reserved so far plus an estimate
        for it and for each submit still awaiting its answer fit the budget; the estimate is
        ``credits_per_task`` or the largest cost seen so far, whichever is bigger. Without
        ``credits_per_task`` submits go out one at a time until a first answer tells the cost, so
        only that first submit can overshoot the budget; afterwards only a task dearer than every
        one seen before can. A protocol whose answers carry no cost (a Midjourney proxy) needs
        ``credits_per_task``: each submit counts that much. Once the budget is reached, inputs
        left get one ``SUBMIT_FAILED`` event each with a ``NotSubmittedError`` (no request) and
        count in ``summary.not_submitted``.

        Local images (``Path``s in ``image_urls``) are uploaded within the key's file quota (a
        budget of files alive at once: uploads wait for deletions) and deleted once their task
        ended, unless ``keep_uploads``. ``normalize`` converts local images the service would
        refuse (BMP/TIFF to PNG, EXIF rotation, sides into the model's range; needs the
        ``[images]`` extra) into temporary copies instead of failing them; only for a protocol
        that uploads images (Evolink: a Midjourney proxy takes them inline).

        The tasks are queried on the client's economical poll policy; ``progress_every=s``
        queries each unfinished task at least every ``s`` seconds instead (as ``tasks.stream``),
        for a batch whose progress a person watches.

        >>> async with client.fan_out(requests, max_in_flight=16) as events:
        ...     async for event in events:
        ...         print(event.key, event.kind, event.progress)
        """
        protocol = self._protocol
        if normalize is True and not protocol.uploads_images:
            raise ValidationError("normalize", f"{protocol.name} takes images inline: there is nothing to normalize")
        if max_credits is not None and credits_per_task is None and not protocol.reports_cost:
            raise ValidationError(
                "credits_per_task", f"is needed with max_credits: {protocol.name} answers carry no cost"
            )
        return FanOut(
            self._api,
            self._tracker,
            requests,
            max_in_flight=protocol.default_max_in_flight if max_in_flight is None else max_in_flight,
            max_submits_per_second=max_submits_per_second,
            buffer_size=buffer_size,
            timeout=timeout,
            max_credits=max_credits,
            credits_per_task=credits_per_task,
            keep_uploads=keep_uploads,
            normalize=normalize,
            progress_every=progress_every,
            telemetry=self._transport.telemetry,
        )

    @property
    def protocol(self) -> TaskProtocol[RequestT]:
        """The protocol this client speaks (what the layers above read of it: ``reports_cost``, ...)."""
        return self._protocol

    def parse_task(self, body: object) -> Task:
        """A task from a callback's POST body, e.g. for ``client.tracker.push`` in your own route.

        >>> client.tracker.push(client.parse_task(await request.json()))
        """
        return self._protocol.parse_task(body)

    async def download(
        self,
        task: Task | Sequence[str],
        dest_dir: str | os.PathLike[str],
        *,
        name: str | None = None,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        timeout: float = 300.0,
        durable: bool = False,
        reuse_identical: bool = False,
    ) -> tuple[Path, ...]:
        """Save a completed task's results into ``dest_dir``; return the paths, in result order.

        Files are named ``<name>.result-<i>.<ext>`` (``name`` defaults to the task id and is kept
        whole, dots included; the extension comes from the downloaded bytes) and sanitized so
        nothing lands outside ``dest_dir``. Each is streamed to a temporary file and renamed into
        place, never over an existing file (``name.result-0 (1).png`` then), and bounded by
        ``max_bytes``. ``reuse_identical=True`` returns a file already there with the same bytes
        instead of saving a numbered copy (downloading one task twice saves it once). Raises
        :class:`~evolink_async.DownloadError`; no API key is sent to the result host.

        A crash never leaves a truncated file under a result name. ``durable=True`` extends that
        to power cuts: each file and its folder are fsynced before this returns, which costs
        throughput (disk speed instead of page-cache speed). Batch runs use it, since their
        journal records a result as saved.

        >>> done = await client.images.generate(RemoveBackground(image_urls=[Path("cat.png")]))
        >>> await client.download(done, "out", name="cat")
        (PosixPath('out/cat.result-0.png'),)
        """
        dest_dir = check_path("dest_dir", dest_dir)
        if isinstance(task, Task):
            if task.status is not TaskStatus.COMPLETED or not task.results:
                raise ValidationError("task", f"has no results to download (status {task.status.value})")
            urls: Sequence[str] = task.results
            stem = name or task.id
        else:
            if isinstance(task, str):
                raise ValidationError("task", "must be a Task or a list of URLs, not a single string")
            urls = list(task)
            stem = name or "result"

        if not isinstance(durable, bool) or not isinstance(reuse_identical, bool):
            field = "durable" if not isinstance(durable, bool) else "reuse_identical"
            raise ValidationError(field, "must be True or False")

        def name_for(index: int, image_format: ImageFormat) -> str:
            return result_file_name(stem, index, image_format=image_format, keep_suffix=True)

        return await download_urls(
            self._transport.session, urls, dest_dir, name_for, max_bytes=max_bytes, timeout=timeout, durable=durable,
            reuse_identical=reuse_identical,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key='***')"

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled")
