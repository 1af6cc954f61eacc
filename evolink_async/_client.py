"""``EvolinkClient``: one aiohttp session, the resources, and the owner of background work."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from types import TracebackType
from typing import Any, Self

import aiohttp
import attrs

from ._config import ClientConfig, config_from_env
from ._requests import Request
from ._retry import RetryPolicy
from ._secret import Secret
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
        self._init(config, Transport(config, session=session))

    def _init(self, config: ClientConfig, transport: Transport) -> None:
        self._config = config
        self._transport = transport
        self.images = Images(self)
        self.tasks = Tasks(self)

    @classmethod
    def _from_parts(cls, config: ClientConfig, transport: Transport) -> Self:
        client = cls.__new__(cls)
        client._init(config, transport)
        return client

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
        return type(self)._from_parts(config, self._transport.derive(config))

    async def _resolve_local_images(self, request: Request) -> Request:
        local = [p for p in request.image_urls if isinstance(p, PurePath)]
        if local:
            raise EvolinkError(f"uploading local images is not available yet: {local[0]}")
        return request

    async def aclose(self) -> None:
        """Close the session (unless it was passed in by the caller)."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"EvolinkClient(base_url={self.base_url!r}, api_key='***')"
