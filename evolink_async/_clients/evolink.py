"""``EvolinkClient``: a ``Client`` of Evolink's task API, with ``images`` and ``files``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from .._callbacks.receiver import CallbackReceiver
from .._core.config import ClientConfig, urls_from_env, wrap_api_key
from .._core.retry import RetryPolicy, retry_from
from .._models.requests import Request
from .._protocols.evolink.api import EvolinkAPI
from .._protocols.evolink.files import Files
from .._protocols.evolink.protocol import EvolinkProtocol
from .._protocols.task_api import TaskAPI
from .._watching.poll_policy import PollPolicy
from ..errors import MissingAPIKeyError, ValidationError
from .client import Client
from .images import Images

__all__ = ["EvolinkClient", "MissingAPIKeyError"]


class EvolinkClient(Client[Request]):
    """An asyncio client for the Evolink API. Use it as an async context manager.

    The key comes from ``api_key`` or ``EVOLINK_API_KEY``; the hosts from ``base_url`` /
    ``EVOLINK_BASE_URL`` and ``files_base_url`` / ``EVOLINK_FILES_BASE_URL``.

    >>> async with EvolinkClient() as client:
    ...     task = await client.images.submit(QwenImageEdit(prompt="...", image_urls=[url]))
    """

    #: Image tasks: ``submit`` and ``generate`` (submit and wait).
    images: Images
    #: The account's Files API (uploads, the quota, deletions).
    files: Files

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        files_base_url: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int | None = None,
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
        config = ClientConfig(
            api_key=key,
            base_url=base,
            files_base_url=files,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=retry_from(retry, max_retries),
            max_connections=max_connections,
            default_headers=default_headers,
        )
        super().__init__(
            EvolinkProtocol(), config, session=session, poll_policy=poll_policy,
            max_concurrent_queries=max_concurrent_queries, callbacks=callbacks, trace_configs=trace_configs,
            tracer_provider=tracer_provider, meter_provider=meter_provider,
        )  # fmt: skip

    def _connected(self, api: TaskAPI[Request]) -> None:
        if not isinstance(api, EvolinkAPI):  # ``EvolinkProtocol.connect`` makes nothing else
            raise TypeError(f"an EvolinkClient needs an EvolinkAPI, got {type(api).__name__}")
        self.files = api.files
        self.images = Images(self.submit, self.tasks)

    @property
    def files_base_url(self) -> str:
        return self._config.files_base_url
