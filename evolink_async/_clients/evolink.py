"""``EvolinkClient``: one aiohttp session, the resources, and the owner of background work."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import aiohttp

from .._callbacks.receiver import CallbackReceiver, ReceiverBinding, callback_binding
from .._core.config import ClientConfig, urls_from_env, wrap_api_key
from .._core.retry import RetryPolicy
from .._core.telemetry import telemetry_for
from .._core.transport import Transport
from .._files.download import DEFAULT_MAX_DOWNLOAD_BYTES, download_urls
from .._files.image_probe import ImageFormat
from .._files.safe_paths import result_file_name
from .._models.converter import structure_task
from .._models.task import Task, TaskStatus
from .._protocols.evolink.api import EvolinkAPI
from .._protocols.evolink.files import Files
from .._protocols.task_api import TaskAPI
from .._protocols.traced import TaskSpans, TracedTaskAPI
from .._watching.fan_out import FanOut, FanOutInput
from .._watching.poll_policy import PollPolicy
from .._watching.tracker import Tracker
from ..errors import MissingAPIKeyError, ValidationError
from .images import Images
from .lifecycle import UNSET, TrackerLifecycle
from .tasks import Tasks

__all__ = ["EvolinkClient", "MissingAPIKeyError"]




class EvolinkClient(TrackerLifecycle):
    """An asyncio client for the Evolink API. Use it as an async context manager.

    The key comes from ``api_key`` or ``EVOLINK_API_KEY``; the hosts from ``base_url`` /
    ``EVOLINK_BASE_URL`` and ``files_base_url`` / ``EVOLINK_FILES_BASE_URL``.

    >>> async with EvolinkClient() as client:
    ...     task = await client.images.submit(QwenImageEdit(prompt="...", image_urls=[url]))
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        files_base_url: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
        default_headers: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        poll_policy: PollPolicy | None = None,
        max_concurrent_queries: int = 32,
        callbacks: CallbackReceiver | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        # The key goes into its ``Secret`` before anything can raise, and the plain name is dropped:
        # error reporters record the locals of every frame on a traceback, this one's included.
        key = wrap_api_key(api_key, "EVOLINK_API_KEY")
        del api_key
        if isinstance(key, ValidationError):
            raise key
        if key is None:
            raise MissingAPIKeyError(
                "no API key: pass api_key=... or set EVOLINK_API_KEY (keys look like sk-evo-...)"
            )
        base, files = urls_from_env(base_url=base_url, files_base_url=files_base_url)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValidationError("retry", f"must be a RetryPolicy, got {type(retry).__name__}")
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ValidationError("session", f"must be an aiohttp.ClientSession, got {type(session).__name__}")
        policy = retry if retry is not None else RetryPolicy(max_retries=max_retries)
        config = ClientConfig(
            api_key=key,
            base_url=base,
            files_base_url=files,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=policy,
            max_connections=max_connections,
            default_headers=dict(default_headers or {}),
        )
        telemetry = telemetry_for(tracer_provider=tracer_provider, meter_provider=meter_provider)
        transport = Transport(config, session=session, telemetry=telemetry, trace_configs=trace_configs)
        binding = callback_binding(callbacks, parse=structure_task, client=self)
        self._binding: ReceiverBinding | None = binding
        self._task_spans = None if telemetry is None else TaskSpans(telemetry, provider="evolink")
        api = self._init(config, transport)
        # The API's own bound method, not a lambda around ``self._api``: a frame fewer per query.
        # Clients made by ``with_options`` share this tracker, so it queries with these options.
        self._start_tracking(
            Tracker(
                api.fetch,
                # The tracker queries through ``query``: the id checked once per watch, an
                # unchanged answer not parsed again (``EvolinkAPI.query``).
                query=api.query if isinstance(api, EvolinkAPI | TracedTaskAPI) else None,
                policy=poll_policy or PollPolicy(),
                max_concurrent_queries=max_concurrent_queries,
                push_coverage=binding,
            ),
            owned=True,
        )
        self._hook_telemetry(self._task_spans)

    def _init(self, config: ClientConfig, transport: Transport) -> TaskAPI:
        self._config = config
        self._transport = transport
        self.files = Files(transport)
        api = EvolinkAPI(transport, self.files, callbacks=self._binding)
        # With telemetry on, every submit and query goes through the task spans (nothing otherwise).
        spans = self._task_spans
        self._api: TaskAPI = api if spans is None else TracedTaskAPI(api, spans)
        return self._api

    def _start_tracking(self, tracker: Tracker, *, owned: bool) -> None:
        # One tracker per client family: clients made by ``with_options`` share it.
        self._tracker = tracker
        self._tracker_task: asyncio.Task[None] | None = None
        self._owns_tracker = owned
        self.tasks = Tasks(self._api, tracker)
        self.images = Images(self._api, self.tasks)

    @classmethod
    def _from_parts(
        cls,
        config: ClientConfig,
        transport: Transport,
        tracker: Tracker,
        binding: ReceiverBinding | None,
        spans: TaskSpans | None = None,
    ) -> Self:
        client = cls.__new__(cls)
        client._binding = binding  # the same receiver: the shared tracker knows its tasks
        client._task_spans = spans  # and the same task spans
        client._init(config, transport)
        client._start_tracking(tracker, owned=False)
        return client

    @property
    def files_base_url(self) -> str:
        return self._config.files_base_url

    def with_options(
        self,
        *,
        timeout: float = UNSET,
        connect_timeout: float = UNSET,
        max_retries: int = UNSET,
        retry: RetryPolicy = UNSET,
        default_headers: Mapping[str, str] = UNSET,
    ) -> EvolinkClient:
        """A client with some options changed that shares this one's connection pool.

        Closing the derived client does not close the shared session; close the original.

        >>> patient = client.with_options(timeout=300, max_retries=6)
        """
        config = self._changed_config(
            timeout=timeout, connect_timeout=connect_timeout, max_retries=max_retries, retry=retry,
            default_headers=default_headers,
        )
        return type(self)._from_parts(
            config, self._transport.derive(config), self._tracker, self._binding, self._task_spans
        )

    def fan_out(
        self,
        requests: Iterable[FanOutInput] | AsyncIterable[FanOutInput],
        *,
        max_in_flight: int = 16,
        max_submits_per_second: float | None = None,
        buffer_size: int = 64,
        timeout: float | None = None,
        max_credits: float | None = None,
        credits_per_task: float | None = None,
        keep_uploads: bool = False,
        normalize: bool = False,
        progress_every: float | None = None,
    ) -> FanOut:
        """Submit many requests with at most ``max_in_flight`` unfinished; stream all their events.

        ``requests`` (sync or async, consumed lazily) yields requests, ``(key, request)`` pairs or
        ``FanOutItem``s. Every input gets exactly one terminal event. When the consumer stops
        reading, submits stop once ``buffer_size`` events wait (backpressure). An authentication
        error ends the batch with that error, and so does a submit endpoint that is missing (404,
        405, 501: a wrong base URL) as one ``EndpointMissingError`` naming the URL, not a failure
        per input; exhausted credits stop new submits while the
        unfinished tasks go on. Leaving the block early stops submitting and watching; what was
        left unfinished is listed in ``events.summary``.

        ``max_credits`` bounds the credits the submits may reserve (``usage.credits_reserved`` of
        their answers). A submit goes out only while the credits reserved so far plus an estimate
        for it and for each submit still awaiting its answer fit the budget; the estimate is
        ``credits_per_task`` or the largest cost seen so far, whichever is bigger. Without
        ``credits_per_task`` submits go out one at a time until a first answer tells the cost, so
        only that first submit can overshoot the budget; afterwards only a task dearer than every
        one seen before can. Once the budget is reached, inputs left get one ``SUBMIT_FAILED``
        event each with a ``NotSubmittedError`` (no request) and count in ``summary.not_submitted``.

        Local images (``Path``s in ``image_urls``) are uploaded within the key's file quota (a
        budget of files alive at once: uploads wait for deletions) and deleted once their task
        ended, unless ``keep_uploads``. ``normalize`` converts local images the service would
        refuse (BMP/TIFF to PNG, EXIF rotation, sides into the model's range; needs the
        ``[images]`` extra) into temporary copies instead of failing them.

        The tasks are queried on the client's economical poll policy; ``progress_every=s``
        queries each unfinished task at least every ``s`` seconds instead (as ``tasks.stream``),
        for a batch whose progress a person watches.

        >>> async with client.fan_out(requests, max_in_flight=16) as events:
        ...     async for event in events:
        ...         print(event.key, event.kind, event.progress)
        """
        return FanOut(
            self._api,
            self._tracker,
            requests,
            max_in_flight=max_in_flight,
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

    async def download(
        self,
        task: Task | Sequence[str],
        dest_dir: str | os.PathLike[str],
        *,
        name: str | None = None,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        timeout: float = 300.0,
        durable: bool = False,
    ) -> tuple[Path, ...]:
        """Save a completed task's results into ``dest_dir``; return the paths, in result order.

        Files are named ``<name>.result-<i>.<ext>`` (``name`` defaults to the task id; the
        extension comes from the downloaded bytes) and sanitized so nothing lands outside
        ``dest_dir``. Each is streamed to a temporary file and renamed into place, never over an
        existing file (``name.result-0 (1).png`` then), and bounded by ``max_bytes``. Raises
        :class:`~evolink_async.DownloadError`; no API key is sent to the result host.

        A crash never leaves a truncated file under a result name. ``durable=True`` extends that
        to power cuts: each file and its folder are fsynced before this returns, which costs
        throughput (disk speed instead of page-cache speed). Batch runs use it, since their
        journal records a result as saved.

        >>> done = await client.images.generate(RemoveBackground(image_urls=[Path("cat.png")]))
        >>> await client.download(done, "out", name="cat")
        (PosixPath('out/cat.result-0.png'),)
        """
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

        def name_for(index: int, image_format: ImageFormat) -> str:
            return result_file_name(stem, index, image_format=image_format)

        return await download_urls(
            self._transport.session, urls, dest_dir, name_for, max_bytes=max_bytes, timeout=timeout, durable=durable
        )

    def __repr__(self) -> str:
        return f"EvolinkClient(base_url={self.base_url!r}, api_key='***')"
