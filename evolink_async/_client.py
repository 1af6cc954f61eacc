"""``EvolinkClient``: one aiohttp session, the resources, and the owner of background work."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from pathlib import PurePath
from types import TracebackType
from typing import Any, Self

import aiohttp
import anyio
import anyio.abc
import attrs

from ._config import ClientConfig, config_from_env
from ._fan_out import FanOut, FanOutInput
from ._poll_policy import PollPolicy
from ._requests import Request
from ._retry import RetryPolicy
from ._secret import Secret
from ._tracker import Tracker
from ._transport import Transport
from .errors import EvolinkError
from .resources.images import Images
from .resources.tasks import Tasks

__all__ = ["EvolinkClient", "MissingAPIKeyError"]


class MissingAPIKeyError(EvolinkError, ValueError):
    """Raised at construction when no API key was given and ``EVOLINK_API_KEY`` is not set."""


_UNSET: Any = object()


class EvolinkClient:
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
    ) -> None:
        key, base, files = config_from_env(api_key, base_url=base_url, files_base_url=files_base_url)
        if not key:
            raise MissingAPIKeyError(
                "no API key: pass api_key=... or set EVOLINK_API_KEY (keys look like sk-evo-...)"
            )
        policy = retry if retry is not None else RetryPolicy(max_retries=max_retries)
        config = ClientConfig(
            api_key=Secret(key),
            base_url=base,
            files_base_url=files,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=policy,
            max_connections=max_connections,
            default_headers=dict(default_headers or {}),
        )
        transport = Transport(config, session=session)
        tracker = Tracker(
            lambda task_id: self.tasks.get(task_id),
            policy=poll_policy or PollPolicy(),
            max_concurrent_queries=max_concurrent_queries,
        )
        self._init(config, transport, tracker)
        self._owns_tracker = True

    def _init(self, config: ClientConfig, transport: Transport, tracker: Tracker) -> None:
        self._config = config
        self._transport = transport
        # One tracker per client family: clients made by ``with_options`` share it.
        self._tracker = tracker
        self._task_group: anyio.abc.TaskGroup | None = None
        self.images = Images(self)
        self.tasks = Tasks(self)

    @classmethod
    def _from_parts(cls, config: ClientConfig, transport: Transport, tracker: Tracker) -> Self:
        client = cls.__new__(cls)
        client._init(config, transport, tracker)
        client._owns_tracker = False
        return client

    @property
    def tracker(self) -> Tracker:
        """The scheduler watching this client's tasks (``push`` webhook snapshots into it)."""
        return self._tracker

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def files_base_url(self) -> str:
        return self._config.files_base_url

    @property
    def config(self) -> ClientConfig:
        return self._config

    def with_options(
        self,
        *,
        timeout: float = _UNSET,
        connect_timeout: float = _UNSET,
        max_retries: int = _UNSET,
        retry: RetryPolicy = _UNSET,
        default_headers: Mapping[str, str] = _UNSET,
    ) -> EvolinkClient:
        """A client with some options changed that shares this one's connection pool.

        Closing the derived client does not close the shared session; close the original.

        >>> patient = client.with_options(timeout=300, max_retries=6)
        """
        changes: dict[str, Any] = {}
        if timeout is not _UNSET:
            changes["timeout"] = timeout
        if connect_timeout is not _UNSET:
            changes["connect_timeout"] = connect_timeout
        if retry is not _UNSET:
            changes["retry"] = retry
        elif max_retries is not _UNSET:
            changes["retry"] = attrs.evolve(self._config.retry, max_retries=max_retries)
        if default_headers is not _UNSET:
            changes["default_headers"] = {**self._config.default_headers, **default_headers}
        config = attrs.evolve(self._config, **changes)
        return type(self)._from_parts(config, self._transport.derive(config), self._tracker)

    def fan_out(
        self,
        requests: Iterable[FanOutInput] | AsyncIterable[FanOutInput],
        *,
        max_in_flight: int = 16,
        max_submits_per_second: float | None = None,
        buffer_size: int = 64,
        timeout: float | None = None,
    ) -> FanOut:
        """Submit many requests with at most ``max_in_flight`` unfinished; stream all their events.

        ``requests`` (sync or async, consumed lazily) yields requests, ``(key, request)`` pairs or
        ``FanOutItem``s. Every input gets exactly one terminal event. When the consumer stops
        reading, submits stop once ``buffer_size`` events wait (backpressure). An authentication
        error ends the batch with that error; exhausted credits stop new submits while the
        unfinished tasks go on. Leaving the block early stops submitting and watching; what was
        left unfinished is listed in ``events.summary``.

        >>> async with client.fan_out(requests, max_in_flight=16) as events:
        ...     async for event in events:
        ...         print(event.key, event.kind, event.progress)
        """
        return FanOut(
            self,
            requests,
            max_in_flight=max_in_flight,
            max_submits_per_second=max_submits_per_second,
            buffer_size=buffer_size,
            timeout=timeout,
        )

    async def _resolve_local_images(self, request: Request) -> Request:
        local = [p for p in request.image_urls if isinstance(p, PurePath)]
        if local:
            raise EvolinkError(f"uploading local images is not available yet: {local[0]}")
        return request

    async def aclose(self) -> None:
        """Close the session (unless it was passed in by the caller)."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        """Start the tracker; it runs until the ``async with`` block ends."""
        if not self._owns_tracker:
            return self  # a ``with_options`` view: the original client runs the tracker
        if self._task_group is not None:
            raise RuntimeError("this client is already entered")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._task_group = group
        try:
            await group.start(self._tracker.run)
        except BaseException as exc:
            self._task_group = None
            group.cancel_scope.cancel()
            await group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._task_group = self._task_group, None
        try:
            if group is not None:
                group.cancel_scope.cancel()
                # Not handing the body's exception to the group keeps it unwrapped (no ExceptionGroup).
                await group.__aexit__(None, None, None)
        finally:
            await self.aclose()

    def __repr__(self) -> str:
        return f"EvolinkClient(base_url={self.base_url!r}, api_key='***')"
