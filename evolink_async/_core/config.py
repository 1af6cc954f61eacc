"""Client configuration: one frozen object instead of long argument lists passed around."""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

from .retry import RetryPolicy
from .secret import Secret

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_FILES_BASE_URL", "ClientConfig", "config_from_env"]

DEFAULT_BASE_URL = "https://api.evolink.ai"
DEFAULT_FILES_BASE_URL = "https://files-api.evolink.ai"


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Everything a client needs to talk to the API. ``api_key`` never shows in the repr."""

    api_key: Secret
    base_url: str = DEFAULT_BASE_URL
    files_base_url: str = DEFAULT_FILES_BASE_URL
    #: Seconds one HTTP attempt may take in all (connect, send, receive).
    timeout: float = 60.0
    #: Seconds to open a connection.
    connect_timeout: float = 10.0
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    #: Open connections at most (the aiohttp connector's limit).
    max_connections: int = 64
    #: The largest JSON answer read into memory, in bytes.
    max_response_bytes: int = 8 * 1024 * 1024
    default_headers: Mapping[str, str] = attrs.field(factory=dict)
    #: The header that carries the key: ``Authorization`` sends ``Bearer <key>``, any other name
    #: (a Midjourney proxy's ``mj-api-secret``) the bare key. An empty key sends no auth header.
    auth_header: str = "Authorization"


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def config_from_env(
    api_key: str | None,
    *,
    base_url: str | None,
    files_base_url: str | None,
) -> tuple[str | None, str, str]:
    """Resolve key and URLs: explicit arguments first, then ``EVOLINK_*`` variables, then defaults."""
    key = api_key if api_key is not None else _env("EVOLINK_API_KEY")
    base = (base_url or _env("EVOLINK_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    files = (files_base_url or _env("EVOLINK_FILES_BASE_URL") or DEFAULT_FILES_BASE_URL).rstrip("/")
    return key, base, files
